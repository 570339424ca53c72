/*
 * error.c - the per-thread error slot behind tend_error_last().
 *
 * One fixed buffer per thread: setting an error never allocates, so it
 * works when the failure being reported is an allocation failure.
 */
#include "tend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERR_CAP 2048

static _Thread_local char err_msg[ERR_CAP];
static _Thread_local int err_code;

int tend_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_msg, sizeof err_msg, fmt, ap);
	va_end(ap);
	err_code = code;
	return code;
}

int tend_error_wrap(int code, const char *fmt, ...)
{
	char prefix[ERR_CAP], old[ERR_CAP];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, err_msg, sizeof old);
	snprintf(err_msg, sizeof err_msg, "%s: %s", prefix,
		 old[0] ? old : "unknown error");
	err_code = code;
	return code;
}

int tend_error_os(const char *fmt, ...)
{
	char what[ERR_CAP];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return tend_error_set(TEND_EIO, "%s: %s", what, strerror(saved));
}

const char *tend_error_last(void)
{
	return err_msg[0] ? err_msg : "no error";
}

int tend_error_code(void)
{
	return err_code;
}

void tend_error_clear(void)
{
	err_msg[0] = '\0';
	err_code = 0;
}
