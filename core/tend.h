/*
 * tend.h - what every tend module shares: error codes and the error slot.
 *
 * Functions return 0 on success and a negative TEND_E* code on failure; the
 * human-readable message goes into a thread-local slot that the caller reads
 * with tend_error_last() (never NULL), as libgit2 does with git_error_last().
 */
#ifndef TEND_H
#define TEND_H

#include <stddef.h>

#define TEND_VERSION "0.1.0"

enum {
	TEND_OK = 0,
	TEND_ERROR = -1,     /* generic failure, see the message */
	TEND_ENOTFOUND = -2, /* a named thing does not exist */
	TEND_EINVAL = -3,    /* bad input: file, config, protocol, model output */
	TEND_ETIMEOUT = -4,  /* a deadline passed */
	TEND_ENOMEM = -5,    /* an allocation or a memory cap failed */
	TEND_EEXISTS = -6,   /* refusing to overwrite something */
	TEND_EBUSY = -7,     /* locked by someone else */
	TEND_EIO = -8,       /* the operating system said no */
	TEND_EVERSION = -9,  /* a file or database from a newer/other version */
};

/* Sets the message (printf-style) and returns code, so callers can write
 * `return tend_error_set(TEND_EINVAL, "...")`. */
int tend_error_set(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to the current message; returns code. */
int tend_error_wrap(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Sets the message from errno: "<what>: <strerror>"; returns TEND_EIO. */
int tend_error_os(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message set on this thread; "no error" when none. Never NULL. */
const char *tend_error_last(void);

/* The last code set on this thread (0 when none). */
int tend_error_code(void);

void tend_error_clear(void);

#endif
