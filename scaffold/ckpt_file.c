/*
 * ckpt_file.c - a file written atomically in pieces (ckpt__afile, declared
 * in ckpt.h): temp file next to the target, write, fsync, rename, fsync the
 * directory, as s6 writes its state. core's fsu_write_atomic does the same
 * for a buffer in memory; checkpoints and shards are streamed from the
 * caller's arrays instead, so they need this variant.
 */
#include "ckpt.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int split_dir(const char *path, char *dir, size_t cap, const char **base)
{
	const char *slash = strrchr(path, '/');
	*base = slash ? slash + 1 : path;
	if (!**base)
		return tend_error_set(TEND_EINVAL, "%s: not a file name", path);
	if (!slash)
		return snprintf(dir, cap, ".") < (int)cap ? 0 :
			tend_error_set(TEND_EINVAL, "path too long");
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= cap)
		return tend_error_set(TEND_EINVAL, "%s: path too long", path);
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

int ckpt__afile_open(ckpt__afile *f, const char *path)
{
	char dir[PATH_MAX];
	const char *base;
	int rc;

	f->fd = -1;
	f->tmp[0] = '\0';
	if ((rc = split_dir(path, dir, sizeof dir, &base)) < 0)
		return rc;
	if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path ||
	    snprintf(f->tmp, sizeof f->tmp, "%s/.%s.tmp.%ld", dir, base,
		     (long)getpid()) >= (int)sizeof f->tmp) {
		f->tmp[0] = '\0';
		return tend_error_set(TEND_EINVAL, "%s: path too long", path);
	}
	/* A leftover of ours with this pid can only be from a dead writer. */
	unlink(f->tmp);
	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		rc = tend_error_os("%s", f->tmp);
		f->tmp[0] = '\0';
		return rc;
	}
	return 0;
}

int ckpt__afile_write(ckpt__afile *f, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(f->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return tend_error_os("%s: write", f->tmp);
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *base;
	int rc = split_dir(path, dir, sizeof dir, &base);
	if (rc < 0)
		return rc;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return tend_error_os("%s", dir);
	rc = fsync(fd) < 0 ? tend_error_os("%s: fsync", dir) : 0;
	close(fd);
	return rc;
}

int ckpt__afile_commit(ckpt__afile *f)
{
	if (fsync(f->fd) < 0)
		return tend_error_os("%s: fsync", f->tmp);
	int fd = f->fd;
	f->fd = -1;
	if (close(fd) < 0)
		return tend_error_os("%s: close", f->tmp);
	if (rename(f->tmp, f->path) < 0)
		return tend_error_os("rename %s to %s", f->tmp, f->path);
	f->tmp[0] = '\0';
	return fsync_dir(f->path);
}

void ckpt__afile_abort(ckpt__afile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmp[0])
		unlink(f->tmp);
	f->tmp[0] = '\0';
}

