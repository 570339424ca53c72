/*
 * store_runs.c - runs (one per training run the supervisor launches) and
 * their attempts (one per start of the trainer process: the first start
 * and every restart).
 */
#include "store_int.h"

#include <string.h>

#define RUN_COLS "id, name, state, created_t, started_t, ended_t, config, " \
	"scaffold_commit, workdir, pid, exit_status, notes"

static const store__col run_cols[] = {
	STORE__COL(STORE__I64, store_run, id, 0),
	STORE__COL(STORE__TEXT, store_run, name, 0),
	STORE__COL(STORE__TEXT, store_run, state, 0),
	STORE__COL(STORE__DBL, store_run, created_t, 0),
	STORE__COL(STORE__DBL, store_run, started_t, 0),
	STORE__COL(STORE__DBL, store_run, ended_t, 0),
	STORE__COL(STORE__TEXT, store_run, config, 0),
	STORE__COL(STORE__TEXT, store_run, scaffold_commit, 0),
	STORE__COL(STORE__TEXT, store_run, workdir, 0),
	STORE__COL(STORE__I64, store_run, pid, STORE_NONE),
	STORE__COL(STORE__INT, store_run, exit_status, STORE_NONE),
	STORE__COL(STORE__TEXT, store_run, notes, 0),
};
#define RUN_NCOLS ((int)(sizeof run_cols / sizeof run_cols[0]))

int store_run_create(store *s, int64_t *out_id, const char *name,
		     const char *config_text, const char *workdir)
{
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	if (rc || (rc = store__stmt(s, STORE__ST_RUN_INSERT,
			"INSERT INTO runs (name, state, created_t, config, "
			"workdir) VALUES (?1, 'created', ?2, ?3, ?4)", &st)))
		return rc;
	store__bind_text(st, 1, name);
	sqlite3_bind_double(st, 2, store__now());
	store__bind_text(st, 3, config_text);
	store__bind_text(st, 4, workdir);
	rc = store__exec(s, st, "creating a run");
	if (rc == TEND_EEXISTS)
		return tend_error_set(rc, "%s: a run named '%s' already exists",
				      s->path, name);
	if (rc == 0 && out_id)
		*out_id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_run_get(store *s, store_run **out, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_RUN_GET,
			     "SELECT " RUN_COLS " FROM runs WHERE id = ?1", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	return store__fetch(s, st, run_cols, RUN_NCOLS, sizeof **out,
			    (void **)out, "reading a run");
}

int store_run_get_by_name(store *s, store_run **out, const char *name)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_RUN_GET_NAME,
			     "SELECT " RUN_COLS " FROM runs WHERE name = ?1",
			     &st);

	*out = NULL;
	if (rc)
		return rc;
	if (!name)
		return tend_error_set(TEND_EINVAL, "%s: reading a run: no name",
				      s->path);
	store__bind_text(st, 1, name);
	rc = store__fetch(s, st, run_cols, RUN_NCOLS, sizeof **out,
			  (void **)out, "reading a run");
	if (rc == TEND_ENOTFOUND)
		return tend_error_set(rc, "%s: no run named '%s'", s->path,
				      name);
	return rc;
}

void store_run_free(store_run *r)
{
	if (!r)
		return;
	store__clear(run_cols, RUN_NCOLS, r);
	sqlite3_free(r);
}

void store_run_list_free(store_run *runs, size_t n)
{
	if (!runs)
		return;
	for (size_t i = 0; i < n; i++)
		store__clear(run_cols, RUN_NCOLS, &runs[i]);
	sqlite3_free(runs);
}

/* Appends the current row of st to *arr (n used, *cap allocated). */
static int list_push(sqlite3_stmt *st, store_run **arr, size_t *n,
		     size_t *cap)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		store_run *p = sqlite3_realloc64(*arr, ncap * sizeof *p);

		if (!p)
			return TEND_ENOMEM;
		*arr = p;
		*cap = ncap;
	}
	if (store__unpack(st, run_cols, RUN_NCOLS, &(*arr)[*n], 1) != 0)
		return TEND_ENOMEM;
	(*n)++;
	return 0;
}

int store_run_list(store *s, store_run **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	store_run *arr = NULL;
	size_t used = 0, cap = 0;
	int rc = store__stmt(s, STORE__ST_RUN_LIST,
			     "SELECT " RUN_COLS " FROM runs ORDER BY id", &st);

	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (list_push(st, &arr, &used, &cap) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	if (rc != SQLITE_DONE) {
		rc = store__err(s, rc, "listing runs");
		store_run_list_free(arr, used);
		goto done;
	}
	rc = 0;
	*out = arr;
	*n = used;
done:
	sqlite3_reset(st);
	return rc;
}

/* The setters share a shape: bind run as ?1 and the value(s), step. */
static int run_update(store *s, sqlite3_stmt *st, int64_t run,
		      const char *what)
{
	int rc = store__write_ready(s);

	sqlite3_bind_int64(st, 1, run);
	if (rc) {
		sqlite3_clear_bindings(st);
		return rc;
	}
	rc = store__exec_one(s, st, what);
	if (rc == TEND_ENOTFOUND)
		return tend_error_set(rc, "%s: %s: no run with id %lld",
				      s->path, what, (long long)run);
	return rc;
}

int store_run_set_state(store *s, int64_t run, const char *state)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_RUN_STATE,
			     "UPDATE runs SET state = ?2 WHERE id = ?1", &st);

	if (rc)
		return rc;
	store__bind_text(st, 2, state);
	return run_update(s, st, run, "setting a run's state");
}

int store_run_set_started(store *s, int64_t run, int64_t pid, double t)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_RUN_STARTED,
			     "UPDATE runs SET pid = ?2, started_t = "
			     "coalesce(started_t, ?3) WHERE id = ?1", &st);

	if (rc)
		return rc;
	store__bind_opt(st, 2, pid);
	sqlite3_bind_double(st, 3, t);
	return run_update(s, st, run, "recording a run's start");
}

int store_run_set_ended(store *s, int64_t run, int exit_status, double t)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_RUN_ENDED,
			     "UPDATE runs SET pid = NULL, exit_status = ?2, "
			     "ended_t = ?3 WHERE id = ?1", &st);

	if (rc)
		return rc;
	store__bind_opt(st, 2, exit_status);
	sqlite3_bind_double(st, 3, t);
	return run_update(s, st, run, "recording a run's end");
}

int store_run_set_commit(store *s, int64_t run, const char *commit)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_RUN_COMMIT,
			     "UPDATE runs SET scaffold_commit = ?2 "
			     "WHERE id = ?1", &st);

	if (rc)
		return rc;
	store__bind_text(st, 2, commit);
	return run_update(s, st, run, "setting a run's scaffold commit");
}

int store_run_set_notes(store *s, int64_t run, const char *notes)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_RUN_NOTES,
			     "UPDATE runs SET notes = ?2 WHERE id = ?1", &st);

	if (rc)
		return rc;
	store__bind_text(st, 2, notes);
	return run_update(s, st, run, "setting a run's notes");
}

/* ---- attempts --------------------------------------------------------- */

static const store__col attempt_cols[] = {
	STORE__COL(STORE__I64, store_attempt, run_id, 0),
	STORE__COL(STORE__INT, store_attempt, n, 0),
	STORE__COL(STORE__DBL, store_attempt, started_t, 0),
	STORE__COL(STORE__DBL, store_attempt, ended_t, 0),
	STORE__COL(STORE__INT, store_attempt, exit_status, STORE_NONE),
	STORE__COL(STORE__INT, store_attempt, signal, STORE_NONE),
	STORE__COL(STORE__TEXT, store_attempt, reason, 0),
	STORE__COL(STORE__TEXT, store_attempt, from_checkpoint, 0),
	STORE__COL(STORE__I64, store_attempt, from_step, STORE_NONE),
	STORE__COL(STORE__I64, store_attempt, pid, STORE_NONE),
};
#define ATTEMPT_NCOLS ((int)(sizeof attempt_cols / sizeof attempt_cols[0]))

int store_attempt_begin(store *s, int *out_n, int64_t run, const char *reason,
			const char *from_checkpoint, int64_t from_step,
			int64_t pid, double t)
{
	store_attempt a = { run, 0, t, 0, STORE_NONE, STORE_NONE, reason,
			    from_checkpoint, from_step, pid };
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	/* The number is computed inside the INSERT, so two writers cannot
	 * pick the same one. */
	if (rc || (rc = store__stmt(s, STORE__ST_ATTEMPT_BEGIN,
			"INSERT INTO attempts (run_id, n, started_t, ended_t, "
			"exit_status, signal, reason, from_checkpoint, "
			"from_step, pid) SELECT ?1, coalesce(max(n), 0) + 1, "
			"?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 FROM attempts "
			"WHERE run_id = ?1 RETURNING n", &st)))
		return rc;
	store__bind_cols(st, attempt_cols, ATTEMPT_NCOLS, &a, 1);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (out_n)
			*out_n = sqlite3_column_int(st, 0);
		rc = sqlite3_step(st);
	}
	rc = rc == SQLITE_DONE ? 0 : store__err(s, rc, "recording an attempt");
	sqlite3_reset(st);
	return rc;
}

int store_attempt_end(store *s, int64_t run, int n, int exit_status,
		      int signal, double t)
{
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	if (rc || (rc = store__stmt(s, STORE__ST_ATTEMPT_END,
			"UPDATE attempts SET exit_status = ?3, signal = ?4, "
			"ended_t = ?5 WHERE run_id = ?1 AND n = ?2", &st)))
		return rc;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int(st, 2, n);
	store__bind_opt(st, 3, exit_status);
	store__bind_opt(st, 4, signal);
	sqlite3_bind_double(st, 5, t);
	return store__exec_one(s, st, "recording an attempt's end");
}

int store_attempt_list(store *s, int64_t run, store_attempt_cb cb, void *ud)
{
	store_attempt a;
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_ATTEMPT_LIST,
			"SELECT run_id, n, started_t, ended_t, exit_status, "
			"signal, reason, from_checkpoint, from_step, pid "
			"FROM attempts WHERE run_id = ?1 ORDER BY n", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	while ((rc = store__next(s, st, attempt_cols, ATTEMPT_NCOLS, &a,
				 "listing attempts")) == 1)
		if ((rc = cb(&a, ud)) != 0) {
			sqlite3_reset(st);
			break;
		}
	return rc;
}
