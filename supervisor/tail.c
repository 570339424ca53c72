/*
 * tail.c - incremental line reader over a growing file. Keeps the bytes of
 * an unfinished last line in a buffer and re-reads nothing: the offset it
 * reports is always at a line boundary.
 */
#include "tail.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct tail {
	char *path;
	int fd;
	int64_t offset;   /* past the last delivered line */
	int64_t read_pos; /* where the next read() starts */
	size_t max_line;
	char *buf;        /* pending bytes: read_pos - offset of them */
	size_t len, cap;
	size_t dropped;   /* bytes of an overlong line not kept in buf */
	bool full;        /* the last poll read all it was allowed */
};

int tail_new(tail **out, const char *path, int64_t offset, size_t max_line)
{
	tail *t = calloc(1, sizeof *t);
	if (!t || !(t->path = strdup(path))) {
		free(t);
		return tend_error_set(TEND_ENOMEM, "tail %s: out of memory", path);
	}
	t->fd = -1;
	t->offset = t->read_pos = offset;
	t->max_line = max_line;
	*out = t;
	return 0;
}

void tail_free(tail *t)
{
	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);
	free(t->buf);
	free(t->path);
	free(t);
}

int64_t tail_offset(const tail *t)
{
	return t->offset;
}

const char *tail_path(const tail *t)
{
	return t->path;
}

/* Opens the file once it exists; notices truncation. 1 = readable. */
static int ensure_open(tail *t, bool *truncated)
{
	struct stat st;
	if (t->fd < 0) {
		t->fd = open(t->path, O_RDONLY | O_CLOEXEC);
		if (t->fd < 0)
			return errno == ENOENT ? 0 : tend_error_os("tail %s", t->path);
	}
	if (fstat(t->fd, &st) < 0)
		return tend_error_os("tail %s: stat", t->path);
	if (st.st_size < t->offset) {
		t->offset = t->read_pos = 0;
		t->len = 0;
		t->dropped = 0;
		if (truncated)
			*truncated = true;
	}
	return st.st_size > t->read_pos;
}

static int reserve(tail *t, size_t need)
{
	if (need <= t->cap)
		return 0;
	size_t n = t->cap ? t->cap : 65536;
	while (n < need)
		n *= 2;
	char *b = realloc(t->buf, n);
	if (!b)
		return tend_error_set(TEND_ENOMEM, "tail %s: out of memory", t->path);
	t->buf = b;
	t->cap = n;
	return 0;
}

/* Delivers complete lines from buf. An overlong line keeps only its first
 * max_line bytes in buf and counts the dropped rest in t->dropped, so the
 * offset stays exact and stays on a line boundary. */
static void deliver(tail *t, tail_line_fn fn, void *ud, int *lines)
{
	size_t start = 0;
	while (start < t->len) {
		char *nl = memchr(t->buf + start, '\n', t->len - start);
		size_t llen = (nl ? (size_t)(nl - t->buf) : t->len) - start;
		if (!nl) {
			if (llen > t->max_line) {
				t->dropped += llen - t->max_line;
				t->len = start + t->max_line;
			}
			break;
		}
		bool over = t->dropped > 0 || llen > t->max_line;
		t->offset += (int64_t)(llen + t->dropped + 1);
		t->dropped = 0;
		(*lines)++;
		start += llen + 1;
		if (fn(t->buf + start - llen - 1, over ? t->max_line : llen,
		       t->offset, over, ud))
			break;
	}
	memmove(t->buf, t->buf + start, t->len - start);
	t->len -= start;
}

int tail_poll(tail *t, size_t max_bytes, tail_line_fn fn, void *ud, bool *truncated)
{
	int lines = 0, rc;
	if (truncated)
		*truncated = false;
	t->full = false;
	if ((rc = ensure_open(t, truncated)) <= 0)
		return rc;
	size_t want = max_bytes;
	if ((rc = reserve(t, t->len + want)) < 0)
		return rc;
	ssize_t n = pread(t->fd, t->buf + t->len, want, t->read_pos);
	if (n < 0)
		return tend_error_os("tail %s: read", t->path);
	t->len += (size_t)n;
	t->read_pos += n;
	t->full = (size_t)n == want;
	deliver(t, fn, ud, &lines);
	return lines;
}

bool tail_full(const tail *t)
{
	return t->full;
}
