/*
 * ckpt.c - checkpoint files (format in ckpt.h): the streaming atomic file,
 * the writer, the verifying reader, and the checkpoints directory.
 *
 * The writer never copies a section: it hashes and writes straight from
 * the caller's arrays in chunks. The reader maps the file and hashes it
 * once before trusting a single field past the fixed header, so a torn or
 * flipped file is refused before anything is parsed from it.
 */
#include "ckpt.h"
#include "sha256.h"
#include "tend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "sections are stored and mapped as host floats: little-endian assumed");

enum {
	FIXED = 64,          /* bytes of the fixed header */
	ALIGN = 64,          /* section data alignment */
	DIGEST = 32,         /* SHA-256 */
	DTYPE_F32 = 1,
	CHUNK = 1 << 20,     /* hash-then-write granularity: stays in cache */
	NAME_MAX_LEN = 255,
};

/* ---- little-endian fields ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* ---- key=value text ---- */

typedef struct kv {
	char *key, *val;
} kv;

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

/* Parses key=value lines of text[0..len) into a malloc'd array (one
 * allocation holding the strings too). Blank and '#' lines are skipped; a
 * line without '=' or a repeated key is TEND_EINVAL, named by what. */
static int kv_parse(const char *text, size_t len, const char *what, kv **out, size_t *n)
{
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	kv *v = malloc(lines * sizeof *v + len + 1);
	if (!v)
		return tend_error_set(TEND_ENOMEM, "%s: out of memory", what);
	char *buf = (char *)(v + lines), *line = buf, *next;
	memcpy(buf, text, len);
	buf[len] = '\0';
	*n = 0;
	for (size_t no = 1; line; line = next, no++) {
		char *end = strchr(line, '\n');
		next = end ? end + 1 : NULL;
		char *s = trim(line, end ? end : line + strlen(line)), *eq;
		if (!*s || *s == '#')
			continue;
		if (!(eq = strchr(s, '='))) {
			int rc = tend_error_set(TEND_EINVAL, "%s: line %zu has no '=': "
						"%s", what, no, s);
			free(v); /* s points into it */
			return rc;
		}
		*eq = '\0';
		v[*n] = (kv){trim(s, eq), trim(eq + 1, eq + 1 + strlen(eq + 1))};
		for (size_t i = 0; i < *n; i++)
			if (strcmp(v[i].key, v[*n].key) == 0) {
				int rc = tend_error_set(TEND_EINVAL, "%s: key %s appears "
							"twice", what, v[*n].key);
				free(v);
				return rc;
			}
		(*n)++;
	}
	*out = v;
	return 0;
}

static const char *kv_get(const kv *v, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].key, key) == 0)
			return v[i].val;
	return NULL;
}

/* ---- the writer ---- */

typedef struct wsec {
	char *name;
	const float *data;
	size_t n;
} wsec;

typedef struct blob {
	uint8_t *p;
	size_t n;
} blob;

enum { B_CONFIG, B_META, B_RNG, B_CURSOR, B_COMMIT, N_BLOBS };

struct ckpt_writer {
	long step;
	blob b[N_BLOBS];
	wsec *secs;
	size_t nsec, cap;
};

int ckpt_writer_new(ckpt_writer **out, long step)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return tend_error_set(TEND_ENOMEM, "checkpoint writer: out of memory");
	(*out)->step = step;
	return 0;
}

void ckpt_writer_free(ckpt_writer *w)
{
	if (!w)
		return;
	for (int i = 0; i < N_BLOBS; i++)
		free(w->b[i].p);
	for (size_t i = 0; i < w->nsec; i++)
		free(w->secs[i].name);
	free(w->secs);
	free(w);
}

/* Replaces (append = 0) or extends blob i with data[0..n). */
static int blob_set(ckpt_writer *w, int i, const void *data, size_t n, int append)
{
	blob *b = &w->b[i];
	size_t at = append ? b->n : 0;
	if (at + n > UINT32_MAX)
		return tend_error_set(TEND_EINVAL, "checkpoint: a header field over 4 GiB");
	uint8_t *p = realloc(b->p, at + n + 1);
	if (!p)
		return tend_error_set(TEND_ENOMEM, "checkpoint writer: out of memory");
	if (n)
		memcpy(p + at, data, n);
	b->p = p;
	b->n = at + n;
	return 0;
}

int ckpt_writer_config(ckpt_writer *w, const char *text)
{
	kv *v;
	size_t n;
	int rc = kv_parse(text, strlen(text), "model config", &v, &n);
	if (rc < 0)
		return rc;
	free(v);
	return blob_set(w, B_CONFIG, text, strlen(text), 0);
}

int ckpt_writer_meta(ckpt_writer *w, const char *key, const char *value)
{
	if (!*key || strpbrk(key, "=\n#") || strchr(value, '\n') || *key == ' ')
		return tend_error_set(TEND_EINVAL, "checkpoint meta: bad key '%s' or "
				      "a newline in its value", key);
	int rc = blob_set(w, B_META, key, strlen(key), 1);
	if (rc == 0)
		rc = blob_set(w, B_META, "=", 1, 1);
	if (rc == 0)
		rc = blob_set(w, B_META, value, strlen(value), 1);
	if (rc == 0)
		rc = blob_set(w, B_META, "\n", 1, 1);
	return rc;
}

int ckpt_writer_rng(ckpt_writer *w, const void *data, size_t n)
{
	return blob_set(w, B_RNG, data, n, 0);
}

int ckpt_writer_cursor(ckpt_writer *w, const void *data, size_t n)
{
	return blob_set(w, B_CURSOR, data, n, 0);
}

int ckpt_writer_commit(ckpt_writer *w, const char *commit)
{
	return blob_set(w, B_COMMIT, commit, strlen(commit), 0);
}

int ckpt_writer_add(ckpt_writer *w, const char *name, const float *data, size_t n)
{
	size_t len = strlen(name);
	if (len < 1 || len > NAME_MAX_LEN)
		return tend_error_set(TEND_EINVAL, "checkpoint section name must be "
				      "1..%d bytes", NAME_MAX_LEN);
	for (size_t i = 0; i < w->nsec; i++)
		if (strcmp(w->secs[i].name, name) == 0)
			return tend_error_set(TEND_EINVAL, "checkpoint section %s "
					      "added twice", name);
	if (n && !data)
		return tend_error_set(TEND_EINVAL, "checkpoint section %s: no data", name);
	if (w->nsec == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 8;
		wsec *s = realloc(w->secs, cap * sizeof *s);
		if (!s)
			return tend_error_set(TEND_ENOMEM, "checkpoint writer: out of memory");
		w->secs = s;
		w->cap = cap;
	}
	if (!(w->secs[w->nsec].name = strdup(name)))
		return tend_error_set(TEND_ENOMEM, "checkpoint writer: out of memory");
	w->secs[w->nsec].data = data;
	w->secs[w->nsec].n = n;
	w->nsec++;
	return 0;
}

static uint64_t align_up(uint64_t x)
{
	return (x + ALIGN - 1) / ALIGN * ALIGN;
}

/* Bytes of header: fixed part, blobs, table, padding. */
static uint64_t header_size(const ckpt_writer *w)
{
	uint64_t n = FIXED;
	for (int i = 0; i < N_BLOBS; i++)
		n += w->b[i].n;
	for (size_t i = 0; i < w->nsec; i++)
		n += 2 + strlen(w->secs[i].name) + 1 + 8 + 8;
	return align_up(n);
}

/* Builds the header into hdr (header_size bytes, zeroed); returns the
 * total file size. */
static uint64_t build_header(const ckpt_writer *w, uint8_t *hdr, uint64_t hsize)
{
	uint64_t off = hsize;
	uint8_t *p = hdr + FIXED;

	memcpy(hdr, CKPT_MAGIC, 8);
	put_le(hdr + 8, CKPT_VERSION, 4);
	put_le(hdr + 12, hsize, 4);
	put_le(hdr + 24, (uint64_t)w->step, 8);
	put_le(hdr + 32, w->nsec, 4);
	for (int i = 0; i < N_BLOBS; i++) {
		put_le(hdr + 40 + 4 * i, w->b[i].n, 4);
		if (w->b[i].n)
			memcpy(p, w->b[i].p, w->b[i].n);
		p += w->b[i].n;
	}
	for (size_t i = 0; i < w->nsec; i++) {
		size_t len = strlen(w->secs[i].name);
		put_le(p, len, 2);
		memcpy(p + 2, w->secs[i].name, len);
		p += 2 + len;
		*p++ = DTYPE_F32;
		put_le(p, w->secs[i].n, 8);
		put_le(p + 8, off, 8);
		p += 16;
		off = align_up(off + 4 * (uint64_t)w->secs[i].n);
	}
	put_le(hdr + 16, off + DIGEST, 8);
	return off + DIGEST;
}

/* Hashes and writes buf in cache-sized chunks. */
static int put_hashed(ckpt__afile *f, sha256_ctx *h, const void *buf, size_t n)
{
	const char *p = buf;
	for (size_t at = 0; at < n; at += CHUNK) {
		size_t k = n - at < CHUNK ? n - at : CHUNK;
		sha256_update(h, p + at, k);
		int rc = ckpt__afile_write(f, p + at, k);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int write_body(const ckpt_writer *w, ckpt__afile *f, sha256_ctx *h,
		      const uint8_t *hdr, uint64_t hsize)
{
	static const uint8_t zero[ALIGN];
	uint8_t digest[DIGEST];
	int rc = put_hashed(f, h, hdr, hsize);
	for (size_t i = 0; rc == 0 && i < w->nsec; i++) {
		uint64_t bytes = 4 * (uint64_t)w->secs[i].n;
		rc = put_hashed(f, h, w->secs[i].data, bytes);
		if (rc == 0)
			rc = put_hashed(f, h, zero, align_up(bytes) - bytes);
	}
	if (rc < 0)
		return rc;
	sha256_final(h, digest);
	return ckpt__afile_write(f, digest, DIGEST);
}

/* The files this thread wrote last, by identity: ckpt_retain trusts them
 * without re-reading them (a checkpoint is hashed as it is written, and
 * re-hashing the 1.5 GB just written after every save would double its
 * cost). Any change to the file (size, mtime, inode) ends the trust. */
typedef struct written_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
} written_id;

static _Thread_local written_id written[4];
static _Thread_local unsigned nwritten;

static int same_file(const written_id *a, const struct stat *st)
{
	return a->dev == st->st_dev && a->ino == st->st_ino && a->size == st->st_size &&
	       a->mtime.tv_sec == st->st_mtim.tv_sec &&
	       a->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static void remember_written(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return;
	written[nwritten++ % 4] = (written_id){st.st_dev, st.st_ino, st.st_size,
					       st.st_mtim};
}

static int written_here(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return 0;
	for (unsigned i = 0; i < 4 && i < nwritten; i++)
		if (same_file(&written[i], &st))
			return 1;
	return 0;
}

int ckpt_write(ckpt_writer *w, const char *path)
{
	uint64_t hsize = header_size(w);
	uint8_t *hdr = NULL;
	ckpt__afile f = {.fd = -1};
	sha256_ctx h;
	int rc;

	if (hsize > UINT32_MAX)
		return tend_error_set(TEND_EINVAL, "%s: checkpoint header over 4 GiB", path);
	if (!(hdr = calloc(1, hsize)))
		return tend_error_set(TEND_ENOMEM, "%s: out of memory", path);
	build_header(w, hdr, hsize);
	sha256_init(&h);
	if ((rc = ckpt__afile_open(&f, path)) < 0)
		goto done;
	if ((rc = write_body(w, &f, &h, hdr, hsize)) < 0 ||
	    (rc = ckpt__afile_commit(&f)) < 0)
		goto done;
	remember_written(path);
done:
	if (rc < 0)
		ckpt__afile_abort(&f);
	free(hdr);
	return rc;
}

/* ---- the reader ---- */

typedef struct rsec {
	char name[NAME_MAX_LEN + 1];
	const float *data;
	size_t n;
} rsec;

struct ckpt {
	char *path;
	uint8_t *map;
	size_t len;
	long step;
	kv *config, *meta;
	size_t nconfig, nmeta;
	char *text[N_BLOBS]; /* NUL-terminated copies of the blobs */
	size_t blen[N_BLOBS];
	rsec *secs;
	size_t nsec;
};

void ckpt_free(ckpt *c)
{
	if (!c)
		return;
	if (c->map)
		munmap(c->map, c->len);
	for (int i = 0; i < N_BLOBS; i++)
		free(c->text[i]);
	free(c->config);
	free(c->meta);
	free(c->secs);
	free(c->path);
	free(c);
}

/* Checks what can be checked before hashing: magic, version, sizes. */
static int check_fixed(const ckpt *c, const uint8_t *fix, size_t got)
{
	const char *p = c->path;
	size_t size = c->len;
	if (got >= 8 && memcmp(fix, CKPT_MAGIC, 8) != 0)
		return tend_error_set(TEND_EINVAL, "%s: not a tend checkpoint (bad "
				      "magic)", p);
	if (size < FIXED)
		return tend_error_set(TEND_EINVAL, "%s: truncated (%zu bytes, header "
				      "needs %d)", p, size, FIXED);
	uint32_t version = (uint32_t)get_le(fix + 8, 4);
	if (version > CKPT_VERSION)
		return tend_error_set(TEND_EVERSION, "%s: format version %u is newer "
				      "than this tend (knows %d)", p, version, CKPT_VERSION);
	if (version == 0)
		return tend_error_set(TEND_EINVAL, "%s: format version 0 is not valid", p);
	uint64_t hsize = get_le(fix + 12, 4), fsize = get_le(fix + 16, 8);
	if (hsize < FIXED || fsize < hsize + DIGEST)
		return tend_error_set(TEND_EINVAL, "%s: corrupt header (sizes %llu, "
				      "%llu)", p, (unsigned long long)hsize,
				      (unsigned long long)fsize);
	if (size < hsize)
		return tend_error_set(TEND_EINVAL, "%s: truncated (%zu bytes, header "
				      "needs %llu)", p, size, (unsigned long long)hsize);
	if (size < fsize)
		return tend_error_set(TEND_EINVAL, "%s: truncated (%zu bytes, header "
				      "needs %llu)", p, size, (unsigned long long)fsize);
	if (size > fsize)
		return tend_error_set(TEND_EINVAL, "%s: size %zu bytes, header says "
				      "%llu: trailing bytes, file is corrupt", p, size,
				      (unsigned long long)fsize);
	return 0;
}

static int verify_digest(const ckpt *c)
{
	uint8_t digest[DIGEST];
	sha256_ctx h;
	size_t body = c->len - DIGEST;

	madvise(c->map, c->len, MADV_SEQUENTIAL);
	sha256_init(&h);
	for (size_t at = 0; at < body; at += CHUNK)
		sha256_update(&h, c->map + at, body - at < CHUNK ? body - at : CHUNK);
	sha256_final(&h, digest);
	if (memcmp(digest, c->map + body, DIGEST) != 0)
		return tend_error_set(TEND_EINVAL, "%s: checksum mismatch: file is "
				      "corrupt", c->path);
	return 0;
}

static int corrupt(const ckpt *c, const char *what)
{
	return tend_error_set(TEND_EINVAL, "%s: corrupt header: %s (checksum "
			      "matched: written by a faulty tend?)", c->path, what);
}

/* Copies the blobs out of the verified header and parses the two texts. */
static int parse_blobs(ckpt *c, const uint8_t **pp, const uint8_t *end)
{
	const uint8_t *p = *pp;
	int rc;
	for (int i = 0; i < N_BLOBS; i++) {
		uint64_t n = get_le(c->map + 40 + 4 * i, 4);
		if (n > (uint64_t)(end - p))
			return corrupt(c, "a field runs past the header");
		if (!(c->text[i] = malloc(n + 1)))
			return tend_error_set(TEND_ENOMEM, "%s: out of memory", c->path);
		memcpy(c->text[i], p, n);
		c->text[i][n] = '\0';
		c->blen[i] = n;
		p += n;
	}
	*pp = p;
	if ((rc = kv_parse(c->text[B_CONFIG], c->blen[B_CONFIG], c->path,
			   &c->config, &c->nconfig)) < 0)
		return rc;
	return kv_parse(c->text[B_META], c->blen[B_META], c->path, &c->meta, &c->nmeta);
}

static int parse_table(ckpt *c, const uint8_t *p, const uint8_t *end)
{
	uint64_t hsize = get_le(c->map + 12, 4), body = c->len - DIGEST, prev = hsize;
	for (size_t i = 0; i < c->nsec; i++) {
		rsec *s = &c->secs[i];
		if (end - p < 2)
			return corrupt(c, "section table runs past the header");
		size_t len = get_le(p, 2);
		if (len < 1 || len > NAME_MAX_LEN || (size_t)(end - p) < 2 + len + 17)
			return corrupt(c, "bad section name");
		memcpy(s->name, p + 2, len);
		s->name[len] = '\0';
		p += 2 + len;
		uint64_t n = get_le(p + 1, 8), off = get_le(p + 9, 8);
		if (*p != DTYPE_F32)
			return corrupt(c, "unknown section dtype");
		if (off < prev || off % ALIGN || n > (body - off) / 4)
			return corrupt(c, "section data out of place");
		s->data = (const float *)(c->map + off);
		s->n = (size_t)n;
		prev = off + 4 * n;
		p += 17;
	}
	return 0;
}

static int parse_header(ckpt *c)
{
	uint64_t hsize = get_le(c->map + 12, 4);
	const uint8_t *p = c->map + FIXED, *end = c->map + hsize;
	int rc;

	c->step = (long)get_le(c->map + 24, 8);
	c->nsec = get_le(c->map + 32, 4);
	if (c->nsec > hsize / 20)
		return corrupt(c, "section count");
	if (!(c->secs = calloc(c->nsec + 1, sizeof *c->secs)))
		return tend_error_set(TEND_ENOMEM, "%s: out of memory", c->path);
	if ((rc = parse_blobs(c, &p, end)) < 0)
		return rc;
	return parse_table(c, p, end);
}

static int read_fixed(ckpt *c, int fd, uint8_t *fix, size_t *got)
{
	struct stat st;
	ssize_t r;
	if (fstat(fd, &st) < 0)
		return tend_error_os("%s", c->path);
	if (!S_ISREG(st.st_mode))
		return tend_error_set(TEND_EINVAL, "%s: not a regular file", c->path);
	c->len = (size_t)st.st_size;
	do
		r = pread(fd, fix, FIXED, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return tend_error_os("%s", c->path);
	*got = (size_t)r;
	return check_fixed(c, fix, *got);
}

int ckpt_open(ckpt **out, const char *path)
{
	uint8_t fix[FIXED];
	size_t got;
	ckpt *c = NULL;
	int fd = -1, rc;

	*out = NULL;
	if (!(c = calloc(1, sizeof *c)) || !(c->path = strdup(path))) {
		rc = tend_error_set(TEND_ENOMEM, "%s: out of memory", path);
		goto done;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = errno == ENOENT ? tend_error_set(TEND_ENOTFOUND, "%s: no such "
			"checkpoint", path) : tend_error_os("%s", path);
		goto done;
	}
	if ((rc = read_fixed(c, fd, fix, &got)) < 0)
		goto done;
	c->map = mmap(NULL, c->len, PROT_READ, MAP_SHARED, fd, 0);
	if (c->map == MAP_FAILED) {
		c->map = NULL;
		rc = tend_error_os("%s: mmap", path);
		goto done;
	}
	if ((rc = verify_digest(c)) < 0 || (rc = parse_header(c)) < 0)
		goto done;
	*out = c;
	c = NULL;
done:
	if (fd >= 0)
		close(fd);
	ckpt_free(c);
	return rc;
}

long ckpt_step(const ckpt *c)
{
	return c->step;
}

int ckpt_section(const ckpt *c, const char *name, const float **data, size_t *n)
{
	for (size_t i = 0; i < c->nsec; i++)
		if (strcmp(c->secs[i].name, name) == 0) {
			*data = c->secs[i].data;
			*n = c->secs[i].n;
			return 0;
		}
	return tend_error_set(TEND_ENOTFOUND, "%s: no section %s", c->path, name);
}

int ckpt_section_copy(const ckpt *c, const char *name, float *dst, size_t n)
{
	const float *src;
	size_t have;
	int rc = ckpt_section(c, name, &src, &have);
	if (rc < 0)
		return rc;
	if (have != n)
		return tend_error_set(TEND_EINVAL, "%s: section %s holds %zu floats, "
				      "the model wants %zu", c->path, name, have, n);
	if (n)
		memcpy(dst, src, n * sizeof *dst);
	return 0;
}

size_t ckpt_section_count(const ckpt *c)
{
	return c->nsec;
}

const char *ckpt_section_name(const ckpt *c, size_t i)
{
	return i < c->nsec ? c->secs[i].name : NULL;
}

const char *ckpt_meta(const ckpt *c, const char *key)
{
	return kv_get(c->meta, c->nmeta, key);
}

const char *ckpt_config_get(const ckpt *c, const char *key)
{
	return kv_get(c->config, c->nconfig, key);
}

const char *ckpt_config(const ckpt *c)
{
	return c->text[B_CONFIG];
}

const void *ckpt_rng(const ckpt *c, size_t *n)
{
	*n = c->blen[B_RNG];
	return c->text[B_RNG];
}

const void *ckpt_cursor(const ckpt *c, size_t *n)
{
	*n = c->blen[B_CURSOR];
	return c->text[B_CURSOR];
}

const char *ckpt_commit(const ckpt *c)
{
	return c->text[B_COMMIT];
}

int ckpt_check_config(const ckpt *c, const char *config_text)
{
	kv *now;
	size_t n;
	int rc = kv_parse(config_text, strlen(config_text), "model config", &now, &n);
	if (rc < 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < c->nconfig; i++) {
		const char *v = kv_get(now, n, c->config[i].key);
		if (!v || strcmp(v, c->config[i].val) != 0)
			rc = tend_error_set(TEND_EINVAL, "%s: model config differs: %s "
				"is %s in the checkpoint, %s now", c->path,
				c->config[i].key, c->config[i].val, v ? v : "absent");
	}
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (!kv_get(c->config, c->nconfig, now[i].key))
			rc = tend_error_set(TEND_EINVAL, "%s: model config differs: %s "
				"is absent in the checkpoint, %s now", c->path,
				now[i].key, now[i].val);
	free(now);
	return rc;
}

/* ---- the checkpoints directory ---- */

int ckpt_path(char *out, size_t cap, const char *dir, long step)
{
	if (snprintf(out, cap, "%s/" CKPT_NAME_FMT, dir, step) >= (int)cap)
		return tend_error_set(TEND_EINVAL, "%s: path too long", dir);
	return 0;
}

/* The step of a name "ckpt-<digits>.bin", or -1. */
static long step_of(const char *name)
{
	if (strncmp(name, "ckpt-", 5) != 0)
		return -1;
	const char *p = name + 5;
	long step = 0;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (step > (LONG_MAX - 9) / 10)
			return -1;
		step = step * 10 + (*p - '0');
	}
	return strcmp(p, ".bin") == 0 ? step : -1;
}

static int cmp_newest(const void *a, const void *b)
{
	long x = ((const ckpt_entry *)a)->step, y = ((const ckpt_entry *)b)->step;
	return (x < y) - (x > y);
}

static int add_entry(ckpt_entry **v, size_t *n, size_t *cap, const char *name, long step)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 16;
		ckpt_entry *p = realloc(*v, c * sizeof *p);
		if (!p)
			return tend_error_set(TEND_ENOMEM, "checkpoint list: out of memory");
		*v = p;
		*cap = c;
	}
	(*v)[*n].step = step;
	snprintf((*v)[*n].name, sizeof (*v)[*n].name, "%s", name);
	(*n)++;
	return 0;
}

int ckpt_list(const char *dir, ckpt_entry **out, size_t *n)
{
	ckpt_entry *v = NULL;
	size_t cap = 0;
	struct dirent *e;
	int rc = 0;

	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : tend_error_os("%s", dir);
	while (rc == 0 && (e = readdir(d))) {
		long step = step_of(e->d_name);
		if (step >= 0 && strlen(e->d_name) < sizeof v->name)
			rc = add_entry(&v, n, &cap, e->d_name, step);
	}
	closedir(d);
	if (rc < 0) {
		free(v);
		*n = 0;
		return rc;
	}
	if (*n)
		qsort(v, *n, sizeof *v, cmp_newest);
	*out = v;
	return 0;
}

/* 1 when dir/name opens and verifies, or (trust_own) this thread wrote
 * it and it has not changed since. */
static int verifies(const char *dir, const char *name, int trust_own)
{
	char path[PATH_MAX];
	ckpt *c = NULL;
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
		return 0;
	if (trust_own && written_here(path))
		return 1;
	int ok = ckpt_open(&c, path) == 0;
	ckpt_free(c);
	return ok;
}

int ckpt_latest_good(const char *dir, long before_step, char *path_out, size_t cap)
{
	ckpt_entry *v;
	size_t n, tried = 0;
	char why[512] = "";
	int rc = ckpt_list(dir, &v, &n);
	if (rc < 0)
		return rc;
	rc = TEND_ENOTFOUND;
	for (size_t i = 0; i < n && rc == TEND_ENOTFOUND; i++) {
		if (v[i].step >= before_step)
			continue;
		tried++;
		if (verifies(dir, v[i].name, 0)) {
			rc = snprintf(path_out, cap, "%s/%s", dir, v[i].name) < (int)cap ?
			     0 : tend_error_set(TEND_EINVAL, "%s: path too long", dir);
		} else if (!why[0]) {
			snprintf(why, sizeof why, "%s", tend_error_last());
		}
	}
	free(v);
	if (rc == TEND_ENOTFOUND)
		tend_error_set(rc, "%s: no good checkpoint before step %ld (%zu "
			       "checked%s%s)", dir, before_step, tried,
			       why[0] ? "; newest: " : "", why);
	return rc;
}

/* Removes ".ckpt-*.tmp.<pid>" files whose writer process is gone. */
static void remove_dead_temps(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d))) {
		const char *t = strstr(e->d_name, ".tmp.");
		if (strncmp(e->d_name, ".ckpt-", 6) != 0 || !t)
			continue;
		char *end;
		long pid = strtol(t + 5, &end, 10);
		if (*end || pid <= 0 || pid == (long)getpid() ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
			unlink(path);
	}
	closedir(d);
}

int ckpt_retain(const char *dir, int keep_last, long keep_every, int *deleted)
{
	char path[PATH_MAX];
	ckpt_entry *v;
	size_t n;
	int gone = 0, rc = ckpt_list(dir, &v, &n);
	if (rc < 0)
		return rc;
	char *keep = calloc(n + 1, 1);
	if (!keep) {
		free(v);
		return tend_error_set(TEND_ENOMEM, "retention: out of memory");
	}
	for (size_t i = 0; i < n; i++)
		keep[i] = i == 0 || (long)i < keep_last ||
			  (keep_every > 0 && v[i].step % keep_every == 0);
	for (size_t i = 0; i < n; i++)
		if (verifies(dir, v[i].name, 1)) {
			keep[i] = 1;
			break;
		}
	for (size_t i = 0; i < n; i++) {
		if (keep[i] || snprintf(path, sizeof path, "%s/%s", dir,
					v[i].name) >= (int)sizeof path)
			continue;
		if (unlink(path) < 0 && errno != ENOENT) {
			rc = tend_error_os("%s", path);
			break;
		}
		gone++;
	}
	remove_dead_temps(dir);
	free(keep);
	free(v);
	if (deleted)
		*deleted = gone;
	return rc;
}
