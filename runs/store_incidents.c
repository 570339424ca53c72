/*
 * store_incidents.c - incidents (what the monitors found, folded by
 * signature so that a detector firing every step makes one incident with a
 * count, not thousands of rows) and checkpoints (the files a run can be
 * restarted from, with whether they were verified good).
 */
#include "store_int.h"

#include <string.h>

#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- incidents -------------------------------------------------------- */

#define INC_COLS "id, run_id, kind, severity, signature, onset_step, " \
	"last_step, first_t, last_t, count, state, summary, evidence, " \
	"resolved_t, resolution, label, label_by"

static const store__col inc_cols[] = {
	STORE__COL(STORE__I64, store_incident, id, 0),
	STORE__COL(STORE__I64, store_incident, run_id, 0),
	STORE__COL(STORE__TEXT, store_incident, kind, 0),
	STORE__COL(STORE__TEXT, store_incident, severity, 0),
	STORE__COL(STORE__TEXT, store_incident, signature, 0),
	STORE__COL(STORE__I64, store_incident, onset_step, STORE_NONE),
	STORE__COL(STORE__I64, store_incident, last_step, STORE_NONE),
	STORE__COL(STORE__DBL, store_incident, first_t, 0),
	STORE__COL(STORE__DBL, store_incident, last_t, 0),
	STORE__COL(STORE__I64, store_incident, count, 0),
	STORE__COL(STORE__TEXT, store_incident, state, 0),
	STORE__COL(STORE__TEXT, store_incident, summary, 0),
	STORE__COL(STORE__TEXT, store_incident, evidence, 0),
	STORE__COL(STORE__DBL, store_incident, resolved_t, 0),
	STORE__COL(STORE__TEXT, store_incident, resolution, 0),
	STORE__COL(STORE__TEXT, store_incident, label, 0),
	STORE__COL(STORE__TEXT, store_incident, label_by, 0),
};

#define SEV_RANK(x) "(CASE " x " WHEN 'critical' THEN 3 " \
	"WHEN 'warning' THEN 2 ELSE 1 END)"

/* The fold is one statement against the partial unique index on open
 * incidents, so two monitors racing on one signature cannot open two. */
static const char upsert_sql[] =
	"INSERT INTO incidents (run_id, kind, severity, signature, "
	"onset_step, last_step, first_t, last_t, summary, evidence) "
	"VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?6, ?7, ?8) "
	"ON CONFLICT (run_id, signature) WHERE state = 'open' DO UPDATE SET "
	"count = count + 1, "
	"last_step = coalesce(excluded.last_step, last_step), "
	"last_t = excluded.last_t, "
	"severity = CASE WHEN " SEV_RANK("excluded.severity") " > "
	SEV_RANK("severity") " THEN excluded.severity ELSE severity END "
	"RETURNING id, count";

static void bind_observation(sqlite3_stmt *st, const store_incident *in)
{
	double t = in->first_t != 0 ? in->first_t : store__now();

	sqlite3_bind_int64(st, 1, in->run_id);
	store__bind_text(st, 2, in->kind);
	store__bind_text(st, 3, in->severity);
	store__bind_text(st, 4, in->signature);
	store__bind_opt(st, 5, in->onset_step);
	sqlite3_bind_double(st, 6, t);
	store__bind_text(st, 7, in->summary);
	store__bind_text(st, 8, in->evidence);
}

int store_incident_upsert(store *s, int64_t *out_id, int *out_new,
			  const store_incident *in)
{
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	if (rc || (rc = store__check_json(s, in->evidence,
					  "recording an incident",
					  "the evidence")) != 0 ||
	    (rc = store__stmt(s, STORE__ST_INC_UPSERT, upsert_sql, &st)) != 0)
		return rc;
	bind_observation(st, in);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (out_id)
			*out_id = sqlite3_column_int64(st, 0);
		if (out_new)
			*out_new = sqlite3_column_int64(st, 1) == 1;
		rc = sqlite3_step(st);
	}
	rc = rc == SQLITE_DONE ? 0 : store__err(s, rc, "recording an incident");
	sqlite3_reset(st);
	return rc;
}

int store_incident_resolve(store *s, int64_t id, double t,
			   const char *resolution)
{
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	if (rc || (rc = store__stmt(s, STORE__ST_INC_RESOLVE,
			"UPDATE incidents SET state = 'resolved', "
			"resolved_t = ?2, resolution = ?3 "
			"WHERE id = ?1 AND state = 'open'", &st)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_double(st, 2, t != 0 ? t : store__now());
	store__bind_text(st, 3, resolution);
	rc = store__exec_one(s, st, "resolving an incident");
	if (rc == TEND_ENOTFOUND)
		return tend_error_set(rc, "%s: no open incident with id %lld",
				      s->path, (long long)id);
	return rc;
}

int store_incident_label(store *s, int64_t id, const char *label, const char *by)
{
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);
	if (!label || (strcmp(label, "real") && strcmp(label, "false")))
		return tend_error_set(TEND_EINVAL, "incident label must be \"real\" or "
				      "\"false\", got \"%s\"", label ? label : "");
	if (rc || (rc = store__stmt(s, STORE__ST_INC_LABEL,
			"UPDATE incidents SET label = ?2, label_by = ?3 WHERE id = ?1", &st)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	store__bind_text(st, 2, label);
	store__bind_text(st, 3, by);
	rc = store__exec_one(s, st, "labelling an incident");
	if (rc == TEND_ENOTFOUND)
		return tend_error_set(rc, "%s: no incident with id %lld", s->path, (long long)id);
	return rc;
}

int store_incident_get(store *s, store_incident **out, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_INC_GET,
			     "SELECT " INC_COLS " FROM incidents WHERE id = ?1",
			     &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	return store__fetch(s, st, inc_cols, NCOLS(inc_cols), sizeof **out,
			    (void **)out, "reading an incident");
}

void store_incident_free(store_incident *i)
{
	if (!i)
		return;
	store__clear(inc_cols, NCOLS(inc_cols), i);
	sqlite3_free(i);
}

int store_incident_list(store *s, int64_t run, const char *state,
			store_incident_cb cb, void *ud)
{
	store_incident i;
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_INC_LIST,
			"SELECT " INC_COLS " FROM incidents "
			"WHERE (?1 = 0 OR run_id = ?1) "
			"AND (?2 IS NULL OR state = ?2) ORDER BY id", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	store__bind_text(st, 2, state);
	while ((rc = store__next(s, st, inc_cols, NCOLS(inc_cols), &i,
				 "listing incidents")) == 1)
		if ((rc = cb(&i, ud)) != 0) {
			sqlite3_reset(st);
			break;
		}
	return rc;
}

/* ---- checkpoints ------------------------------------------------------ */

#define CKPT_COLS "id, run_id, attempt, step, path, sha256, bytes, t, good"

static const store__col ckpt_cols[] = {
	STORE__COL(STORE__I64, store_checkpoint, id, 0),
	STORE__COL(STORE__I64, store_checkpoint, run_id, 0),
	STORE__COL(STORE__INT, store_checkpoint, attempt, 0),
	STORE__COL(STORE__I64, store_checkpoint, step, STORE_NONE),
	STORE__COL(STORE__TEXT, store_checkpoint, path, 0),
	STORE__COL(STORE__TEXT, store_checkpoint, sha256, 0),
	STORE__COL(STORE__I64, store_checkpoint, bytes, STORE_NONE),
	STORE__COL(STORE__DBL, store_checkpoint, t, 0),
	STORE__COL(STORE__INT, store_checkpoint, good, STORE_NONE),
};

int store_checkpoint_add(store *s, int64_t *out_id, const store_checkpoint *c)
{
	store_checkpoint row = *c;
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	if (rc || (rc = store__stmt(s, STORE__ST_CKPT_ADD,
			"INSERT INTO checkpoints (" CKPT_COLS ") VALUES "
			"(NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &st)) != 0)
		return rc;
	if (row.t == 0)
		row.t = store__now();
	store__bind_cols(st, ckpt_cols + 1, NCOLS(ckpt_cols) - 1, &row, 2);
	rc = store__exec(s, st, "recording a checkpoint");
	if (rc == TEND_EEXISTS)
		return tend_error_set(rc, "%s: run %lld already has a "
				      "checkpoint at %s", s->path,
				      (long long)c->run_id, c->path);
	if (rc == 0 && out_id)
		*out_id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_checkpoint_set_good(store *s, int64_t id, int good)
{
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	if (rc || (rc = store__stmt(s, STORE__ST_CKPT_GOOD,
			"UPDATE checkpoints SET good = ?2 WHERE id = ?1",
			&st)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	store__bind_opt(st, 2, good);
	return store__exec_one(s, st, "marking a checkpoint");
}

int store_checkpoint_latest_good(store *s, store_checkpoint **out,
				 int64_t run)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_CKPT_LATEST,
			"SELECT " CKPT_COLS " FROM checkpoints WHERE "
			"run_id = ?1 AND good = 1 ORDER BY step DESC, id DESC "
			"LIMIT 1", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	rc = store__fetch(s, st, ckpt_cols, NCOLS(ckpt_cols), sizeof **out,
			  (void **)out, "reading checkpoints");
	if (rc == TEND_ENOTFOUND)
		return tend_error_set(rc, "%s: run %lld has no good checkpoint",
				      s->path, (long long)run);
	return rc;
}

void store_checkpoint_free(store_checkpoint *c)
{
	if (!c)
		return;
	store__clear(ckpt_cols, NCOLS(ckpt_cols), c);
	sqlite3_free(c);
}

int store_checkpoint_list(store *s, int64_t run, store_checkpoint_cb cb,
			  void *ud)
{
	store_checkpoint c;
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_CKPT_LIST,
			"SELECT " CKPT_COLS " FROM checkpoints "
			"WHERE run_id = ?1 ORDER BY step, id", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	while ((rc = store__next(s, st, ckpt_cols, NCOLS(ckpt_cols), &c,
				 "listing checkpoints")) == 1)
		if ((rc = cb(&c, ud)) != 0) {
			sqlite3_reset(st);
			break;
		}
	return rc;
}
