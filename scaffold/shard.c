/*
 * shard.c - llm.c token shards: atomic writing, and a validating read-only
 * mapping. The tokens are used in place from the mapping, which is why the
 * host must be little-endian like the file.
 */
#include "shard.h"
#include "ckpt.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "shards are mapped in place: a little-endian host is assumed");

struct shard {
	void *map;
	size_t map_len;
	size_t n;
};

int shard_write(const char *path, const uint16_t *tok, size_t n)
{
	int32_t hdr[256] = {SHARD_MAGIC, SHARD_VERSION, 0};
	ckpt__afile f;
	int rc;

	if (n > INT32_MAX)
		return tend_error_set(TEND_EINVAL, "%s: %zu tokens do not fit one "
			"shard (at most %d)", path, n, INT32_MAX);
	hdr[2] = (int32_t)n;
	if ((rc = ckpt__afile_open(&f, path)) < 0)
		return rc;
	if ((rc = ckpt__afile_write(&f, hdr, sizeof hdr)) < 0 ||
	    (rc = ckpt__afile_write(&f, tok, n * sizeof *tok)) < 0 ||
	    (rc = ckpt__afile_commit(&f)) < 0)
		ckpt__afile_abort(&f);
	return rc;
}

/* Validates the header against the file size; fd is open on path. */
static int check_header(const char *path, int fd, size_t *ntok)
{
	int32_t hdr[256];
	struct stat st;
	ssize_t got;

	if (fstat(fd, &st) < 0)
		return tend_error_os("%s", path);
	if (!S_ISREG(st.st_mode))
		return tend_error_set(TEND_EINVAL, "%s: not a regular file", path);
	if ((size_t)st.st_size < SHARD_HEADER_BYTES)
		return tend_error_set(TEND_EINVAL, "%s: size %lld bytes, too small "
			"for the %d-byte header: not an llm.c token shard", path,
			(long long)st.st_size, SHARD_HEADER_BYTES);
	do
		got = pread(fd, hdr, sizeof hdr, 0);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return tend_error_os("%s", path);
	if (got != (ssize_t)sizeof hdr)
		return tend_error_set(TEND_EIO, "%s: short read of the header", path);
	if (hdr[0] != SHARD_MAGIC)
		return tend_error_set(TEND_EINVAL, "%s: bad magic %d (want %d): not "
			"an llm.c token shard", path, hdr[0], SHARD_MAGIC);
	if (hdr[1] != SHARD_VERSION)
		return tend_error_set(TEND_EINVAL, "%s: version %d is not supported "
			"(want %d)", path, hdr[1], SHARD_VERSION);
	if (hdr[2] < 0)
		return tend_error_set(TEND_EINVAL, "%s: negative token count %d",
			path, hdr[2]);
	uint64_t want = SHARD_HEADER_BYTES + 2 * (uint64_t)hdr[2];
	if ((uint64_t)st.st_size != want)
		return tend_error_set(TEND_EINVAL, "%s: size %lld bytes, header says "
			"%d tokens (want %llu bytes)", path, (long long)st.st_size,
			hdr[2], (unsigned long long)want);
	*ntok = (size_t)hdr[2];
	return 0;
}

int shard_peek(const char *path, size_t *ntok)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tend_error_os("%s", path);
	int rc = check_header(path, fd, ntok);
	close(fd);
	return rc;
}

static int scan_vocab(const char *path, const uint16_t *tok, size_t n, int vocab)
{
	for (size_t i = 0; i < n; i++)
		if (tok[i] >= vocab)
			return tend_error_set(TEND_EINVAL, "%s: token %u at index %zu "
				"is outside the vocabulary (%d)", path, tok[i], i, vocab);
	return 0;
}

int shard_open(shard **out, const char *path, int vocab)
{
	shard *s = NULL;
	int fd = -1, rc;
	size_t n = 0;

	*out = NULL;
	if (vocab < 1 || vocab > 65536)
		return tend_error_set(TEND_EINVAL, "%s: vocabulary %d is outside "
			"1..65536", path, vocab);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return tend_error_os("%s", path);
	if ((rc = check_header(path, fd, &n)) < 0)
		goto done;
	if (!(s = calloc(1, sizeof *s))) {
		rc = tend_error_set(TEND_ENOMEM, "%s: out of memory", path);
		goto done;
	}
	s->n = n;
	s->map_len = SHARD_HEADER_BYTES + 2 * n;
	s->map = mmap(NULL, s->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		rc = tend_error_os("%s: mmap", path);
		goto done;
	}
	if ((rc = scan_vocab(path, shard_tokens(s), n, vocab)) < 0)
		goto done;
	*out = s;
	s = NULL;
done:
	shard_free(s);
	close(fd);
	return rc;
}

const uint16_t *shard_tokens(const shard *s)
{
	if (!s->n)
		return NULL;
	return (const uint16_t *)((const char *)s->map + SHARD_HEADER_BYTES);
}

size_t shard_len(const shard *s)
{
	return s->n;
}

void shard_free(shard *s)
{
	if (!s)
		return;
	if (s->map)
		munmap(s->map, s->map_len);
	free(s);
}
