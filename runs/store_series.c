/*
 * store_series.c - the in-memory map from (run, metric name) to the id of
 * that metric series, so that ingesting a value costs a hash lookup, not a
 * SELECT. Open addressing with linear probing; it only grows (entries are
 * never removed one by one, only all at once when a transaction that added
 * some rolls back).
 */
#include "store_int.h"

#include <string.h>

uint32_t store__map_hash(int64_t run, const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a over the name, then the run */
	uint64_t r = (uint64_t)run;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	for (int i = 0; i < 8; i++, r >>= 8)
		h = (h ^ (uint32_t)(r & 0xff)) * 16777619u;
	return h;
}

int store__map_find(const store__map *m, int64_t run, const char *name,
		    uint32_t h, int64_t *id)
{
	if (m->cap == 0)
		return 0;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		const store__series *e = &m->slot[i];

		if (!e->name)
			return 0;
		if (e->hash == h && e->run == run && strcmp(e->name, name) == 0) {
			*id = e->id;
			return 1;
		}
	}
}

static void place(store__series *slot, size_t cap, store__series e)
{
	size_t i = e.hash & (cap - 1);

	while (slot[i].name)
		i = (i + 1) & (cap - 1);
	slot[i] = e;
}

/* Doubles the table (or makes the first one of 64 slots). */
static int grow(store__map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	store__series *slot = sqlite3_malloc64(cap * sizeof *slot);

	if (!slot)
		return TEND_ENOMEM;
	memset(slot, 0, cap * sizeof *slot);
	for (size_t i = 0; i < m->cap; i++)
		if (m->slot[i].name)
			place(slot, cap, m->slot[i]);
	sqlite3_free(m->slot);
	m->slot = slot;
	m->cap = cap;
	return 0;
}

int store__map_add(store__map *m, int64_t run, const char *name, uint32_t h,
		   int64_t id)
{
	store__series e = { NULL, run, h, id };

	/* Keep the load under 3/4 so probes stay short. */
	if ((m->used + 1) * 4 > m->cap * 3 && grow(m) != 0)
		return TEND_ENOMEM;
	if (!(e.name = store__strdup(name, -1)))
		return TEND_ENOMEM;
	place(m->slot, m->cap, e);
	m->used++;
	return 0;
}

void store__map_clear(store__map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		sqlite3_free(m->slot[i].name);
	sqlite3_free(m->slot);
	memset(m, 0, sizeof *m);
}
