/*
 * fsutil.c - the file system helpers of fsutil.h. The atomic write follows
 * the usual recipe (and s6's): write a temp file next to the target, fsync
 * it, rename it over the target, fsync the directory so that the rename
 * itself survives a crash.
 */
#include "fsutil.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The directory part of path ("." when none) into dir. */
static int dir_of(char *dir, size_t cap, const char *path)
{
	const char *slash = strrchr(path, '/');
	int n;
	if (!slash)
		n = snprintf(dir, cap, ".");
	else if (slash == path)
		n = snprintf(dir, cap, "/");
	else
		n = snprintf(dir, cap, "%.*s", (int)(slash - path), path);
	if (n < 0 || (size_t)n >= cap)
		return tend_error_set(TEND_EINVAL, "path too long: %s", path);
	return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return tend_error_os("open directory %s", dir);
	int rc = fsync(fd) < 0 ? tend_error_os("fsync directory %s", dir) : 0;
	close(fd);
	return rc;
}

int fsu_write_atomic(const char *path, const void *data, size_t len, int mode)
{
	char dir[PATH_MAX], tmp[PATH_MAX] = "";
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	int fd = -1, rc;
	if (!*base)
		return tend_error_set(TEND_EINVAL, "not a file path: \"%s\"", path);
	if ((rc = dir_of(dir, sizeof dir, path)) < 0)
		return rc;
	int n = snprintf(tmp, sizeof tmp, "%s/.%s.tmp-XXXXXX", dir, base);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return tend_error_set(TEND_EINVAL, "path too long: %s", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = tend_error_os("create a temp file for %s", path);
		tmp[0] = '\0';
		goto done;
	}
	if (fchmod(fd, (mode_t)mode) < 0 || write_all(fd, data, len) < 0 ||
	    fsync(fd) < 0) {
		rc = tend_error_os("write %s", path);
		goto done;
	}
	int cfd = fd;
	fd = -1;
	if (close(cfd) < 0) {
		rc = tend_error_os("write %s", path);
		goto done;
	}
	if (rename(tmp, path) < 0) {
		rc = tend_error_os("rename %s to %s", tmp, path);
		goto done;
	}
	tmp[0] = '\0';
	rc = fsync_dir(dir);
done:
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlink(tmp);
	return rc;
}

static int too_big(const char *path, size_t max)
{
	return tend_error_set(TEND_EINVAL, "%s: file is larger than %zu bytes",
			      path, max);
}

/* Reads fd to the end into a buffer of at most max bytes (+ NUL). */
static int read_fd(int fd, const char *path, size_t hint, size_t max,
		   char **out, size_t *len)
{
	size_t cap = hint + 1, n = 0; /* +1: the read that sees EOF fits */
	int rc = 0;
	cap = cap < 4096 ? 4096 : cap > max + 1 ? max + 1 : cap;
	char *buf = malloc(cap + 1);
	if (!buf)
		return tend_error_set(TEND_ENOMEM, "out of memory reading %s", path);
	for (;;) {
		if (n == cap) {
			size_t ncap = cap > max / 2 ? max + 1 : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				rc = tend_error_set(TEND_ENOMEM, "out of memory reading %s", path);
				goto done;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = tend_error_os("read %s", path);
			goto done;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			rc = too_big(path, max);
			goto done;
		}
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
done:
	free(buf);
	return rc;
}

int fsu_read_file(char **out, size_t *len, const char *path, size_t max)
{
	struct stat st;
	size_t n = 0;
	int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
	*out = NULL;
	if (max > SIZE_MAX / 2)
		max = SIZE_MAX / 2; /* so that max + 1 cannot wrap */
	if (fd < 0) {
		int code = errno == ENOENT ? TEND_ENOTFOUND : TEND_EIO;
		return tend_error_set(code, "open %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		rc = tend_error_os("stat %s", path);
		goto done;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = tend_error_set(TEND_EIO, "read %s: %s", path, strerror(EISDIR));
		goto done;
	}
	if (S_ISREG(st.st_mode) && (unsigned long long)st.st_size > max) {
		rc = too_big(path, max);
		goto done;
	}
	/* st_size is only a hint: /proc files say 0, files may grow */
	rc = read_fd(fd, path, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0,
		     max, out, &n);
	if (rc == 0 && len)
		*len = n;
done:
	close(fd);
	return rc;
}

/* mkdir that accepts an existing directory. */
static int mkdir_one(const char *path, int mode)
{
	struct stat st;
	if (mkdir(path, (mode_t)mode) == 0)
		return 0;
	if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (errno == EEXIST)
		errno = ENOTDIR;
	return tend_error_os("mkdir %s", path);
}

int fsu_mkdir_p(const char *path, int mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0)
		return tend_error_set(TEND_EINVAL, "mkdir: empty path");
	if (n >= sizeof buf)
		return tend_error_set(TEND_EINVAL, "path too long: %s", path);
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		int rc = mkdir_one(buf, mode);
		*p = '/';
		if (rc < 0)
			return rc;
	}
	return mkdir_one(buf, mode);
}

/* nftw's callback cannot take a context: the failure waits here. */
static _Thread_local int rm_errno;
static _Thread_local char rm_path[PATH_MAX];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	if (remove(p) == 0 || errno == ENOENT)
		return 0;
	rm_errno = errno;
	snprintf(rm_path, sizeof rm_path, "%s", p);
	return 1;
}

int fsu_rm_rf(const char *path)
{
	struct stat st;
	if (path[strspn(path, "/")] == '\0')
		return tend_error_set(TEND_EINVAL, "refusing to remove \"%s\"", path);
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : tend_error_os("stat %s", path);
	rm_errno = 0;
	int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (r == 1) {
		errno = rm_errno;
		return tend_error_os("remove %s", rm_path);
	}
	if (r < 0)
		return tend_error_os("remove %s", path);
	return 0;
}

bool fsu_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

int fsu_join(char *out, size_t cap, const char *a, const char *b)
{
	size_t la = strlen(a);
	const char *sep = la && a[la - 1] != '/' ? "/" : "";
	if (la)
		b += strspn(b, "/");
	int n = snprintf(out, cap, "%s%s%s", a, sep, b);
	if (n < 0 || (size_t)n >= cap) {
		if (cap)
			out[0] = '\0';
		return tend_error_set(TEND_EINVAL, "path too long: %s%s%s", a, sep, b);
	}
	return 0;
}
