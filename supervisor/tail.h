/*
 * tail.h - reading a growing file (metrics.jsonl, stdout.log) line by line
 * from a byte offset, as `tail -f` does, without ever blocking.
 *
 * Only complete lines are delivered, each with the offset just past its
 * newline: the caller commits that offset with the rows made from the
 * line, so a restart resumes exactly where the store left off.
 */
#ifndef TAIL_H
#define TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tail tail;

/* Called per complete line (without its newline). overlong: the line was
 * longer than max_line and only its first max_line bytes are given.
 * Returning non-zero stops the poll (the line counts as consumed). */
typedef int (*tail_line_fn)(const char *line, size_t len, int64_t end_offset,
			    bool overlong, void *ud);

/* Opens nothing yet: the file may not exist until the trainer starts.
 * The caller owns *out (tail_free). */
int tail_new(tail **out, const char *path, int64_t offset, size_t max_line);
void tail_free(tail *t);

/* Reads at most max_bytes of new data and delivers the complete lines in
 * it. Returns the number of lines delivered (>= 0), or a negative code.
 * A file that shrank below the offset (rotated or truncated) restarts at
 * 0 and sets *truncated (may be NULL). */
int tail_poll(tail *t, size_t max_bytes, tail_line_fn fn, void *ud, bool *truncated);

/* True when the last poll read all max_bytes it was allowed: more may be
 * waiting that no new write announced. */
bool tail_full(const tail *t);
/* The offset just past the last delivered line. */
int64_t tail_offset(const tail *t);
const char *tail_path(const tail *t);

#endif
