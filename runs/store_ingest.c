/*
 * store_ingest.c - the hot path: metric values, log lines and events as
 * the supervisor tails a run's files, the byte offsets those files have
 * been read up to, and reading all of it back.
 *
 * A metric value costs one hash lookup (name -> id) and a share of a
 * multi-row INSERT written in key order; see docs/store.md for the rates.
 */
#include "store_int.h"

#include <math.h>
#include <string.h>

static const char *const stream_names[] = {
	[STORE_STDOUT] = "stdout",
	[STORE_STDERR] = "stderr",
	[STORE_EVENT] = "event",
	[STORE_MALFORMED] = "malformed",
};

/* Runs a bound statement that yields at most one id: 1 with *id set, 0
 * when no row, or a negative error. Resets st. */
static int one_id(store *s, sqlite3_stmt *st, int64_t *id, const char *what)
{
	int found = 0, rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		found = 1;
		rc = sqlite3_step(st); /* to the end: an INSERT completes */
	}
	rc = rc == SQLITE_DONE ? found : store__err(s, rc, what);
	sqlite3_reset(st);
	return rc;
}

/* The id of a metric name, created when new. */
static int name_intern(store *s, const char *name, int64_t *id)
{
	static const char what[] = "recording a metric name";
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_NAME_FIND,
			     "SELECT id FROM metric_names WHERE name = ?1", &st);

	if (rc)
		return rc;
	store__bind_text(st, 1, name);
	if ((rc = one_id(s, st, id, what)) != 0)
		return rc < 0 ? rc : 0;
	if ((rc = store__stmt(s, STORE__ST_NAME_INTERN,
			      "INSERT INTO metric_names (name) VALUES (?1) "
			      "RETURNING id", &st)) != 0)
		return rc;
	store__bind_text(st, 1, name);
	rc = one_id(s, st, id, what);
	return rc < 0 ? rc : 0;
}

/* The series id of (run, name_id), created when new. */
static int series_intern(store *s, int64_t run, int64_t name_id, int64_t *id)
{
	static const char what[] = "recording a metric series";
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_SERIES_FIND,
			     "SELECT id FROM metric_series WHERE run_id = ?1 "
			     "AND name_id = ?2", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int64(st, 2, name_id);
	if ((rc = one_id(s, st, id, what)) != 0)
		return rc < 0 ? rc : 0;
	if ((rc = store__stmt(s, STORE__ST_SERIES_INSERT,
			      "INSERT INTO metric_series (run_id, name_id) "
			      "VALUES (?1, ?2) RETURNING id", &st)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int64(st, 2, name_id);
	if ((rc = one_id(s, st, id, what)) < 0)
		return rc == TEND_EINVAL ? tend_error_set(rc, "%s: %s: no run "
			"with id %lld, or more than %lld series", s->path, what,
			(long long)run, (long long)STORE__MAX_SERIES) : rc;
	/* Created inside a transaction that may yet roll back. */
	s->series_pending |= !sqlite3_get_autocommit(s->db);
	return 0;
}

/* The series of (run, name), through the map; created when new. */
static int intern(store *s, int64_t run, const char *name, int64_t *id)
{
	uint32_t h = store__map_hash(run, name);
	int64_t name_id = 0;
	int rc;

	if (store__map_find(&s->series, run, name, h, id))
		return 0;
	if ((rc = name_intern(s, name, &name_id)) != 0 ||
	    (rc = series_intern(s, run, name_id, id)) != 0)
		return rc;
	if (store__map_add(&s->series, run, name, h, *id) != 0)
		return tend_error_set(TEND_ENOMEM, "%s: recording a metric "
				      "series: out of memory", s->path);
	return 0;
}

static void bind_value(sqlite3_stmt *st, int i, const store__value *v)
{
	sqlite3_bind_int64(st, i, v->key);
	/* NaN is stored as NULL (SQLite would do so anyway; said here so
	 * that the reader's mapping back is not a surprise). */
	if (isnan(v->value))
		sqlite3_bind_null(st, i + 1);
	else
		sqlite3_bind_double(st, i + 1, v->value);
	sqlite3_bind_double(st, i + 2, v->t);
}

/* The cached "INSERT OR REPLACE INTO metric_data (key, value, t) VALUES
 * (?,?,?),(?,?,?),..." of STORE__ROWS rows. */
static int many_stmt(store *s, sqlite3_stmt **st)
{
	char sql[96 + STORE__ROWS * 8] = "";
	size_t n = 0;

	if (!s->st[STORE__ST_METRIC_PUT_MANY]) {
		n = (size_t)snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO "
				     "metric_data (key, value, t) VALUES ");
		for (int i = 0; i < STORE__ROWS && n < sizeof sql; i++)
			n += (size_t)snprintf(sql + n, sizeof sql - n,
					      "%s(?,?,?)", i ? "," : "");
	}
	if (n >= sizeof sql)
		return tend_error_set(TEND_ERROR, "%s: writing metric values: "
				      "statement too long", s->path);
	return store__stmt(s, STORE__ST_METRIC_PUT_MANY, sql, st);
}

/* The end of the ascending run of keys that starts at v[i]. */
static int run_end(const store__value *v, int i, int n)
{
	while (++i < n && v[i - 1].key <= v[i].key)
		;
	return i;
}

/* Merges the ascending runs a[0..na) and b[0..nb) into out. On equal keys
 * a's value comes first: a value put later stays later, and it is the one
 * that INSERT OR REPLACE keeps. */
static void merge(store__value *out, const store__value *a, int na,
		  const store__value *b, int nb)
{
	int i = 0, j = 0;

	while (i < na && j < nb)
		*out++ = b[j].key < a[i].key ? b[j++] : a[i++];
	memcpy(out, a + i, (size_t)(na - i) * sizeof *a);
	memcpy(out + na - i, b + j, (size_t)(nb - j) * sizeof *b);
}

/* The pending values in key order, stably: s->pend or s->spare. A natural
 * merge sort, because values arrive as one ascending run per metrics line
 * (a line's series are created in its order), so S series in a window of
 * N values take log2(N / S) passes. */
static const store__value *sorted_pending(store *s)
{
	store__value *src = s->pend, *dst = s->spare, *t;
	int n = s->npend, pairs;

	if (run_end(src, 0, n) >= n)
		return src;
	do {
		pairs = 0;
		for (int i = 0, m, e; i < n; i = e, pairs++) {
			m = run_end(src, i, n);
			e = m < n ? run_end(src, m, n) : n;
			merge(dst + i, src + i, m - i, src + m, e - m);
		}
		t = src;
		src = dst;
		dst = t;
	} while (pairs > 1);
	return src;
}

int store__flush(store *s)
{
	static const char what[] = "writing metric values";
	const store__value *v = s->npend > 1 ? sorted_pending(s) : s->pend;
	sqlite3_stmt *st = NULL;
	int n = s->npend, i = 0, rc = 0;

	s->npend = 0;
	if (n >= STORE__ROWS)
		rc = many_stmt(s, &st);
	for (; i + STORE__ROWS <= n && rc == 0; i += STORE__ROWS) {
		for (int j = 0; j < STORE__ROWS; j++)
			bind_value(st, 3 * j + 1, &v[i + j]);
		rc = store__exec(s, st, what);
	}
	for (; i < n && rc == 0; i++) {
		if ((rc = store__stmt(s, STORE__ST_METRIC_PUT,
				      "INSERT OR REPLACE INTO metric_data (key, "
				      "value, t) VALUES (?1, ?2, ?3)", &st)) == 0) {
			bind_value(st, 1, &v[i]);
			rc = store__exec(s, st, what);
		}
	}
	return rc;
}

int store_metric_put(store *s, int64_t run, int attempt, int64_t step,
		     const char *name, double value, double t)
{
	store__value *v;
	int64_t series = 0;
	int rc = store__write_ready(s);

	if (rc)
		return rc;
	if (step < 0 || step > STORE__MAX_STEP || attempt < 0 ||
	    attempt > STORE__MAX_ATTEMPT)
		return tend_error_set(TEND_EINVAL, "%s: writing a metric value: "
				      "step %lld or attempt %d out of range "
				      "(0..%lld, 0..%d)", s->path,
				      (long long)step, attempt,
				      (long long)STORE__MAX_STEP,
				      STORE__MAX_ATTEMPT);
	if (!name || !*name)
		return tend_error_set(TEND_EINVAL, "%s: writing a metric value: "
				      "no metric name", s->path);
	if ((rc = intern(s, run, name, &series)) != 0)
		return rc;
	v = &s->pend[s->npend++];
	v->key = series << STORE__SERIES_SHIFT |
		 step << STORE__ATTEMPT_BITS | attempt;
	v->value = value;
	v->t = t;
	/* Outside a batch a value is written (and committed) at once. */
	if (!s->in_batch || s->npend == STORE__PEND)
		return store__flush(s);
	return 0;
}

int store_log_put(store *s, int64_t run, int attempt, double t,
		  store_stream stream, const char *line, size_t len)
{
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	if (rc)
		return rc;
	if ((unsigned)stream > STORE_MALFORMED || len > (size_t)0x7fffffff)
		return tend_error_set(TEND_EINVAL, "%s: writing a log line: "
				      "bad stream or length", s->path);
	if ((rc = store__stmt(s, STORE__ST_LOG_PUT,
			"INSERT INTO logs (run_id, attempt, t, stream, line) "
			"VALUES (?1, ?2, ?3, ?4, ?5)", &st)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int(st, 2, attempt);
	sqlite3_bind_double(st, 3, t);
	sqlite3_bind_text(st, 4, stream_names[stream], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, line ? line : "", (int)len, SQLITE_STATIC);
	return store__exec(s, st, "writing a log line");
}

int store_event_put(store *s, int64_t run, int attempt, double t,
		    int64_t step, const char *kind, const char *reason,
		    const char *detail_json)
{
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	if (rc || (rc = store__stmt(s, STORE__ST_EVENT_PUT,
			"INSERT INTO events (run_id, attempt, t, step, kind, "
			"reason, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
			&st)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int(st, 2, attempt);
	sqlite3_bind_double(st, 3, t);
	store__bind_opt(st, 4, step);
	store__bind_text(st, 5, kind);
	store__bind_text(st, 6, reason);
	store__bind_text(st, 7, detail_json);
	return store__exec(s, st, "writing an event");
}

int store_offset_set(store *s, int64_t run, const char *source,
		     int64_t offset)
{
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	if (rc || (rc = store__stmt(s, STORE__ST_OFFSET_SET,
			"INSERT INTO ingest_offsets (run_id, source, "
			"byte_offset, t) VALUES (?1, ?2, ?3, ?4) "
			"ON CONFLICT (run_id, source) DO UPDATE SET "
			"byte_offset = excluded.byte_offset, t = excluded.t",
			&st)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	store__bind_text(st, 2, source);
	sqlite3_bind_int64(st, 3, offset);
	sqlite3_bind_double(st, 4, store__now());
	return store__exec(s, st, "recording an ingest offset");
}

int store_offset_get(store *s, int64_t *out, int64_t run, const char *source)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_OFFSET_GET,
			"SELECT byte_offset FROM ingest_offsets "
			"WHERE run_id = ?1 AND source = ?2", &st);

	*out = 0;
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	store__bind_text(st, 2, source);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_DONE;
	}
	rc = rc == SQLITE_DONE ? 0 : store__err(s, rc, "reading an ingest offset");
	sqlite3_reset(st);
	return rc;
}

/* ---- reading ---------------------------------------------------------- */

/* The series of (run, name) without creating it: 1 found, 0 not, or an
 * error. */
static int series_lookup(store *s, int64_t run, const char *name, int64_t *id)
{
	uint32_t h = store__map_hash(run, name);
	sqlite3_stmt *st = NULL;
	int rc;

	if (store__map_find(&s->series, run, name, h, id))
		return 1;
	if ((rc = store__stmt(s, STORE__ST_SERIES_LOOKUP,
			"SELECT s.id FROM metric_series s JOIN metric_names n "
			"ON n.id = s.name_id WHERE s.run_id = ?1 AND n.name = ?2",
			&st)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	store__bind_text(st, 2, name);
	return one_id(s, st, id, "reading a metric series");
}

int store_metrics_read(store *s, int64_t run, const char *name,
		       int64_t since_step, store_metric_cb cb, void *ud)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 0;
	int rc = s->npend ? store__flush(s) : 0;

	if (!rc && !name)
		return tend_error_set(TEND_EINVAL, "%s: reading metrics: no "
				      "metric name", s->path);
	if (rc || (rc = series_lookup(s, run, name, &id)) < 0)
		return rc;
	if (rc == 0)
		return tend_error_set(TEND_ENOTFOUND, "%s: run %lld has no "
				      "metric named '%s'", s->path,
				      (long long)run, name);
	if ((rc = store__stmt(s, STORE__ST_METRIC_READ,
			"SELECT key, value, t FROM metric_data WHERE key >= ?1 AND "
			"key < ?2 ORDER BY key", &st)) != 0)
		return rc;
	since_step = since_step < 0 ? 0 : since_step > STORE__MAX_STEP
		? STORE__MAX_STEP + 1 : since_step;
	sqlite3_bind_int64(st, 1, id << STORE__SERIES_SHIFT |
			   since_step << STORE__ATTEMPT_BITS);
	sqlite3_bind_int64(st, 2, (id + 1) << STORE__SERIES_SHIFT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t key = sqlite3_column_int64(st, 0);
		double v = sqlite3_column_type(st, 1) == SQLITE_NULL
			? NAN : sqlite3_column_double(st, 1);

		if ((rc = cb((key >> STORE__ATTEMPT_BITS) & STORE__MAX_STEP,
			     (int)(key & STORE__MAX_ATTEMPT), v,
			     sqlite3_column_double(st, 2), ud)) != 0)
			goto done;
	}
	rc = rc == SQLITE_DONE ? 0 : store__err(s, rc, "reading metrics");
done:
	sqlite3_reset(st);
	return rc;
}

int store_metric_names(store *s, int64_t run, store_name_cb cb, void *ud)
{
	sqlite3_stmt *st = NULL;
	int rc = s->npend ? store__flush(s) : 0;

	if (rc || (rc = store__stmt(s, STORE__ST_METRIC_NAMES,
			"SELECT n.name FROM metric_series s JOIN metric_names n "
			"ON n.id = s.name_id WHERE s.run_id = ?1 ORDER BY n.name",
			&st)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);

		if (!name) {
			rc = SQLITE_NOMEM;
			break;
		}
		if ((rc = cb(name, ud)) != 0)
			goto done;
	}
	rc = rc == SQLITE_DONE ? 0 : store__err(s, rc, "listing metric names");
done:
	sqlite3_reset(st);
	return rc;
}

static int stream_of(const char *name)
{
	for (int i = 0; i <= STORE_MALFORMED; i++)
		if (name && strcmp(name, stream_names[i]) == 0)
			return i;
	return STORE_MALFORMED;
}

int store_logs_read(store *s, int64_t run, int64_t since_id, store_log_cb cb,
		    void *ud)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_LOG_READ,
			"SELECT id, attempt, t, stream, line FROM logs "
			"WHERE run_id = ?1 AND id > ?2 ORDER BY id", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int64(st, 2, since_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_log l = { sqlite3_column_int64(st, 0),
				sqlite3_column_int(st, 1),
				sqlite3_column_double(st, 2),
				stream_of((const char *)sqlite3_column_text(st, 3)),
				(const char *)sqlite3_column_text(st, 4), 0 };

		if (!l.line) {
			rc = SQLITE_NOMEM;
			break;
		}
		l.len = (size_t)sqlite3_column_bytes(st, 4);
		if ((rc = cb(&l, ud)) != 0)
			goto done;
	}
	rc = rc == SQLITE_DONE ? 0 : store__err(s, rc, "reading logs");
done:
	sqlite3_reset(st);
	return rc;
}

static const store__col event_cols[] = {
	STORE__COL(STORE__I64, store_event, id, 0),
	STORE__COL(STORE__I64, store_event, run_id, 0),
	STORE__COL(STORE__INT, store_event, attempt, 0),
	STORE__COL(STORE__DBL, store_event, t, 0),
	STORE__COL(STORE__I64, store_event, step, STORE_NONE),
	STORE__COL(STORE__TEXT, store_event, kind, 0),
	STORE__COL(STORE__TEXT, store_event, reason, 0),
	STORE__COL(STORE__TEXT, store_event, detail, 0),
};

int store_events_read(store *s, int64_t run, int64_t since_id,
		      store_event_cb cb, void *ud)
{
	store_event e;
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_EVENT_READ,
			"SELECT id, run_id, attempt, t, step, kind, reason, "
			"detail FROM events WHERE run_id = ?1 AND id > ?2 "
			"ORDER BY id", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int64(st, 2, since_id);
	while ((rc = store__next(s, st, event_cols,
				 (int)(sizeof event_cols / sizeof event_cols[0]),
				 &e, "reading events")) == 1)
		if ((rc = cb(&e, ud)) != 0) {
			sqlite3_reset(st);
			break;
		}
	return rc;
}
