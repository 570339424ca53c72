/*
 * store_int.h - what the store's source files share and nothing outside
 * runs/store*.c may use: the store object, the prepared-statement cache,
 * the metric-name map, error mapping, transactions and the row codec that
 * turns a statement row into one of the public structs.
 *
 * Names here carry the semi-private `store__` prefix.
 */
#ifndef STORE_INT_H
#define STORE_INT_H

#include "store.h"
#include "tend.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One slot per SQL statement the store ever runs. The SQL text lives next
 * to the code that uses it; the slot only says where its prepared form is
 * cached. */
enum {
	STORE__ST_BEGIN,
	STORE__ST_BEGIN_READ,
	STORE__ST_COMMIT,
	STORE__ST_ROLLBACK,
	STORE__ST_USER_VERSION,
	STORE__ST_RUN_INSERT,
	STORE__ST_RUN_GET,
	STORE__ST_RUN_GET_NAME,
	STORE__ST_RUN_LIST,
	STORE__ST_RUN_STATE,
	STORE__ST_RUN_STARTED,
	STORE__ST_RUN_ENDED,
	STORE__ST_RUN_COMMIT,
	STORE__ST_RUN_NOTES,
	STORE__ST_ATTEMPT_BEGIN,
	STORE__ST_ATTEMPT_END,
	STORE__ST_ATTEMPT_LIST,
	STORE__ST_NAME_INTERN,
	STORE__ST_NAME_FIND,
	STORE__ST_SERIES_INSERT,
	STORE__ST_SERIES_FIND,
	STORE__ST_SERIES_LOOKUP,
	STORE__ST_METRIC_PUT,
	STORE__ST_METRIC_PUT_MANY,
	STORE__ST_METRIC_READ,
	STORE__ST_METRIC_NAMES,
	STORE__ST_LOG_PUT,
	STORE__ST_LOG_READ,
	STORE__ST_EVENT_PUT,
	STORE__ST_EVENT_READ,
	STORE__ST_OFFSET_SET,
	STORE__ST_OFFSET_GET,
	STORE__ST_CKPT_ADD,
	STORE__ST_CKPT_GOOD,
	STORE__ST_CKPT_LIST,
	STORE__ST_CKPT_LATEST,
	STORE__ST_INC_UPSERT,
	STORE__ST_INC_RESOLVE,
	STORE__ST_INC_LABEL,
	STORE__ST_INC_GET,
	STORE__ST_INC_LIST,
	STORE__ST_PROP_INSERT,
	STORE__ST_PROP_GET,
	STORE__ST_PROP_STATE,
	STORE__ST_PROP_BRANCH,
	STORE__ST_PROP_LIST,
	STORE__ST_EVAL_INSERT,
	STORE__ST_EVAL_GET,
	STORE__ST_EVAL_RUNS,
	STORE__ST_EVAL_FINISH,
	STORE__ST_EVAL_LIST,
	STORE__ST_PROMO_INSERT,
	STORE__ST_PROMO_GET,
	STORE__ST_PROMO_LIST,
	STORE__ST_AUDIT_LAST,
	STORE__ST_AUDIT_INSERT,
	STORE__ST_AUDIT_LIST,
	STORE__ST_AUDIT_SEQUENCE,
	STORE__ST_INTEGRITY,
	STORE__NST
};

/* A metric series is one metric of one run; its id is the high part of
 * every metrics row's key (docs/store.md):
 *
 *   key = series << 41 | step << 10 | attempt
 *
 * so one integer orders a run's metric by step and then attempt. */
#define STORE__STEP_BITS 31
#define STORE__ATTEMPT_BITS 10
#define STORE__SERIES_SHIFT (STORE__STEP_BITS + STORE__ATTEMPT_BITS)
#define STORE__MAX_SERIES ((INT64_C(1) << (63 - STORE__SERIES_SHIFT)) - 1)
#define STORE__MAX_STEP ((INT64_C(1) << STORE__STEP_BITS) - 1)
#define STORE__MAX_ATTEMPT ((1 << STORE__ATTEMPT_BITS) - 1)

/* (run, metric name) -> series id, open addressing. Holds only series
 * that are committed or part of the open transaction (see
 * series_pending). */
typedef struct store__series {
	char *name; /* NULL marks an empty slot */
	int64_t run;
	uint32_t hash;
	int64_t id;
} store__series;

typedef struct store__map {
	store__series *slot;
	size_t cap; /* a power of two, or 0 */
	size_t used;
} store__map;

/* Metric values wait inside a batch, up to STORE__PEND of them, and are
 * then written in key order, STORE__ROWS per multi-row INSERT:
 * - a statement per value costs SQLite almost as much again as the b-tree
 *   insert itself;
 * - a metrics line puts one value into each of its ~36 series, which lie
 *   in 36 places of the b-tree; in key order, a series' values go into its
 *   last leaf one after another instead (docs/store.md has the figures).
 *   A window of 4,096 values sorts as fast as a whole batch (measured);
 *   it bounds the memory. */
#define STORE__PEND 4096
#define STORE__ROWS 50

typedef struct store__value {
	int64_t key;
	double value, t;
} store__value;

struct store {
	sqlite3 *db;
	char *path;
	int flags;
	int in_batch;
	/* Series created during the open transaction: a rollback must forget
	 * them, so the map is cleared when this is set and it rolls back. */
	int series_pending;
	sqlite3_stmt *st[STORE__NST];
	store__map series;
	store__value pend[STORE__PEND];
	store__value spare[STORE__PEND]; /* the sort's other half */
	int npend;
	int busy_ms;        /* how long a write waits for another writer */
	double busy_since;  /* monotonic seconds the current wait began */
};

/* Returns the cached statement for slot, preparing sql on first use, reset
 * and with its bindings cleared only by the previous user's reset. Refuses
 * a statement still being stepped (a callback re-entering the same call). */
int store__stmt(store *s, int slot, const char *sql, sqlite3_stmt **out);

/* Turns an SQLite result code into a TEND_E* code and a message naming the
 * database file: "<path>: <what>: <detail>". Resets nothing. */
int store__err(store *s, int rc, const char *what);

/* Steps st once for a statement that returns no row (or whose row is not
 * wanted); resets it. Returns 0 or store__err(what). */
int store__exec(store *s, sqlite3_stmt *st, const char *what);

/* Runs a write that must touch a row: 0, TEND_ENOTFOUND naming what when
 * no row changed, or the mapped error. Resets st. */
int store__exec_one(store *s, sqlite3_stmt *st, const char *what);

/* A transaction around a multi-statement write: begins one (BEGIN
 * IMMEDIATE) unless a batch is already open, in which case the write joins
 * it. *own says which; pass it to store__tx_end with the outcome, which
 * commits or rolls back what it began and returns rc (or the commit's
 * error). */
int store__tx_begin(store *s, int *own);
int store__tx_end(store *s, int own, int rc);

/* A read transaction (one snapshot for several statements) unless one
 * is open already; *own says which. Ending it never fails. */
int store__read_begin(store *s, int *own);
void store__read_end(store *s, int own);

/* 0 when a write may proceed; TEND_EINVAL when a batch is open but SQLite
 * has already rolled it back after an earlier error (a write now would
 * silently commit on its own). */
int store__write_ready(store *s);

/* 0 when text is NULL or valid JSON; else TEND_EINVAL naming the file,
 * what was being done and the field. */
int store__check_json(store *s, const char *text, const char *what,
		      const char *field);

/* Binds text or NULL. */
int store__bind_text(sqlite3_stmt *st, int i, const char *v);
/* Binds v, or NULL when it is STORE_NONE (not set). */
int store__bind_opt(sqlite3_stmt *st, int i, int64_t v);

/* Now, in seconds since the Unix epoch. */
double store__now(void);

/* Allocation through sqlite3_malloc, so that one allocator (and the tests'
 * failing one) governs all of the store's memory. */
char *store__strdup(const char *s, int n);

/* The row codec: a public struct described column by column. A SELECT
 * lists its columns in the order of the description; an INSERT binds them
 * in that order from parameter `first`. Integers whose value equals `none`
 * are NULL in the database and back. */
enum { STORE__I64, STORE__INT, STORE__DBL, STORE__TEXT };

typedef struct store__col {
	int type;
	size_t off;
	double none;
} store__col;

#define STORE__COL(type, T, field, none) { type, offsetof(T, field), none }

/* Fills obj from the current row of st. With copy, text is duplicated
 * (free with store__clear); without, it points into the statement's row and
 * is valid until the next step. Returns 0 or TEND_ENOMEM. */
int store__unpack(sqlite3_stmt *st, const store__col *col, int n, void *obj,
		  int copy);
void store__clear(const store__col *col, int n, void *obj);
int store__bind_cols(sqlite3_stmt *st, const store__col *col, int n,
		     const void *obj, int first);

/* Fetches the single row of a bound SELECT into a fresh object of size
 * bytes. TEND_ENOTFOUND naming `what` when there is no row. Resets st. */
int store__fetch(store *s, sqlite3_stmt *st, const store__col *col, int n,
		 size_t size, void **out, const char *what);

/* Steps a bound SELECT once: 1 with the row unpacked (without copying)
 * into obj, 0 at the end, or a negative error; resets st at the end and on
 * error. A caller that stops early resets st itself. */
int store__next(store *s, sqlite3_stmt *st, const store__col *col, int n,
		void *obj, const char *what);

/* The series map (store_series.c). */
uint32_t store__map_hash(int64_t run, const char *name);
int store__map_find(const store__map *m, int64_t run, const char *name,
		    uint32_t h, int64_t *id);
int store__map_add(store__map *m, int64_t run, const char *name, uint32_t h,
		   int64_t id);
void store__map_clear(store__map *m);

/* Writes the pending metric values (store_ingest.c); 0 or an error, after
 * which the values are gone either way. */
int store__flush(store *s);

/* Migrations (store_schema.c): steps[i] brings a database from version i to
 * version i + 1. */
extern const char *const store__migrations[];
extern const int store__schema_version;

#endif
