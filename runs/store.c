/*
 * store.c - opening and closing the store: connection settings, schema
 * migrations, the prepared-statement cache, transactions, error messages
 * and the row codec the other store files use.
 *
 * Every statement is prepared once per connection from constant SQL and
 * run with bound values; no SQL is ever assembled from data.
 */
#include "store_int.h"
#include "clock.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_APP_ID 1952804452 /* 'tend' */

/* ---- errors ----------------------------------------------------------- */

static int map_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM: return TEND_ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return TEND_EBUSY;
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM: return TEND_EIO;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_TOOBIG:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE: return TEND_EINVAL;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE ||
		    rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return TEND_EEXISTS;
		return TEND_EINVAL;
	default: return TEND_ERROR;
	}
}

int store__err(store *s, int rc, const char *what)
{
	/* SQLite's own record of errno is not always set when an I/O error
	 * reaches the top (a failed commit); errno right after the failing
	 * call still says why, so it is the fallback. */
	int saved = errno;
	const char *path = s && s->path ? s->path : "tend.db";
	const char *msg = s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	int code = map_code(rc);
	int sys = s && s->db ? sqlite3_system_errno(s->db) : 0;

	if (sys == 0)
		sys = saved;
	if (rc == SQLITE_IOERR_NOMEM)
		code = TEND_ENOMEM;
	if (code == TEND_EBUSY)
		return tend_error_set(code, "%s: database is locked (another "
				      "tend process holds it)", path);
	if ((rc & 0xff) == SQLITE_FULL)
		return tend_error_set(code, "%s: %s: disk full", path, what);
	if (code == TEND_ENOMEM)
		return tend_error_set(code, "%s: %s: out of memory", path, what);
	if (((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN) &&
	    sys != 0)
		return tend_error_set(code, "%s: %s: %s (%s)", path, what, msg,
				      strerror(sys));
	return tend_error_set(code, "%s: %s: %s", path, what, msg);
}

/* ---- statements ------------------------------------------------------- */

int store__stmt(store *s, int slot, const char *sql, sqlite3_stmt **out)
{
	int rc;

	if (s->st[slot]) {
		if (sqlite3_stmt_busy(s->st[slot]))
			return tend_error_set(TEND_EINVAL, "%s: a store "
					      "callback re-entered the call "
					      "that is running it", s->path);
		*out = s->st[slot];
		return 0;
	}
	rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
				&s->st[slot], NULL);
	if (rc != SQLITE_OK)
		return store__err(s, rc, "preparing a statement");
	*out = s->st[slot];
	return 0;
}

int store__exec(store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
		sqlite3_reset(st);
		return 0;
	}
	rc = store__err(s, rc, what);
	sqlite3_reset(st);
	return rc;
}

int store__exec_one(store *s, sqlite3_stmt *st, const char *what)
{
	int rc = store__exec(s, st, what);

	if (rc == 0 && sqlite3_changes(s->db) == 0)
		return tend_error_set(TEND_ENOTFOUND, "%s: %s: no such row",
				      s->path, what);
	return rc;
}

int store__bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (!v)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

int store__bind_opt(sqlite3_stmt *st, int i, int64_t v)
{
	if (v == STORE_NONE)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_int64(st, i, v);
}

int store__check_json(store *s, const char *text, const char *what,
		      const char *field)
{
	json_doc *doc = NULL;
	int rc;

	if (!text)
		return 0;
	rc = json_parse(&doc, text, strlen(text), NULL);
	json_doc_free(doc);
	if (rc == 0)
		return 0;
	return tend_error_wrap(rc, "%s: %s: not valid JSON in %s", s->path,
			       what, field);
}

/* Runs one of the cached transaction-control statements. */
static int run_ctl(store *s, int slot, const char *sql, const char *what)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, slot, sql, &st);

	return rc ? rc : store__exec(s, st, what);
}

static int begin_immediate(store *s)
{
	return run_ctl(s, STORE__ST_BEGIN, "BEGIN IMMEDIATE",
		       "starting a write transaction");
}

static int commit(store *s)
{
	return run_ctl(s, STORE__ST_COMMIT, "COMMIT", "committing");
}

/* Rolls back whatever is open. Never fails from the caller's view: when
 * SQLite already rolled back (after an I/O error), there is nothing to do. */
static void rollback(store *s)
{
	sqlite3_stmt *st = NULL;

	s->npend = 0;
	if (s->series_pending)
		store__map_clear(&s->series);
	s->series_pending = 0;
	if (sqlite3_get_autocommit(s->db))
		return;
	if (store__stmt(s, STORE__ST_ROLLBACK, "ROLLBACK", &st) == 0)
		(void)store__exec(s, st, "rolling back");
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int store__tx_begin(store *s, int *own)
{
	int rc = store__write_ready(s);

	*own = 0;
	if (rc || s->in_batch)
		return rc;
	rc = begin_immediate(s);
	*own = rc == 0;
	return rc;
}

int store__tx_end(store *s, int own, int rc)
{
	if (!own)
		return rc;
	if (rc == 0 && (rc = commit(s)) == 0) {
		s->series_pending = 0;
		return 0;
	}
	rollback(s);
	return rc;
}

int store__read_begin(store *s, int *own)
{
	int rc = 0;

	*own = 0;
	if (sqlite3_get_autocommit(s->db)) {
		rc = run_ctl(s, STORE__ST_BEGIN_READ, "BEGIN",
			     "starting a read transaction");
		*own = rc == 0;
	}
	return rc;
}

void store__read_end(store *s, int own)
{
	if (own)
		(void)commit(s);
}

int store__write_ready(store *s)
{
	if (!s->in_batch || !sqlite3_get_autocommit(s->db))
		return 0;
	s->npend = 0;
	if (s->series_pending)
		store__map_clear(&s->series);
	s->series_pending = 0;
	return tend_error_set(TEND_EINVAL, "%s: the batch was rolled back "
			      "after an earlier error; roll it back and "
			      "start again", s->path);
}

int store_batch_begin(store *s)
{
	int rc;

	if (s->in_batch)
		return tend_error_set(TEND_EINVAL, "%s: a batch is already "
				      "open", s->path);
	if ((rc = begin_immediate(s)) == 0)
		s->in_batch = 1;
	return rc;
}

int store_batch_commit(store *s)
{
	int rc;

	if (!s->in_batch)
		return tend_error_set(TEND_EINVAL, "%s: no batch to commit",
				      s->path);
	if ((rc = store__write_ready(s)) == 0 && (rc = store__flush(s)) == 0 &&
	    (rc = commit(s)) == 0) {
		s->in_batch = 0;
		s->series_pending = 0;
		return 0;
	}
	/* A failed COMMIT may leave the transaction open (SQLITE_BUSY) or
	 * gone; either way the batch is over and its rows are not written. */
	rollback(s);
	s->in_batch = 0;
	return rc;
}

int store_batch_rollback(store *s)
{
	rollback(s);
	s->in_batch = 0;
	return 0;
}

/* ---- helpers ---------------------------------------------------------- */

double store__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *store__strdup(const char *s, int n)
{
	char *p;

	if (n < 0)
		n = (int)strlen(s);
	p = sqlite3_malloc(n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, (size_t)n);
	p[n] = '\0';
	return p;
}

/* ---- the row codec ---------------------------------------------------- */

static void unpack_num(sqlite3_stmt *st, int i, const store__col *c, char *p)
{
	int null = sqlite3_column_type(st, i) == SQLITE_NULL;

	switch (c->type) {
	case STORE__I64:
		*(int64_t *)p = null ? (int64_t)c->none : sqlite3_column_int64(st, i);
		break;
	case STORE__INT:
		*(int *)p = null ? (int)c->none : sqlite3_column_int(st, i);
		break;
	default:
		*(double *)p = null ? c->none : sqlite3_column_double(st, i);
	}
}

int store__unpack(sqlite3_stmt *st, const store__col *col, int n, void *obj,
		  int copy)
{
	for (int i = 0; i < n; i++) {
		char *p = (char *)obj + col[i].off;
		const char *txt;

		if (col[i].type != STORE__TEXT) {
			unpack_num(st, i, &col[i], p);
			continue;
		}
		txt = (const char *)sqlite3_column_text(st, i);
		if (txt && copy)
			txt = store__strdup(txt, sqlite3_column_bytes(st, i));
		*(const char **)p = txt;
		/* A NULL column is NULL; NULL from a non-NULL one is memory. */
		if (!txt && sqlite3_column_type(st, i) != SQLITE_NULL) {
			if (copy)
				store__clear(col, i, obj);
			return TEND_ENOMEM;
		}
	}
	return 0;
}

void store__clear(const store__col *col, int n, void *obj)
{
	for (int i = 0; i < n; i++) {
		const char **p = (const char **)((char *)obj + col[i].off);

		if (col[i].type == STORE__TEXT) {
			sqlite3_free((void *)*p);
			*p = NULL;
		}
	}
}

int store__bind_cols(sqlite3_stmt *st, const store__col *col, int n,
		     const void *obj, int first)
{
	int rc = SQLITE_OK;

	for (int i = 0; i < n && rc == SQLITE_OK; i++) {
		const char *p = (const char *)obj + col[i].off;
		int k = first + i;

		if (col[i].type == STORE__TEXT) {
			rc = store__bind_text(st, k, *(const char *const *)p);
		} else if (col[i].type == STORE__DBL) {
			double v = *(const double *)p;
			rc = v == col[i].none ? sqlite3_bind_null(st, k)
					      : sqlite3_bind_double(st, k, v);
		} else {
			int64_t v = col[i].type == STORE__I64
				? *(const int64_t *)p : *(const int *)p;
			rc = v == (int64_t)col[i].none ? sqlite3_bind_null(st, k)
						       : sqlite3_bind_int64(st, k, v);
		}
	}
	return rc;
}

int store__next(store *s, sqlite3_stmt *st, const store__col *col, int n,
		void *obj, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		if (store__unpack(st, col, n, obj, 0) == 0)
			return 1;
		rc = SQLITE_NOMEM;
	}
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	rc = store__err(s, rc, what);
	sqlite3_reset(st);
	return rc;
}

int store__fetch(store *s, sqlite3_stmt *st, const store__col *col, int n,
		 size_t size, void **out, const char *what)
{
	void *obj = NULL;
	int rc = sqlite3_step(st);

	*out = NULL;
	if (rc == SQLITE_DONE) {
		rc = tend_error_set(TEND_ENOTFOUND, "%s: %s: not found",
				    s->path, what);
		goto done;
	}
	if (rc != SQLITE_ROW) {
		rc = store__err(s, rc, what);
		goto done;
	}
	rc = TEND_ENOMEM;
	if (!(obj = sqlite3_malloc64(size)) ||
	    store__unpack(st, col, n, obj, 1) != 0) {
		sqlite3_free(obj);
		obj = NULL;
		rc = tend_error_set(TEND_ENOMEM, "%s: %s: out of memory",
				    s->path, what);
		goto done;
	}
	*out = obj;
	rc = 0;
done:
	sqlite3_reset(st);
	return rc;
}

/* ---- opening ---------------------------------------------------------- */

static int user_version(store *s, int *out)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_USER_VERSION, "PRAGMA user_version",
			     &st);

	if (rc)
		return rc;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = store__err(s, rc, "reading the schema version");
		sqlite3_reset(st);
		return rc;
	}
	*out = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return 0;
}

/* Runs constant SQL from this file or the migrations; never data. */
static int exec_const(store *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : store__err(s, rc, what);
}

/* Applies migration step v (version v -> v + 1) in one transaction, unless
 * another process did it since we looked. */
static int migrate_step(store *s, int v)
{
	char what[64], set[64];
	int now = 0, rc;

	snprintf(what, sizeof what, "migrating to schema version %d", v + 1);
	if ((rc = begin_immediate(s)) != 0)
		return rc;
	if ((rc = user_version(s, &now)) != 0 || now > v)
		goto done;
	snprintf(set, sizeof set, "PRAGMA user_version = %d", v + 1);
	if ((rc = exec_const(s, store__migrations[v], what)) == 0)
		rc = exec_const(s, set, what);
done:
	return store__tx_end(s, 1, rc);
}

static int check_version(store *s, int v)
{
	if (v > store__schema_version)
		return tend_error_set(TEND_EVERSION, "%s: schema version %d is "
				      "newer than this tend (knows %d); "
				      "upgrade tend", s->path, v,
				      store__schema_version);
	if (v < store__schema_version && (s->flags & STORE_READONLY))
		return tend_error_set(TEND_EVERSION, "%s: schema version %d is "
				      "older than this tend (knows %d); open "
				      "it once for writing to migrate it",
				      s->path, v, store__schema_version);
	return 0;
}

static int check_app_id(store *s, int v)
{
	sqlite3_stmt *st = NULL;
	int rc, id;

	if (v == 0)
		return 0;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA application_id", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		rc = SQLITE_OK;
	if (rc != SQLITE_OK) {
		rc = store__err(s, rc, "reading the application id");
		goto done;
	}
	id = sqlite3_column_int(st, 0);
	if (id != STORE_APP_ID)
		rc = tend_error_set(TEND_EINVAL, "%s: not a tend database "
				    "(application id %d)", s->path, id);
done:
	sqlite3_finalize(st);
	return rc;
}

/* Switches to WAL (which lets the CLI read while the daemon writes) and
 * says so if the file system refused; ":memory:" stays "memory". */
static int set_wal(store *s)
{
	sqlite3_stmt *st = NULL;
	const char *mode;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1,
				    &st, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		rc = SQLITE_OK;
	if (rc != SQLITE_OK) {
		rc = store__err(s, rc, "switching to WAL");
		goto done;
	}
	mode = (const char *)sqlite3_column_text(st, 0);
	if (!mode)
		rc = store__err(s, SQLITE_NOMEM, "switching to WAL");
	else if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
		rc = tend_error_set(TEND_EIO, "%s: switching to WAL: the "
				    "journal mode stayed %s", s->path, mode);
done:
	sqlite3_finalize(st);
	return rc;
}

/* Connection settings. synchronous=NORMAL in WAL mode may lose the last
 * commits on power loss, never consistency. The journal mode is changed
 * only after the version check, because that writes to the file. The
 * transaction statements are prepared now so that a rollback never needs
 * to prepare anything. A new file gets 8 KiB pages: a big ingest batch
 * costs ~15% less CPU than with 4 KiB, for twice the bytes a small one
 * rewrites (docs/store.md); a file keeps the page size it was made with
 * (in WAL mode it cannot change). */
static int configure(store *s, int fresh)
{
	static const char common[] =
		"PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384;";
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = exec_const(s, common, "configuring the connection")) != 0 ||
	    (rc = store__stmt(s, STORE__ST_ROLLBACK, "ROLLBACK", &st)) != 0)
		return rc;
	if (s->flags & STORE_READONLY)
		return exec_const(s, "PRAGMA query_only = ON",
				  "configuring the connection");
	if ((fresh && (rc = exec_const(s, "PRAGMA page_size = 8192",
				       "configuring the connection")) != 0) ||
	    (rc = set_wal(s)) != 0)
		return rc;
	return exec_const(s, "PRAGMA synchronous = NORMAL",
			  "configuring the connection");
}

/* Why path could not be opened, asked again of the system: after a failed
 * create SQLite retries read-only and keeps that errno (ENOENT), which
 * hides the EACCES that mattered. 0 when no reason shows. */
static int open_errno(const char *path, int flags)
{
	char dir[4096];
	struct stat st;
	char *slash;

	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return EISDIR;
		if (access(path, flags & STORE_READONLY ? R_OK : R_OK | W_OK))
			return errno;
		return 0;
	}
	if (errno != ENOENT || !(flags & STORE_CREATE))
		return errno;
	snprintf(dir, sizeof dir, "%s", path);
	if (!(slash = strrchr(dir, '/')))
		snprintf(dir, sizeof dir, ".");
	else
		slash[slash == dir] = '\0';
	return access(dir, W_OK | X_OK) ? errno : 0;
}

/* SQLite's own busy handler sleeps up to 100 ms between tries. A running
 * supervisor holds the write lock but for short gaps between its batches,
 * so a writer sleeping that long rarely lands in one: `tend incident label`
 * beside a trainer writing 100 lines a second waited the whole 5 s and
 * failed 4 times in 20. Trying every millisecond finds the gaps. */
static int busy_wait(void *ud, int tries)
{
	store *s = ud;
	double now = tend_mono_s();
	struct timespec ms = {0, 1000 * 1000};
	if (tries == 0)
		s->busy_since = now;
	if ((now - s->busy_since) * 1000 >= s->busy_ms)
		return 0;
	nanosleep(&ms, NULL);
	return 1;
}

static int open_db(store *s, const char *path, int busy_ms)
{
	int oflags = SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOMUTEX;
	int rc, err;

	if (s->flags & STORE_READONLY)
		oflags |= SQLITE_OPEN_READONLY;
	else
		oflags |= SQLITE_OPEN_READWRITE |
			  (s->flags & STORE_CREATE ? SQLITE_OPEN_CREATE : 0);
	rc = sqlite3_open_v2(path, &s->db, oflags, NULL);
	s->busy_ms = busy_ms;
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_handler(s->db, busy_wait, s);
	/* SQLite quietly falls back to read-only when it may not write;
	 * a store opened for writing says so now, not at the first write. */
	if (rc == SQLITE_OK && !(s->flags & STORE_READONLY) &&
	    sqlite3_db_readonly(s->db, "main") == 1)
		return tend_error_set(TEND_EIO, "%s: opening: %s (open it "
				      "read-only to read it)", s->path,
				      strerror(EACCES));
	if (rc == SQLITE_OK)
		return 0;
	if ((rc & 0xff) == SQLITE_CANTOPEN && (err = open_errno(path,
							      s->flags))) {
		if (err == ENOENT && !(s->flags & STORE_CREATE))
			return tend_error_set(TEND_ENOTFOUND, "%s: no such "
					      "database (is this a tend "
					      "workspace?)", s->path);
		return tend_error_set(TEND_EIO, "%s: opening: unable to open "
				      "database file (%s)", s->path,
				      strerror(err));
	}
	return store__err(s, rc, "opening");
}

static int setup(store *s, const char *path, int busy_ms)
{
	int v = 0, rc;

	if ((rc = open_db(s, path, busy_ms)) != 0 ||
	    (rc = user_version(s, &v)) != 0 ||
	    (rc = check_version(s, v)) != 0 ||
	    (rc = check_app_id(s, v)) != 0 ||
	    (rc = configure(s, v == 0)) != 0)
		return rc;
	for (; v < store__schema_version && rc == 0; v++)
		rc = migrate_step(s, v);
	return rc;
}

int store_open_ex(store **out, const char *path, int flags, int busy_ms)
{
	store *s;
	int rc;

	*out = NULL;
	if (!(s = sqlite3_malloc(sizeof *s)))
		return tend_error_set(TEND_ENOMEM, "%s: opening: out of memory",
				      path);
	memset(s, 0, sizeof *s);
	s->flags = flags;
	if (!(s->path = store__strdup(path, -1))) {
		rc = tend_error_set(TEND_ENOMEM, "%s: opening: out of memory",
				    path);
		goto done;
	}
	rc = setup(s, path, busy_ms);
done:
	if (rc) {
		store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

int store_open(store **out, const char *path, int flags)
{
	return store_open_ex(out, path, flags, STORE_BUSY_TIMEOUT_MS);
}

void store_close(store *s)
{
	if (!s)
		return;
	if (s->db && s->in_batch)
		rollback(s);
	for (int i = 0; i < STORE__NST; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close_v2(s->db);
	store__map_clear(&s->series);
	sqlite3_free(s->path);
	sqlite3_free(s);
}

void store_set_busy_timeout(store *s, int ms)
{
	s->busy_ms = ms;
}

const char *store_path(const store *s)
{
	return s->path;
}

int store_schema_version(void)
{
	return store__schema_version;
}

int store_integrity_check(store *s)
{
	sqlite3_stmt *st = NULL;
	const char *msg, *err;
	int code, rc = store__stmt(s, STORE__ST_INTEGRITY,
			     "PRAGMA integrity_check(1)", &st);

	if (rc)
		return rc;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		rc = store__err(s, rc, "checking integrity");
		goto done;
	}
	msg = (const char *)sqlite3_column_text(st, 0);
	rc = 0;
	/* A page that could not be read for want of memory or I/O is
	 * reported in the text, "... error code=N"; that is not corruption. */
	if (msg && (err = strstr(msg, "error code=")) &&
	    (code = atoi(err + 11)) != SQLITE_CORRUPT && code != 0)
		rc = store__err(s, code, "checking integrity");
	else if (!msg)
		rc = store__err(s, SQLITE_NOMEM, "checking integrity");
	else if (strcmp(msg, "ok") != 0)
		rc = tend_error_set(TEND_EINVAL, "%s: integrity check failed: "
				    "%s", s->path, msg);
done:
	sqlite3_reset(st);
	return rc;
}
