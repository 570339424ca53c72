/*
 * loader.c - batches from a directory of token shards in a seeded order.
 *
 * Only one shard is mapped at a time: the loader checks every header when
 * it opens (cheap), and a shard's tokens when it first reads from it, so a
 * directory of many gigabytes opens in milliseconds. The per-epoch orders
 * are pure functions of (seed, epoch, shard); see loader.h for why.
 */
#include "loader.h"
#include "shard.h"
#include "tend.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loader {
	char **paths;         /* shard files, sorted by name */
	size_t *ntok, *nslots; /* per file */
	size_t nshards, total_slots, total_tokens;
	int B, T, vocab;
	int shuffle;
	loader_cursor cur;    /* always normalized: pos < nslots of its shard */
	size_t *order;        /* file index of each ordinal, for order_epoch */
	uint64_t order_epoch;
	int have_order;
	shard *sh;            /* the mapped shard, file index sh_file */
	size_t sh_file;
	uint32_t *slots;      /* slot order of sh_file in slots_epoch */
	uint64_t slots_epoch;
	int have_slots;
};

/* splitmix64: a good 64-bit mixer, and a generator when iterated. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t next_rand(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	return mix(*s);
}

/* The generator state for (seed, epoch, which): 0 for the shard order,
 * file index + 1 for one shard's slot order. */
static uint64_t stream_for(uint64_t seed, uint64_t epoch, uint64_t which)
{
	return mix(mix(mix(seed) ^ epoch) ^ which);
}

static size_t below(uint64_t *s, size_t n)
{
	return (size_t)(((unsigned __int128)next_rand(s) * n) >> 64);
}

static void ensure_order(loader *l)
{
	if (l->have_order && l->order_epoch == l->cur.epoch)
		return;
	for (size_t i = 0; i < l->nshards; i++)
		l->order[i] = i;
	if (l->shuffle) {
		uint64_t s = stream_for(l->cur.seed, l->cur.epoch, 0);
		for (size_t i = l->nshards; i > 1; i--) {
			size_t j = below(&s, i), t = l->order[i - 1];
			l->order[i - 1] = l->order[j];
			l->order[j] = t;
		}
	}
	l->order_epoch = l->cur.epoch;
	l->have_order = 1;
}

static size_t file_at(loader *l, uint64_t ordinal)
{
	ensure_order(l);
	return l->order[ordinal];
}

/* Moves the cursor off exhausted (or too short) shards and epochs. */
static void normalize(loader *l)
{
	for (;;) {
		if (l->cur.shard >= l->nshards) {
			l->cur.epoch++;
			l->cur.shard = 0;
			l->cur.pos = 0;
		}
		if (l->cur.pos < l->nslots[file_at(l, l->cur.shard)])
			return;
		l->cur.shard++;
		l->cur.pos = 0;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_shard_name(const char *name, const char *split)
{
	size_t ls = strlen(split), ln = strlen(name);
	return ln > ls + 5 && strncmp(name, split, ls) == 0 && name[ls] == '_' &&
	       strcmp(name + ln - 4, ".bin") == 0;
}

static int list_shards(loader *l, const char *dir, const char *split)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t cap = 0;

	if (!d)
		return tend_error_os("%s", dir);
	while ((e = readdir(d))) {
		if (!is_shard_name(e->d_name, split))
			continue;
		if (l->nshards == cap) {
			cap = cap ? 2 * cap : 16;
			char **p = realloc(l->paths, cap * sizeof *p);
			if (!p)
				break;
			l->paths = p;
		}
		if (asprintf(&l->paths[l->nshards], "%s/%s", dir, e->d_name) < 0)
			break;
		l->nshards++;
	}
	int err = e != NULL;
	closedir(d);
	if (err)
		return tend_error_set(TEND_ENOMEM, "%s: out of memory listing", dir);
	if (!l->nshards)
		return tend_error_set(TEND_ENOTFOUND, "%s: no %s_*.bin shards", dir, split);
	qsort(l->paths, l->nshards, sizeof *l->paths, cmp_str);
	return 0;
}

static int measure_shards(loader *l, const char *dir)
{
	size_t per = (size_t)l->B * l->T;

	l->ntok = calloc(l->nshards, sizeof *l->ntok);
	l->nslots = calloc(l->nshards, sizeof *l->nslots);
	l->order = calloc(l->nshards, sizeof *l->order);
	if (!l->ntok || !l->nslots || !l->order)
		return tend_error_set(TEND_ENOMEM, "loader: out of memory");
	for (size_t i = 0; i < l->nshards; i++) {
		int rc = shard_peek(l->paths[i], &l->ntok[i]);
		if (rc < 0)
			return rc;
		l->nslots[i] = l->ntok[i] > per ? (l->ntok[i] - 1) / per : 0;
		l->total_slots += l->nslots[i];
		l->total_tokens += l->ntok[i];
	}
	if (!l->total_slots)
		return tend_error_set(TEND_EINVAL, "%s: no shard holds the B*T+1 = "
			"%zu tokens one batch needs (largest shard: see `tend data "
			"inspect %s`)", dir, per + 1, dir);
	return 0;
}

int loader_new(loader **out, const char *dir, const char *split, int B, int T,
	       int vocab, uint64_t seed)
{
	loader *l = NULL;
	int rc;

	*out = NULL;
	if (B < 1 || T < 1 || (long long)B * T > INT32_MAX)
		return tend_error_set(TEND_EINVAL, "loader: bad batch shape B=%d T=%d", B, T);
	if (vocab < 1 || vocab > 65536)
		return tend_error_set(TEND_EINVAL, "loader: vocabulary %d is outside "
				      "1..65536", vocab);
	if (!*split || strchr(split, '/'))
		return tend_error_set(TEND_EINVAL, "loader: bad split name '%s'", split);
	if (!(l = calloc(1, sizeof *l)))
		return tend_error_set(TEND_ENOMEM, "loader: out of memory");
	l->B = B;
	l->T = T;
	l->vocab = vocab;
	l->shuffle = strcmp(split, "train") == 0;
	if ((rc = list_shards(l, dir, split)) < 0 || (rc = measure_shards(l, dir)) < 0)
		goto done;
	l->cur = (loader_cursor){.seed = seed, .B = (uint32_t)B, .T = (uint32_t)T,
				 .nshards = (uint32_t)l->nshards};
	normalize(l);
	*out = l;
	l = NULL;
done:
	loader_free(l);
	return rc;
}

void loader_free(loader *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nshards; i++)
		free(l->paths[i]);
	free(l->paths);
	free(l->ntok);
	free(l->nslots);
	free(l->order);
	shard_free(l->sh);
	free(l->slots);
	free(l);
}

/* Maps file f (if not mapped) and computes its slot order for this epoch. */
static int ensure_shard(loader *l, size_t f)
{
	if (!l->sh || l->sh_file != f) {
		shard_free(l->sh);
		l->sh = NULL;
		free(l->slots);
		l->slots = NULL;
		l->have_slots = 0;
		int rc = shard_open(&l->sh, l->paths[f], l->vocab);
		if (rc < 0)
			return rc;
		l->sh_file = f;
		if (shard_len(l->sh) != l->ntok[f])
			return tend_error_set(TEND_EINVAL, "%s: changed while in use "
				"(%zu tokens, had %zu)", l->paths[f], shard_len(l->sh), l->ntok[f]);
	}
	if (!l->shuffle || (l->have_slots && l->slots_epoch == l->cur.epoch))
		return 0;
	size_t n = l->nslots[f];
	if (!l->slots && !(l->slots = malloc(n * sizeof *l->slots)))
		return tend_error_set(TEND_ENOMEM, "loader: out of memory");
	uint64_t s = stream_for(l->cur.seed, l->cur.epoch, f + 1);
	for (size_t i = 0; i < n; i++)
		l->slots[i] = (uint32_t)i;
	for (size_t i = n; i > 1; i--) {
		size_t j = below(&s, i);
		uint32_t t = l->slots[i - 1];
		l->slots[i - 1] = l->slots[j];
		l->slots[j] = t;
	}
	l->slots_epoch = l->cur.epoch;
	l->have_slots = 1;
	return 0;
}

int loader_next(loader *l, int *inputs, int *targets)
{
	size_t f = file_at(l, l->cur.shard), per = (size_t)l->B * l->T;
	int rc = ensure_shard(l, f);
	if (rc < 0)
		return rc;
	size_t slot = l->shuffle ? l->slots[l->cur.pos] : l->cur.pos;
	const uint16_t *run = shard_tokens(l->sh) + slot * per;
	for (size_t i = 0; i < per; i++) {
		inputs[i] = run[i];
		targets[i] = run[i + 1];
	}
	l->cur.pos++;
	normalize(l);
	return 0;
}

/* Batches taken so far in the current epoch. */
static uint64_t index_in_epoch(loader *l)
{
	uint64_t k = l->cur.pos;
	for (uint64_t i = 0; i < l->cur.shard; i++)
		k += l->nslots[file_at(l, i)];
	return k;
}

int loader_skip(loader *l, long n)
{
	if (n < 0)
		return tend_error_set(TEND_EINVAL, "loader: cannot skip %ld batches", n);
	uint64_t k = index_in_epoch(l) + (uint64_t)n;
	l->cur.epoch += k / l->total_slots;
	k %= l->total_slots;
	for (uint64_t i = 0;; i++) {
		uint64_t here = l->nslots[file_at(l, i)];
		if (k < here) {
			l->cur.shard = i;
			l->cur.pos = k;
			return 0;
		}
		k -= here;
	}
}

void loader_reset(loader *l)
{
	l->cur.epoch = l->cur.shard = l->cur.pos = 0;
	normalize(l);
}

void loader_get_cursor(const loader *l, loader_cursor *out)
{
	*out = l->cur;
}

int loader_set_cursor(loader *l, const loader_cursor *c)
{
	if (c->B != (uint32_t)l->B || c->T != (uint32_t)l->T)
		return tend_error_set(TEND_EINVAL, "loader cursor was saved with B=%u "
			"T=%u, this loader has B=%d T=%d", c->B, c->T, l->B, l->T);
	if (c->nshards != l->nshards)
		return tend_error_set(TEND_EINVAL, "loader cursor was saved over %u "
			"shards, the directory now holds %zu", c->nshards, l->nshards);
	if (c->shard >= l->nshards)
		return tend_error_set(TEND_EINVAL, "loader cursor: shard %llu out of "
			"range (%zu shards)", (unsigned long long)c->shard, l->nshards);
	loader_cursor old = l->cur;
	l->cur = *c;
	l->cur.reserved = 0;
	size_t f = file_at(l, c->shard);
	if (c->pos > l->nslots[f]) {
		l->cur = old;
		return tend_error_set(TEND_EINVAL, "loader cursor: position %llu past "
			"the %zu batches of %s", (unsigned long long)c->pos,
			l->nslots[f], l->paths[f]);
	}
	normalize(l);
	return 0;
}

size_t loader_batches_per_epoch(const loader *l)
{
	return l->total_slots;
}

size_t loader_tokens(const loader *l)
{
	return l->total_tokens;
}

size_t loader_shard_count(const loader *l)
{
	return l->nshards;
}

/* ---- the cursor as bytes ---- */

static const char cursor_tag[4] = {'L', 'D', 'C', '1'};

static void put(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void loader_cursor_encode(const loader_cursor *c, uint8_t out[LOADER_CURSOR_BYTES])
{
	memcpy(out, cursor_tag, 4);
	put(out + 4, c->seed, 8);
	put(out + 12, c->epoch, 8);
	put(out + 20, c->shard, 8);
	put(out + 28, c->pos, 8);
	put(out + 36, c->B, 4);
	put(out + 40, c->T, 4);
	put(out + 44, c->nshards, 4);
}

int loader_cursor_decode(loader_cursor *c, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	if (n != LOADER_CURSOR_BYTES || memcmp(p, cursor_tag, 4) != 0)
		return tend_error_set(TEND_EINVAL, "not a loader cursor (%zu bytes)", n);
	c->seed = get(p + 4, 8);
	c->epoch = get(p + 12, 8);
	c->shard = get(p + 20, 8);
	c->pos = get(p + 28, 8);
	c->B = (uint32_t)get(p + 36, 4);
	c->T = (uint32_t)get(p + 40, 4);
	c->nshards = (uint32_t)get(p + 44, 4);
	c->reserved = 0;
	return 0;
}
