/*
 * fsutil.h - file system helpers: crash-safe file replacement, bounded
 * whole-file reads, mkdir -p, rm -rf for throwaway trees, path joining.
 * Every failure message names the path involved.
 */
#ifndef TEND_FSUTIL_H
#define TEND_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Replaces path with data[0..len) so that a crash leaves either the old
 * or the new content: a temp file in the same directory is written in full,
 * given mode (exactly, not masked), fsynced and renamed over path, then the
 * directory is fsynced. On a failure before the rename the old file is
 * untouched and the temp file removed. Returns 0 or TEND_EIO/TEND_EINVAL;
 * a failure of the final directory fsync is reported although the new
 * content is then already in place. */
int fsu_write_atomic(const char *path, const void *data, size_t len, int mode);

/* Reads the whole file into *out (NUL-terminated, free() it) and its size
 * into *len (len may be NULL). Refuses files over max bytes with
 * TEND_EINVAL; a missing file is TEND_ENOTFOUND; other errors TEND_EIO. */
int fsu_read_file(char **out, size_t *len, const char *path, size_t max);

/* Creates path and its missing parents (mode for each one created). An
 * existing directory is fine; an existing non-directory is TEND_EIO. */
int fsu_mkdir_p(const char *path, int mode);

/* Removes path and everything below it, not following symlinks. A missing
 * path is fine. Refuses "" and "/" with TEND_EINVAL. For tests and scratch
 * directories, not for anything a user owns. */
int fsu_rm_rf(const char *path);

/* True when path names something (following symlinks). */
bool fsu_exists(const char *path);

/* Writes a + "/" + b into out (one slash between, b's leading slashes
 * dropped; just b when a is empty). Returns 0, or TEND_EINVAL when it does
 * not fit in cap bytes (out is then ""). */
int fsu_join(char *out, size_t cap, const char *a, const char *b);

#endif
