/*
 * test_serve_api.c - `tend serve` over real HTTP: a workspace made by
 * `tend init` and filled through the store API (fill.h), the server as a
 * child process, libcurl as the client. Covers every endpoint's answer,
 * the embedded UI, /metrics, live data, approve and reject through the
 * CLI, and the refusals: unknown things, bad query ranges, malformed JSON,
 * missing or wrong tokens, cross-site posts, a read-only server. Each
 * refused write is checked to have changed nothing.
 */
#include "client.h"
#include "fill.h"
#include "clock.h"
#include "fsutil.h"
#include "json.h"
#include "tt.h"

#include <ftw.h>
#include <sys/stat.h>

static char dir[64], ws[128];
static served S;
static char csrf[80];

/* ---- helpers ------------------------------------------------------------ */

static json_doc *get_json(const char *path, long want)
{
	resp r;
	json_doc *d = NULL;
	if (http(&r, &S, "GET", path, NULL, NULL) < 0)
		return NULL;
	if (r.status != want)
		fprintf(stderr, "GET %s: status %ld, want %ld: %s\n", path, r.status,
			want, r.body);
	if (r.status == want && json_parse(&d, r.body, r.len, NULL) < 0)
		fprintf(stderr, "GET %s: not JSON: %s\n", path, tend_error_last());
	resp_free(&r);
	return d;
}

/* The "error" of a JSON error answer, copied into out. */
static long error_of(resp *r, char *out, size_t cap)
{
	json_doc *d = NULL;
	const char *e = NULL;
	out[0] = '\0';
	if (json_parse(&d, r->body, r->len, NULL) == 0 &&
	    json_get_str(json_root(d), "error", &e) == 0)
		snprintf(out, cap, "%s", e);
	json_doc_free(d);
	return r->status;
}

/* GETs path and checks the status and that the error message holds msg. */
static void check_get_error(const char *path, long status, const char *msg)
{
	resp r;
	char err[1024];
	TT_REQUIRE(http(&r, &S, "GET", path, NULL, NULL) == 0);
	TT_CHECK(error_of(&r, err, sizeof err) == status);
	TT_CHECK_HAS(err, msg);
	TT_CHECK_HAS(r.ctype, "application/json");
	resp_free(&r);
}

static const json_val *find_run(const json_val *runs, const char *name)
{
	for (size_t i = 0; i < json_len(runs); i++) {
		const char *n = NULL;
		if (json_get_str(json_at(runs, i), "name", &n) == 0 && !strcmp(n, name))
			return json_at(runs, i);
	}
	return NULL;
}

static int64_t get_int(const json_val *o, const char *key)
{
	int64_t v = -999;
	json_get_int(o, key, &v);
	return v;
}

static const char *get_str(const json_val *o, const char *key)
{
	const char *v = NULL;
	json_get_str(o, key, &v);
	return v ? v : "(none)";
}

static int count_row(const store_audit_row *r, void *ud)
{
	(void)r;
	(*(int64_t *)ud)++;
	return 0;
}

/* State of a proposal and audit rows, read straight from the store. */
static void store_facts(int64_t proposal, char *state, size_t cap, int64_t *audit_rows)
{
	char db[256];
	store *s = NULL;
	store_proposal *p = NULL;
	snprintf(db, sizeof db, "%s/tend.db", ws);
	state[0] = '\0';
	*audit_rows = 0;
	if (store_open(&s, db, STORE_READONLY) < 0)
		return;
	if (store_proposal_get(s, &p, proposal) == 0)
		snprintf(state, cap, "%s", p->state);
	store_proposal_free(p);
	store_audit_list(s, 0, count_row, audit_rows);
	store_close(s);
}

/* ---- static files and session ------------------------------------------- */

static void test_ui_is_embedded(void)
{
	resp r;
	TT_REQUIRE(http(&r, &S, "GET", "/", NULL, NULL) == 0);
	TT_CHECK(r.status == 200);
	TT_CHECK_HAS(r.ctype, "text/html");
	TT_CHECK_HAS(r.body, "<title>tend</title>");
	TT_CHECK_HAS(r.body, "/vendor/uPlot.iife.min.js");
	resp_free(&r);
	TT_REQUIRE(http(&r, &S, "GET", "/vendor/uPlot.iife.min.js", NULL, NULL) == 0);
	TT_CHECK(r.status == 200 && r.len > 40000);
	TT_CHECK_HAS(r.ctype, "text/javascript");
	resp_free(&r);
	TT_REQUIRE(http(&r, &S, "GET", "/vendor/LICENSE", NULL, NULL) == 0);
	TT_CHECK_HAS(r.body, "The MIT License");
	resp_free(&r);
	TT_REQUIRE(http(&r, &S, "GET", "/app.js", NULL, NULL) == 0);
	TT_CHECK(r.status == 200);
	TT_CHECK_HAS(r.body, "/api/series");
	resp_free(&r);
	TT_REQUIRE(http(&r, &S, "GET", "/nothing-here.js", NULL, NULL) == 0);
	TT_CHECK(r.status == 404);
	resp_free(&r);
	TT_REQUIRE(http(&r, &S, "POST", "/index.html", NULL, "x") == 0);
	TT_CHECK(r.status == 405);
	resp_free(&r);
}

static void test_session(void)
{
	json_doc *d = get_json("/api/session", 200);
	TT_REQUIRE(d);
	const json_val *o = json_root(d);
	bool ro = true, tok = true;
	json_get_bool(o, "read_only", &ro);
	json_get_bool(o, "token_required", &tok);
	TT_CHECK(!ro && !tok);
	TT_CHECK(strlen(get_str(o, "csrf")) == 64);
	TT_CHECK_STR(get_str(o, "version"), TEND_VERSION);
	snprintf(csrf, sizeof csrf, "%s", get_str(o, "csrf"));
	json_doc_free(d);
}

/* ---- runs and series ---------------------------------------------------- */

static void test_runs(void)
{
	json_doc *d = get_json("/api/runs", 200);
	TT_REQUIRE(d);
	const json_val *runs = json_get(json_root(d), "runs");
	TT_CHECK(json_len(runs) == 3);
	const json_val *b = find_run(runs, "baseline");
	TT_REQUIRE(b);
	TT_CHECK_STR(get_str(b, "state"), "finished");
	TT_CHECK(get_int(b, "step") == 1999);
	TT_CHECK(get_int(b, "open_incidents") == 1);
	TT_CHECK(get_int(b, "incidents") == 2);
	double ett = 0, tps = 0, loss = 0;
	json_get_num(b, "ett", &ett);
	json_get_num(b, "tokens_per_s", &tps);
	json_get_num(b, "loss", &loss);
	/* 2000 steps of 0.45 s over a 1001 s wall */
	TT_CHECK(fabs(ett - 900.0 / 1001.0) < 1e-6);
	TT_CHECK(tps > 110000 && tps < 130000);
	TT_CHECK(fabs(loss - fill_loss(1999, 1.0)) < 1e-9);
	TT_CHECK_STR(get_str(find_run(runs, "live"), "state"), "running");
	json_doc_free(d);
}

static void test_run(void)
{
	json_doc *d = get_json("/api/run?run=baseline", 200);
	TT_REQUIRE(d);
	const json_val *o = json_root(d), *metrics = json_get(o, "metrics");
	bool has_loss = false, has_moe = false, terminal = false;
	for (size_t i = 0; i < json_len(metrics); i++) {
		const char *n = json_str(json_at(metrics, i), NULL);
		has_loss |= !strcmp(n, "loss");
		has_moe |= !strcmp(n, "moe.1.load.3");
	}
	TT_CHECK(has_loss && has_moe);
	TT_CHECK(json_len(json_get(o, "attempts")) == 1);
	json_get_bool(json_get(o, "run"), "terminal", &terminal);
	TT_CHECK(terminal);
	json_doc_free(d);
	check_get_error("/api/run?run=nope", 404, "no run named 'nope'");
	check_get_error("/api/run", 400, "query argument run: missing");
	check_get_error("/api/run?run=", 400, "query argument run: missing");
}

static bool has_point(const json_val *s, int64_t step, double y, bool null)
{
	const json_val *x = json_get(s, "x"), *v = json_get(s, "y");
	for (size_t i = 0; i < json_len(x); i++)
		if ((int64_t)json_num(json_at(x, i)) == step)
			return null ? json_type(json_at(v, i)) == JSON_NULL
				    : json_num(json_at(v, i)) == y;
	return false;
}

static void test_series_downsampled_with_marks(void)
{
	json_doc *d = get_json("/api/series?run=baseline&name=loss&name=val_loss"
			       "&points=200", 200);
	TT_REQUIRE(d);
	const json_val *o = json_root(d), *series = json_get(o, "series");
	TT_REQUIRE(json_len(series) == 2);
	const json_val *loss = json_at(series, 0), *val = json_at(series, 1);
	TT_CHECK(get_int(loss, "read") == 2000);
	TT_CHECK(get_int(val, "read") == 20);
	size_t n = json_len(json_get(loss, "x"));
	TT_CHECK(n >= 100 && n <= 300);
	TT_CHECK(json_len(json_get(val, "x")) == 20); /* fewer than buckets: all */
	TT_CHECK(has_point(loss, FILL_SPIKE_STEP, 9.5, false)); /* spike kept */
	TT_CHECK(has_point(loss, FILL_NAN_STEP, 0, true));      /* NaN as null */
	const json_val *inc = json_get(o, "incidents"), *pro = json_get(o, "promotions");
	TT_REQUIRE(json_len(inc) == 2);
	TT_CHECK(get_int(json_at(inc, 0), "onset_step") == FILL_SPIKE_STEP);
	TT_CHECK(get_int(json_at(inc, 1), "onset_step") == FILL_NAN_STEP);
	TT_REQUIRE(json_len(pro) == 1);
	TT_CHECK(get_int(json_at(pro, 0), "step") == FILL_PROMO_STEP);
	TT_CHECK_STR(get_str(json_at(pro, 0), "approved_by"), "alice");
	json_doc_free(d);

	/* a zoomed range: every step of it, nothing outside */
	d = get_json("/api/series?run=baseline&name=loss&from=600&to=800&points=10000", 200);
	TT_REQUIRE(d);
	const json_val *z = json_at(json_get(json_root(d), "series"), 0);
	TT_CHECK(get_int(z, "read") == 201);
	const json_val *x = json_get(z, "x");
	TT_CHECK(json_len(x) == 201);
	TT_CHECK(json_num(json_at(x, 0)) == 600 && json_num(json_at(x, 200)) == 800);
	json_doc_free(d);

	/* an unknown metric is an empty series, not an error */
	d = get_json("/api/series?run=baseline&name=no_such_metric", 200);
	TT_REQUIRE(d);
	TT_CHECK(get_int(json_at(json_get(json_root(d), "series"), 0), "read") == 0);
	json_doc_free(d);
	/* a promotion before the candidate run's time is not drawn on it */
	d = get_json("/api/series?run=candidate", 200);
	TT_REQUIRE(d);
	TT_CHECK(json_len(json_get(json_root(d), "promotions")) == 0);
	json_doc_free(d);
}

static void test_series_bad_queries(void)
{
	char path[2048];
	check_get_error("/api/series?run=baseline&points=100000", 400,
			"query argument points: expected an integer in 2..20000, got \"100000\"");
	check_get_error("/api/series?run=baseline&points=1", 400, "query argument points");
	check_get_error("/api/series?run=baseline&from=5&to=4", 400,
			"empty step range: from 5 is after to 4");
	check_get_error("/api/series?run=baseline&from=-1", 400, "query argument from");
	check_get_error("/api/series?run=baseline&to=99999999999999999999", 400,
			"query argument to");
	check_get_error("/api/series?run=baseline&from=abc", 400,
			"expected an integer in 0..9007199254740992, got \"abc\"");
	check_get_error("/api/series?run=ghost", 404, "no run named 'ghost'");
	strcpy(path, "/api/series?run=baseline");
	for (int i = 0; i < 17; i++)
		strcat(path, "&name=loss");
	check_get_error(path, 400, "too many metrics: at most 16 name= arguments");
	check_get_error("/api/series?run=baseline&name=", 400, "query argument name");
}

static void test_moe_heatmap(void)
{
	json_doc *d = get_json("/api/moe?run=baseline&points=20", 200);
	TT_REQUIRE(d);
	const json_val *layers = json_get(json_root(d), "layers");
	TT_REQUIRE(json_len(layers) == 2);
	const json_val *l1 = json_at(layers, 1), *load = json_get(l1, "load");
	TT_CHECK(get_int(l1, "layer") == 1 && get_int(l1, "experts") == 4);
	TT_REQUIRE(json_len(load) == 4);
	const json_val *e0 = json_at(load, 0);
	size_t nb = json_len(e0);
	TT_CHECK(nb >= 10 && nb <= 20);
	TT_CHECK(json_len(json_get(l1, "x")) == nb);
	/* expert 0 of layer 1 takes over after the spike */
	TT_CHECK(json_num(json_at(e0, 0)) < 0.3 && json_num(json_at(e0, nb - 1)) > 0.5);
	TT_CHECK(json_len(json_at(load, 3)) == nb); /* the same buckets */
	json_doc_free(d);
	check_get_error("/api/moe?run=baseline&points=0", 400, "query argument points");
}

/* ---- incidents, proposals, audit ---------------------------------------- */

static void test_incidents(void)
{
	json_doc *d = get_json("/api/incidents", 200);
	TT_REQUIRE(d);
	const json_val *all = json_get(json_root(d), "incidents");
	TT_REQUIRE(json_len(all) == 2);
	double z = 0;
	json_get_num(json_get(json_at(all, 0), "evidence"), "zscore", &z);
	TT_CHECK(z == 41.2);
	TT_CHECK_STR(get_str(json_at(all, 0), "run"), "baseline");
	TT_CHECK_STR(get_str(json_at(all, 0), "state"), "resolved");
	json_doc_free(d);
	d = get_json("/api/incidents?state=open&run=baseline", 200);
	TT_REQUIRE(d);
	TT_CHECK(json_len(json_get(json_root(d), "incidents")) == 1);
	json_doc_free(d);
	d = get_json("/api/incidents/1", 200);
	TT_REQUIRE(d);
	TT_CHECK(json_len(json_get(json_root(d), "proposals")) == 2);
	json_doc_free(d);
	check_get_error("/api/incidents?state=closed", 400,
			"query argument state: expected open or resolved");
	check_get_error("/api/incidents?run=ghost", 404, "no run named 'ghost'");
	check_get_error("/api/incidents/999", 404, "no incident 999");
	check_get_error("/api/incidents/1x", 404, "no such endpoint");
}

static void test_proposals(void)
{
	json_doc *d = get_json("/api/proposals", 200);
	TT_REQUIRE(d);
	TT_CHECK(json_len(json_get(json_root(d), "proposals")) == 3);
	json_doc_free(d);
	d = get_json("/api/proposals/3", 200);
	TT_REQUIRE(d);
	const json_val *o = json_root(d), *p = json_get(o, "proposal");
	TT_CHECK_STR(get_str(p, "state"), "awaiting_approval");
	TT_CHECK_HAS(get_str(p, "diff"), "(tuned)");
	TT_CHECK_STR(get_str(p, "branch"), "proposals/fixture-1");
	TT_CHECK_STR(get_str(json_get(o, "incident"), "kind"), "spike");
	const json_val *ev = json_at(json_get(o, "evaluations"), 0);
	TT_CHECK_STR(get_str(ev, "baseline_run"), "baseline");
	TT_CHECK_STR(get_str(ev, "candidate_run"), "candidate");
	TT_CHECK_STR(get_str(ev, "verdict"), "pass");
	const json_val *rows = json_get(json_get(json_get(ev, "figures"), "verdict"), "rows");
	TT_CHECK(json_len(rows) == 3);
	json_doc_free(d);
	d = get_json("/api/proposals/1", 200);
	TT_REQUIRE(d);
	TT_CHECK(json_len(json_get(json_root(d), "promotions")) == 1);
	TT_CHECK(json_type(json_get(json_root(d), "incident")) == JSON_NULL);
	json_doc_free(d);
	check_get_error("/api/proposals/77", 404, "no proposal 77");
}

static void test_audit(void)
{
	json_doc *d = get_json("/api/audit", 200);
	TT_REQUIRE(d);
	const json_val *rows = json_get(json_root(d), "rows");
	TT_CHECK(json_len(rows) >= 4);
	TT_CHECK(strlen(get_str(json_at(rows, 0), "hash")) == 64);
	json_doc_free(d);
	d = get_json("/api/audit?limit=2", 200);
	TT_REQUIRE(d);
	bool more = false;
	json_get_bool(json_root(d), "more", &more);
	TT_CHECK(json_len(json_get(json_root(d), "rows")) == 2 && more);
	TT_CHECK(get_int(json_root(d), "next") == 2);
	json_doc_free(d);
	check_get_error("/api/audit?limit=0", 400, "query argument limit");
	check_get_error("/api/audit?limit=10001", 400, "query argument limit");
	d = get_json("/api/audit/verify", 200);
	TT_REQUIRE(d);
	bool ok = false;
	json_get_bool(json_root(d), "ok", &ok);
	TT_CHECK(ok);
	TT_CHECK(get_int(json_root(d), "exit_status") == 0);
	json_doc_free(d);
}

static void test_prometheus(void)
{
	resp r;
	TT_REQUIRE(http(&r, &S, "GET", "/metrics", NULL, NULL) == 0);
	TT_CHECK(r.status == 200);
	TT_CHECK_HAS(r.ctype, "text/plain; version=0.0.4");
	TT_CHECK_HAS(r.body, "# TYPE tend_run_step gauge\n");
	TT_CHECK_HAS(r.body, "tend_run_step{run=\"baseline\"} 1999\n");
	TT_CHECK_HAS(r.body, "tend_run_open_incidents{run=\"baseline\"} 1\n");
	TT_CHECK_HAS(r.body, "tend_run_info{run=\"live\",state=\"running\"} 1\n");
	TT_CHECK_HAS(r.body, "tend_run_effective_training_ratio{run=\"baseline\"} 0.899");
	TT_CHECK_HAS(r.body, "tend_run_tokens_per_second{run=\"baseline\"} ");
	TT_CHECK_HAS(r.body, "tend_run_loss{run=\"baseline\"} ");
	TT_CHECK_HAS(r.body, "tend_proposals{state=\"awaiting_approval\"} 1\n");
	TT_CHECK_HAS(r.body, "tend_proposals{state=\"promoted\"} 1\n");
	TT_CHECK_HAS(r.body, "tend_open_incidents 1\n");
	resp_free(&r);
}

/* ---- live data ---------------------------------------------------------- */

static void test_live_run_grows(void)
{
	char db[256];
	store *s = NULL;
	store_run *run = NULL;
	snprintf(db, sizeof db, "%s/tend.db", ws);
	TT_REQUIRE(store_open(&s, db, 0) == 0);
	TT_REQUIRE(store_run_get_by_name(s, &run, "live") == 0);
	json_doc *d = get_json("/api/series?run=live&name=loss", 200);
	TT_REQUIRE(d);
	int64_t before = get_int(json_at(json_get(json_root(d), "series"), 0), "read");
	json_doc_free(d);
	/* the trainer goes on while the server runs */
	for (int64_t i = 100; i < 150; i++)
		TT_CHECK(store_metric_put(s, run->id, 1, i, "loss", 2.0, tend_wall_s()) == 0);
	d = get_json("/api/series?run=live&name=loss", 200);
	TT_REQUIRE(d);
	TT_CHECK(before == 100);
	TT_CHECK(get_int(json_at(json_get(json_root(d), "series"), 0), "read") == 150);
	json_doc_free(d);
	store_run_free(run);
	store_close(s);
}

/* ---- writes and their refusals ------------------------------------------ */

static long post(const char *path, const char *const *hdrs, const char *body,
		 char *err, size_t cap)
{
	resp r;
	if (http(&r, &S, "POST", path, hdrs, body) < 0)
		return -1;
	long st = error_of(&r, err, cap);
	resp_free(&r);
	return st;
}

static void test_refused_writes_change_nothing(void)
{
	char err[1024], state[64], want_csrf[128], ok_csrf[128];
	int64_t audit_before = 0, audit_after = 0;
	store_facts(3, state, sizeof state, &audit_before);
	TT_REQUIRE(!strcmp(state, "awaiting_approval"));
	snprintf(ok_csrf, sizeof ok_csrf, "X-Tend-CSRF: %s", csrf);
	snprintf(want_csrf, sizeof want_csrf, "X-Tend-CSRF: %064d", 0);
	const char *json_ct = "Content-Type: application/json";
	const char *none[] = {json_ct, NULL};
	const char *wrong[] = {json_ct, want_csrf, NULL};
	const char *evil[] = {json_ct, ok_csrf, "Origin: http://evil.example", NULL};
	const char *site[] = {json_ct, ok_csrf, "Sec-Fetch-Site: cross-site", NULL};
	const char *text[] = {"Content-Type: text/plain", ok_csrf, NULL};
	const char *good[] = {json_ct, ok_csrf, NULL};
	const char *host[] = {json_ct, ok_csrf, "Host: attacker.example:80", NULL};

	TT_CHECK(post("/api/proposals/3/approve", none, "{}", err, sizeof err) == 403);
	TT_CHECK_HAS(err, "missing X-Tend-CSRF header");
	TT_CHECK(post("/api/proposals/3/approve", wrong, "{}", err, sizeof err) == 403);
	TT_CHECK_HAS(err, "wrong X-Tend-CSRF header");
	TT_CHECK(post("/api/proposals/3/approve", evil, "{}", err, sizeof err) == 403);
	TT_CHECK_HAS(err, "cross-site request refused: Origin 'http://evil.example'");
	TT_CHECK(post("/api/proposals/3/approve", site, "{}", err, sizeof err) == 403);
	TT_CHECK_HAS(err, "Sec-Fetch-Site is 'cross-site'");
	TT_CHECK(post("/api/proposals/3/approve", text, "{}", err, sizeof err) == 415);
	TT_CHECK_HAS(err, "Content-Type must be application/json");
	TT_CHECK(post("/api/proposals/3/approve", host, "{}", err, sizeof err) == 403);
	TT_CHECK_HAS(err, "Host 'attacker.example:80' is not this server");
	TT_CHECK(post("/api/proposals/3/reject", good, "{\"reason\":", err, sizeof err) == 400);
	TT_CHECK_HAS(err, "body: malformed JSON: 1:11:");
	TT_CHECK(post("/api/proposals/3/approve", good, "[1]", err, sizeof err) == 400);
	TT_CHECK_HAS(err, "body: expected a JSON object");
	TT_CHECK(post("/api/proposals/3/approve", good, "", err, sizeof err) == 400);
	TT_CHECK(post("/api/proposals/3/reject", good, "{}", err, sizeof err) == 400);
	TT_CHECK_HAS(err, "body: field reason: expected a string");
	TT_CHECK(post("/api/proposals/3/reject", good, "{\"reason\":\"\"}", err, sizeof err) == 400);
	TT_CHECK(post("/api/proposals/999/approve", good, "{}", err, sizeof err) == 404);
	TT_CHECK_HAS(err, "no proposal 999");
	TT_CHECK(post("/api/runs", good, "{}", err, sizeof err) == 405);
	TT_CHECK_HAS(err, "POST is not allowed on /api/runs (allowed: GET)");
	char *big = malloc(70000);
	TT_REQUIRE(big);
	memset(big, ' ', 69999);
	big[0] = '{', big[69997] = '}', big[69998] = '\0';
	TT_CHECK(post("/api/proposals/3/approve", good, big, err, sizeof err) == 413);
	TT_CHECK_HAS(err, "request body over 65536 bytes");
	free(big);
	/* the CLI refuses: a proposal already promoted; its words come back */
	TT_CHECK(post("/api/proposals/1/approve", good, "{}", err, sizeof err) == 409);
	TT_CHECK_HAS(err, "proposal 1 is promoted");

	resp r;
	TT_REQUIRE(http(&r, &S, "GET", "/api/proposals/3/approve", NULL, NULL) == 0);
	TT_CHECK(r.status == 405);
	TT_CHECK_STR(r.allow, "");
	resp_free(&r);
	TT_REQUIRE(http(&r, &S, "DELETE", "/api/runs", NULL, NULL) == 0);
	TT_CHECK(r.status == 405);
	resp_free(&r);

	store_facts(3, state, sizeof state, &audit_after);
	TT_CHECK_STR(state, "awaiting_approval");
	TT_CHECK(audit_after == audit_before);
}

static void test_approve_promotes(void)
{
	char err[1024], state[64], ok_csrf[128];
	int64_t rows = 0;
	snprintf(ok_csrf, sizeof ok_csrf, "X-Tend-CSRF: %s", csrf);
	char origin[128];
	snprintf(origin, sizeof origin, "Origin: %s", S.base);
	const char *good[] = {"Content-Type: application/json", ok_csrf, origin,
			      "Sec-Fetch-Site: same-origin", NULL};
	resp r;
	TT_REQUIRE(http(&r, &S, "POST", "/api/proposals/3/approve", good, "{}") == 0);
	TT_CHECK(r.status == 200);
	TT_CHECK_HAS(r.body, "\"ok\":true");
	TT_CHECK_HAS(r.body, "proposal 3 approved and promoted");
	resp_free(&r);
	store_facts(3, state, sizeof state, &rows);
	TT_CHECK_STR(state, "promoted");
	json_doc *d = get_json("/api/proposals/3", 200);
	TT_REQUIRE(d);
	TT_CHECK(json_len(json_get(json_root(d), "promotions")) == 1);
	json_doc_free(d);
	d = get_json("/api/audit", 200);
	TT_REQUIRE(d);
	const json_val *all = json_get(json_root(d), "rows");
	TT_CHECK_STR(get_str(json_at(all, json_len(all) - 1), "action"), "promote");
	json_doc_free(d);
	d = get_json("/api/audit/verify", 200);
	TT_REQUIRE(d);
	TT_CHECK_HAS(get_str(json_root(d), "command"), "audit verify");
	json_doc_free(d);
	/* and now the CLI refuses a second approval */
	TT_CHECK(post("/api/proposals/3/approve", good, "{}", err, sizeof err) == 409);
	TT_CHECK(post("/api/proposals/3/reject", good, "{\"reason\":\"too late\"}", err,
		      sizeof err) == 409);
	TT_CHECK_HAS(err, "proposal 3");
}

/* ---- other server modes ------------------------------------------------- */

static void test_read_only_server(void)
{
	served ro;
	const char *extra[] = {"--read-only", NULL};
	char err[512], hdr[128];
	TT_REQUIRE(served_start(&ro, ws, NULL, extra, NULL) == 0);
	TT_CHECK_HAS(ro.banner, "(read-only)");
	served keep = S;
	S = ro;
	json_doc *d = get_json("/api/session", 200);
	TT_REQUIRE(d);
	snprintf(hdr, sizeof hdr, "X-Tend-CSRF: %s", get_str(json_root(d), "csrf"));
	const char *good[] = {"Content-Type: application/json", hdr, NULL};
	TT_CHECK(post("/api/proposals/2/reject", good, "{\"reason\":\"no\"}", err,
		      sizeof err) == 403);
	TT_CHECK_HAS(err, "this server is read-only");
	json_doc_free(d);
	S = keep;
	int stopped = served_stop(&ro);
	if (stopped != 0)
		fprintf(stderr, "read-only server: exit %d\n", stopped);
	TT_CHECK(stopped == 0);
}

static void test_token(void)
{
	served t;
	char tokfile[256], *tok = NULL, err[512], bearer[256];
	struct stat sb;
	snprintf(tokfile, sizeof tokfile, "%s/secret/serve.token", dir);
	mkdir(tokfile, 0700); /* a directory named like the file: refused */
	const char *extra[] = {"--token-file", tokfile, NULL};
	int status = 0;
	TT_CHECK(served_start(&t, ws, NULL, extra, &status) < 0);
	TT_CHECK(status == 1);
	rmdir(tokfile);
	*strrchr(tokfile, '/') = '\0';
	mkdir(tokfile, 0700);
	strcat(tokfile, "/serve.token");
	TT_REQUIRE(served_start(&t, ws, NULL, extra, NULL) == 0);
	TT_CHECK_HAS(t.banner, tokfile);
	TT_REQUIRE(stat(tokfile, &sb) == 0);
	TT_CHECK((sb.st_mode & 0777) == 0600);
	TT_REQUIRE(fsu_read_file(&tok, NULL, tokfile, 4096) == 0);
	TT_CHECK(strlen(tok) == 64);
	served keep = S;
	S = t;
	resp r;
	TT_REQUIRE(http(&r, &S, "GET", "/api/runs", NULL, NULL) == 0);
	TT_CHECK(error_of(&r, err, sizeof err) == 401);
	TT_CHECK_HAS(err, "missing token: send 'Authorization: Bearer TOKEN'");
	TT_CHECK(strstr(r.body, tok) == NULL);
	resp_free(&r);
	const char *bad[] = {"Authorization: Bearer 0123456789abcdef0123", NULL};
	TT_REQUIRE(http(&r, &S, "GET", "/metrics", bad, NULL) == 0);
	TT_CHECK(error_of(&r, err, sizeof err) == 401);
	TT_CHECK_HAS(err, "wrong token");
	resp_free(&r);
	snprintf(bearer, sizeof bearer, "Authorization: Bearer %s", tok);
	const char *good[] = {bearer, NULL};
	TT_REQUIRE(http(&r, &S, "GET", "/api/runs", good, NULL) == 0);
	TT_CHECK(r.status == 200);
	resp_free(&r);
	TT_REQUIRE(http(&r, &S, "GET", "/", NULL, NULL) == 0);
	TT_CHECK(r.status == 200); /* the page itself holds no data */
	resp_free(&r);
	S = keep;
	TT_CHECK(served_stop(&t) == 0);
	/* a token file others can read is refused */
	chmod(tokfile, 0644);
	TT_CHECK(served_start(&t, ws, NULL, extra, &status) < 0);
	TT_CHECK(status == 1);
	TT_CHECK_HAS(t.banner, "is readable by others (mode 644): chmod 600");
	free(tok);
}

static void test_non_loopback_needs_token(void)
{
	served t;
	char path[256];
	int status = 0;
	TT_REQUIRE(served_start(&t, ws, "0.0.0.0:0", NULL, &status) == 0);
	snprintf(path, sizeof path, "%s/serve.token", ws);
	TT_CHECK_HAS(t.banner, path);
	TT_CHECK(fsu_exists(path));
	served keep = S;
	S = t;
	check_get_error("/api/session", 401, "missing token");
	S = keep;
	TT_CHECK(served_stop(&t) == 0);
	TT_CHECK(served_start(&t, ws, "nonsense", NULL, &status) < 0);
	TT_CHECK(status == 1);
	TT_CHECK_HAS(t.banner, "listen address 'nonsense': expected HOST:PORT");
	char busy[64];
	snprintf(busy, sizeof busy, "127.0.0.1:%d", S.port);
	TT_CHECK(served_start(&t, ws, busy, NULL, &status) < 0);
	TT_CHECK_HAS(t.banner, "Address already in use");
}

/* ---- main --------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *sb, int f, struct FTW *w)
{
	(void)sb, (void)f, (void)w;
	return remove(p);
}

int main(void)
{
	const char *bin = getenv("TEND_BIN");
	if (!bin) {
		fprintf(stderr, "TEND_BIN is not set\n");
		return 1;
	}
	strcpy(dir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(ws, sizeof ws, "%s/ws", dir);
	char *init[] = {(char *)bin, "init", ws, NULL};
	git_libgit2_init();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int ok = run_quiet(init) == 0 && fill_workspace(ws, 0) == 0;
	const char *extra[] = {"--writable", NULL};
	if (!ok || served_start(&S, ws, NULL, extra, NULL) < 0) {
		fprintf(stderr, "could not start the server: %s\n", S.banner);
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		return 1;
	}
	TT_RUN(test_ui_is_embedded);
	TT_RUN(test_session);
	TT_RUN(test_runs);
	TT_RUN(test_run);
	TT_RUN(test_series_downsampled_with_marks);
	TT_RUN(test_series_bad_queries);
	TT_RUN(test_moe_heatmap);
	TT_RUN(test_incidents);
	TT_RUN(test_proposals);
	TT_RUN(test_audit);
	TT_RUN(test_prometheus);
	TT_RUN(test_live_run_grows);
	TT_RUN(test_refused_writes_change_nothing);
	TT_RUN(test_approve_promotes);
	TT_RUN(test_read_only_server);
	TT_RUN(test_token);
	TT_RUN(test_non_loopback_needs_token);
	int stopped = served_stop(&S);
	if (stopped != 0)
		fprintf(stderr, "the server exited %d on SIGTERM\n", stopped);
	curl_global_cleanup();
	git_libgit2_shutdown();
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return stopped == 0 ? TT_DONE() : 1;
}
