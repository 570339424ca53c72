/*
 * tdata.h - helpers shared by the tests in tests/data: a fresh temp
 * directory removed at the end, small file helpers, and running the real
 * `tend` binary (TEND_BIN) with its output captured.
 */
#ifndef TDATA_H
#define TDATA_H

#include "fsutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char td_dir[64];

static inline const char *td_mkdtemp(void)
{
	strcpy(td_dir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(td_dir)) {
		perror("mkdtemp");
		exit(1);
	}
	return td_dir;
}

static inline void td_rmtree(const char *dir)
{
	fsu_rm_rf(dir);
}

/* A path under the temp dir, in a rotating static buffer. */
static inline const char *td_path(const char *fmt, ...)
{
	static char buf[8][512];
	static int k;
	char rel[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	k = (k + 1) % 8;
	snprintf(buf[k], sizeof buf[k], "%s/%s", td_dir, rel);
	return buf[k];
}

static inline int td_write(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(data, 1, n, f);
	return fclose(f) == 0 && w == n ? 0 : -1;
}

/* Reads a whole file into a malloc'd buffer (NUL-terminated); NULL on error. */
static inline char *td_read(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)len + 1);
	if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[len] = '\0';
		if (n)
			*n = (size_t)len;
	}
	return buf;
}

static inline int td_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Runs TEND_BIN with args (NULL-terminated), stdout and stderr captured
 * into out (stdout, then stderr) and err (stderr only). Returns the exit status,
 * or -1 when it could not run or did not exit normally. */
static inline int td_tend(char *out, size_t cap, char *err, size_t ecap, const char *const *args)
{
	const char *bin = getenv("TEND_BIN");
	char *argv[32];
	int n = 0, status;
	if (!bin)
		return -1;
	argv[n++] = (char *)bin;
	for (; *args && n < 31; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	const char *po = td_path(".stdout"), *pe = td_path(".stderr");
	pid_t pid = fork();
	if (pid == 0) {
		int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fo, 1);
		dup2(fe, 2);
		execv(bin, argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	char *o = td_read(po, NULL), *e = td_read(pe, NULL);
	snprintf(out, cap, "%s%s", o ? o : "", e ? e : "");
	snprintf(err, ecap, "%s", e ? e : "");
	free(o);
	free(e);
	unlink(po);
	unlink(pe);
	return WEXITSTATUS(status);
}

#endif
