/*
 * store_patch.c - the path from an incident to a change of the scaffold:
 * proposals (a diagnosis and a patch, usually from a model), evaluations
 * (the gated runs that test a proposal against a baseline) and promotions
 * (a proposal merged into the scaffold's main branch). The patcher owns
 * the lifecycles; the store keeps every step so the path can be replayed.
 */
#include "store_int.h"

#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Inserts obj's columns 1.. (column 0, the id, is assigned) bound from
 * parameter 2, and returns the new id. */
static int insert_row(store *s, int slot, const char *sql,
		      const store__col *col, int n, const void *obj,
		      int64_t *out_id, const char *what)
{
	sqlite3_stmt *st = NULL;
	int rc = store__write_ready(s);

	if (rc || (rc = store__stmt(s, slot, sql, &st)) != 0)
		return rc;
	if (store__bind_cols(st, col + 1, n - 1, obj, 2) != SQLITE_OK) {
		sqlite3_clear_bindings(st);
		return store__err(s, SQLITE_NOMEM, what);
	}
	rc = store__exec(s, st, what);
	if (rc == 0 && out_id)
		*out_id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

static int get_row(store *s, int slot, const char *sql, const store__col *col,
		   int n, size_t size, int64_t id, void **out, const char *what)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, slot, sql, &st);

	*out = NULL;
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	return store__fetch(s, st, col, n, size, out, what);
}

/* Binds ?1 id and ?2.. from the values already bound by the caller, runs
 * an UPDATE that must hit the row. */
static int update_row(store *s, sqlite3_stmt *st, int64_t id,
		      const char *what)
{
	int rc = store__write_ready(s);

	sqlite3_bind_int64(st, 1, id);
	if (rc) {
		sqlite3_clear_bindings(st);
		return rc;
	}
	return store__exec_one(s, st, what);
}

static void bind_id_or_null(sqlite3_stmt *st, int i, int64_t id)
{
	if (id == 0)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, id);
}

/* ---- proposals -------------------------------------------------------- */

#define PROP_COLS "id, incident_id, n, proposer, model, state, diagnosis, " \
	"confidence, diff, rationale, expected_effect, prompt_sha256, " \
	"response_sha256, branch, commit_id, reject_reason, created_t, updated_t"

static const store__col prop_cols[] = {
	STORE__COL(STORE__I64, store_proposal, id, 0),
	STORE__COL(STORE__I64, store_proposal, incident_id, 0),
	STORE__COL(STORE__INT, store_proposal, n, 0),
	STORE__COL(STORE__TEXT, store_proposal, proposer, 0),
	STORE__COL(STORE__TEXT, store_proposal, model, 0),
	STORE__COL(STORE__TEXT, store_proposal, state, 0),
	STORE__COL(STORE__TEXT, store_proposal, diagnosis, 0),
	STORE__COL(STORE__DBL, store_proposal, confidence, STORE_NONE),
	STORE__COL(STORE__TEXT, store_proposal, diff, 0),
	STORE__COL(STORE__TEXT, store_proposal, rationale, 0),
	STORE__COL(STORE__TEXT, store_proposal, expected_effect, 0),
	STORE__COL(STORE__TEXT, store_proposal, prompt_sha256, 0),
	STORE__COL(STORE__TEXT, store_proposal, response_sha256, 0),
	STORE__COL(STORE__TEXT, store_proposal, branch, 0),
	STORE__COL(STORE__TEXT, store_proposal, commit, 0),
	STORE__COL(STORE__TEXT, store_proposal, reject_reason, 0),
	STORE__COL(STORE__DBL, store_proposal, created_t, 0),
	STORE__COL(STORE__DBL, store_proposal, updated_t, 0),
};

int store_proposal_insert(store *s, int64_t *out_id, const store_proposal *p)
{
	store_proposal row = *p;

	/* n is numbered inside the INSERT (?3 is ignored), per incident;
	 * `IS` also matches the NULL incident. */
	row.created_t = row.updated_t = store__now();
	return insert_row(s, STORE__ST_PROP_INSERT,
		"INSERT INTO proposals (" PROP_COLS ") SELECT NULL, ?2, "
		"coalesce(max(n), 0) + 1, ?4, ?5, coalesce(?6, 'proposed'), "
		"?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18 "
		"FROM proposals WHERE incident_id IS ?2",
		prop_cols, NCOLS(prop_cols), &row, out_id,
		"recording a proposal");
}

int store_proposal_get(store *s, store_proposal **out, int64_t id)
{
	return get_row(s, STORE__ST_PROP_GET,
		       "SELECT " PROP_COLS " FROM proposals WHERE id = ?1",
		       prop_cols, NCOLS(prop_cols), sizeof **out, id,
		       (void **)out, "reading a proposal");
}

void store_proposal_free(store_proposal *p)
{
	if (!p)
		return;
	store__clear(prop_cols, NCOLS(prop_cols), p);
	sqlite3_free(p);
}

int store_proposal_set_state(store *s, int64_t id, const char *state,
			     const char *reject_reason)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_PROP_STATE,
			"UPDATE proposals SET state = ?2, reject_reason = "
			"coalesce(?3, reject_reason), updated_t = ?4 "
			"WHERE id = ?1", &st);

	if (rc)
		return rc;
	store__bind_text(st, 2, state);
	store__bind_text(st, 3, reject_reason);
	sqlite3_bind_double(st, 4, store__now());
	return update_row(s, st, id, "setting a proposal's state");
}

int store_proposal_set_branch(store *s, int64_t id, const char *branch,
			      const char *commit)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_PROP_BRANCH,
			"UPDATE proposals SET branch = ?2, commit_id = ?3, "
			"updated_t = ?4 WHERE id = ?1", &st);

	if (rc)
		return rc;
	store__bind_text(st, 2, branch);
	store__bind_text(st, 3, commit);
	sqlite3_bind_double(st, 4, store__now());
	return update_row(s, st, id, "setting a proposal's branch");
}

int store_proposal_list(store *s, int64_t incident, store_proposal_cb cb,
			void *ud)
{
	store_proposal p;
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_PROP_LIST,
			"SELECT " PROP_COLS " FROM proposals "
			"WHERE ?1 = 0 OR incident_id = ?1 ORDER BY id", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, incident);
	while ((rc = store__next(s, st, prop_cols, NCOLS(prop_cols), &p,
				 "listing proposals")) == 1)
		if ((rc = cb(&p, ud)) != 0) {
			sqlite3_reset(st);
			break;
		}
	return rc;
}

/* ---- evaluations ------------------------------------------------------ */

#define EVAL_COLS "id, proposal_id, stage, state, baseline_run_id, " \
	"candidate_run_id, figures, gates_sha256, verdict, reason, " \
	"started_t, ended_t"

static const store__col eval_cols[] = {
	STORE__COL(STORE__I64, store_evaluation, id, 0),
	STORE__COL(STORE__I64, store_evaluation, proposal_id, 0),
	STORE__COL(STORE__TEXT, store_evaluation, stage, 0),
	STORE__COL(STORE__TEXT, store_evaluation, state, 0),
	STORE__COL(STORE__I64, store_evaluation, baseline_run_id, 0),
	STORE__COL(STORE__I64, store_evaluation, candidate_run_id, 0),
	STORE__COL(STORE__TEXT, store_evaluation, figures, 0),
	STORE__COL(STORE__TEXT, store_evaluation, gates_sha256, 0),
	STORE__COL(STORE__TEXT, store_evaluation, verdict, 0),
	STORE__COL(STORE__TEXT, store_evaluation, reason, 0),
	STORE__COL(STORE__DBL, store_evaluation, started_t, 0),
	STORE__COL(STORE__DBL, store_evaluation, ended_t, 0),
};

int store_evaluation_insert(store *s, int64_t *out_id,
			    const store_evaluation *e)
{
	store_evaluation row = *e;
	int rc = store__check_json(s, e->figures, "recording an evaluation",
				   "the figures");

	if (rc)
		return rc;
	if (row.started_t == 0)
		row.started_t = store__now();
	return insert_row(s, STORE__ST_EVAL_INSERT,
		"INSERT INTO evaluations (" EVAL_COLS ") VALUES (NULL, ?2, "
		"?3, coalesce(?4, 'pending'), ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
		eval_cols, NCOLS(eval_cols), &row, out_id,
		"recording an evaluation");
}

int store_evaluation_get(store *s, store_evaluation **out, int64_t id)
{
	return get_row(s, STORE__ST_EVAL_GET,
		       "SELECT " EVAL_COLS " FROM evaluations WHERE id = ?1",
		       eval_cols, NCOLS(eval_cols), sizeof **out, id,
		       (void **)out, "reading an evaluation");
}

void store_evaluation_free(store_evaluation *e)
{
	if (!e)
		return;
	store__clear(eval_cols, NCOLS(eval_cols), e);
	sqlite3_free(e);
}

int store_evaluation_set_runs(store *s, int64_t id, int64_t baseline_run,
			      int64_t candidate_run)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_EVAL_RUNS,
			"UPDATE evaluations SET baseline_run_id = ?2, "
			"candidate_run_id = ?3 WHERE id = ?1", &st);

	if (rc)
		return rc;
	bind_id_or_null(st, 2, baseline_run);
	bind_id_or_null(st, 3, candidate_run);
	return update_row(s, st, id, "setting an evaluation's runs");
}

int store_evaluation_finish(store *s, int64_t id, const char *state,
			    const char *verdict, const char *reason,
			    const char *figures_json, const char *gates_sha256,
			    double t)
{
	sqlite3_stmt *st = NULL;
	int rc = store__check_json(s, figures_json,
				   "recording an evaluation's outcome",
				   "the figures");

	if (rc || (rc = store__stmt(s, STORE__ST_EVAL_FINISH,
			"UPDATE evaluations SET state = ?2, verdict = ?3, "
			"reason = ?4, figures = coalesce(?5, figures), "
			"gates_sha256 = coalesce(?6, gates_sha256), "
			"ended_t = ?7 WHERE id = ?1", &st)) != 0)
		return rc;
	store__bind_text(st, 2, state);
	store__bind_text(st, 3, verdict);
	store__bind_text(st, 4, reason);
	store__bind_text(st, 5, figures_json);
	store__bind_text(st, 6, gates_sha256);
	sqlite3_bind_double(st, 7, t != 0 ? t : store__now());
	return update_row(s, st, id, "recording an evaluation's outcome");
}

int store_evaluation_list(store *s, int64_t proposal, store_evaluation_cb cb,
			  void *ud)
{
	store_evaluation e;
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_EVAL_LIST,
			"SELECT " EVAL_COLS " FROM evaluations "
			"WHERE ?1 = 0 OR proposal_id = ?1 ORDER BY id", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, proposal);
	while ((rc = store__next(s, st, eval_cols, NCOLS(eval_cols), &e,
				 "listing evaluations")) == 1)
		if ((rc = cb(&e, ud)) != 0) {
			sqlite3_reset(st);
			break;
		}
	return rc;
}

/* ---- promotions ------------------------------------------------------- */

#define PROMO_COLS "id, proposal_id, evaluation_id, commit_id, " \
	"merged_commit, approved_by, t"

static const store__col promo_cols[] = {
	STORE__COL(STORE__I64, store_promotion, id, 0),
	STORE__COL(STORE__I64, store_promotion, proposal_id, 0),
	STORE__COL(STORE__I64, store_promotion, evaluation_id, 0),
	STORE__COL(STORE__TEXT, store_promotion, commit, 0),
	STORE__COL(STORE__TEXT, store_promotion, merged_commit, 0),
	STORE__COL(STORE__TEXT, store_promotion, approved_by, 0),
	STORE__COL(STORE__DBL, store_promotion, t, 0),
};

int store_promotion_insert(store *s, int64_t *out_id, const store_promotion *p)
{
	store_promotion row = *p;

	if (row.t == 0)
		row.t = store__now();
	return insert_row(s, STORE__ST_PROMO_INSERT,
		"INSERT INTO promotions (" PROMO_COLS ") VALUES "
		"(NULL, ?2, ?3, ?4, ?5, ?6, ?7)",
		promo_cols, NCOLS(promo_cols), &row, out_id,
		"recording a promotion");
}

int store_promotion_get(store *s, store_promotion **out, int64_t id)
{
	return get_row(s, STORE__ST_PROMO_GET,
		       "SELECT " PROMO_COLS " FROM promotions WHERE id = ?1",
		       promo_cols, NCOLS(promo_cols), sizeof **out, id,
		       (void **)out, "reading a promotion");
}

void store_promotion_free(store_promotion *p)
{
	if (!p)
		return;
	store__clear(promo_cols, NCOLS(promo_cols), p);
	sqlite3_free(p);
}

int store_promotion_list(store *s, int64_t proposal, store_promotion_cb cb,
			 void *ud)
{
	store_promotion p;
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_PROMO_LIST,
			"SELECT " PROMO_COLS " FROM promotions "
			"WHERE ?1 = 0 OR proposal_id = ?1 ORDER BY id", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, proposal);
	while ((rc = store__next(s, st, promo_cols, NCOLS(promo_cols), &p,
				 "listing promotions")) == 1)
		if ((rc = cb(&p, ud)) != 0) {
			sqlite3_reset(st);
			break;
		}
	return rc;
}
