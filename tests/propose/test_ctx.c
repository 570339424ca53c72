/* test_ctx.c - the proposal context from a real store and a real scaffold
 * repository: the incident, the metric window around the onset, the log
 * tail with every kind of secret redacted (and the configured key caught
 * by value), the files at main, the history, memory of past proposals of
 * the same kind with their verdicts; prompt rendering; prop_redact. */
#include "pt.h"

#include "json.h"

static pt_fx fx;

static const json_val *path(const json_val *v, const char *a, const char *b, const char *c)
{
	v = json_get(v, a);
	if (b)
		v = json_get(v, b);
	if (c)
		v = json_get(v, c);
	return v;
}

static void test_json_shape(void)
{
	prop_ctx *c = NULL;
	TT_REQUIRE(prop_ctx_build(&c, fx.st, fx.repo, fx.inc, NULL) == 0);
	char *s = pt_ctx_json(c);
	json_doc *doc = NULL;
	TT_REQUIRE(json_parse(&doc, s, strlen(s), NULL) == 0);
	const json_val *r = json_root(doc);
	TT_CHECK_STR(json_key_at(r, 0, NULL), "incident");
	TT_CHECK(json_len(r) == 7);
	TT_CHECK_STR(json_str(path(r, "incident", "kind", NULL), NULL), "loss_spike");
	TT_CHECK(json_num(path(r, "incident", "onset_step", NULL)) == 150);
	TT_CHECK(json_num(path(r, "evidence", "baseline", NULL)) == 2.86);
	TT_CHECK_STR(prop_ctx_kind(c), "loss_spike");
	/* metrics: the 16 values before the onset, the 16 from it */
	const json_val *loss = path(r, "metrics", "series", "loss");
	const json_val *before = json_get(loss, "before"), *after = json_get(loss, "after");
	TT_CHECK(json_len(before) == 16 && json_len(after) == 16);
	TT_CHECK(json_num(json_at(json_at(before, 15), 0)) == 149);
	TT_CHECK(json_num(json_at(json_at(before, 0), 0)) == 134);
	TT_CHECK(json_num(json_at(json_at(after, 0), 0)) == 150);
	TT_CHECK(json_num(json_at(json_at(after, 0), 1)) == 9.0);
	TT_CHECK(json_num(json_get(loss, "n")) == 200);
	TT_CHECK(json_num(json_get(loss, "max")) == 9.0);
	TT_CHECK(json_num(json_get(loss, "min")) == 3.0 - 0.001 * 199);
	TT_CHECK(json_num(json_get(path(r, "metrics", "series", "grad_norm"), "median")) == 1.0);
	TT_CHECK(json_type(path(r, "metrics", "series", "tokens_per_s")) == JSON_NULL);
	TT_CHECK(json_get(path(r, "metrics", "series", NULL), "tokens_per_s") != NULL);
	/* files at main, full text */
	size_t len;
	char fpath[600];
	snprintf(fpath, sizeof fpath, "%s/scaffold.lua", pt_lua_dir());
	char *want = pt_read(fpath, &len);
	TT_CHECK_STR(json_str(path(r, "files", "scaffold.lua", NULL), NULL), want);
	free(want);
	TT_CHECK(json_type(path(r, "files", "playbook.lua", NULL)) == JSON_STR);
	TT_CHECK(json_type(path(r, "files", "prompts/system.md", NULL)) == JSON_STR);
	/* history: the initial import with its trailers */
	const json_val *h = json_at(json_get(r, "history"), 0);
	TT_CHECK(json_len(json_get(r, "history")) == 1);
	TT_CHECK_STR(json_str(json_get(h, "summary"), NULL), "scaffold: initial import");
	TT_CHECK(json_type(path(h, "trailers", "Seed-SHA256", NULL)) == JSON_STR);
	TT_CHECK(json_len(json_get(r, "memory")) == 0);
	json_doc_free(doc);
	free(s);
	prop_ctx_free(c);
}

static void test_logs_tail_redacted(void)
{
	prop_ctx *c = NULL;
	TT_REQUIRE(prop_ctx_build(&c, fx.st, fx.repo, fx.inc, NULL) == 0);
	char *s = pt_ctx_json(c);
	const char *logs = prop_ctx_section(c, "logs");
	const char *gone[] = {
		"early line 13\n", "sk-proj-abcdef", "abcdefghijklmnop123456", "AKIAIOSFODNN7EXAMPLE",
		"hunter2xyz", "0123456789abcdef0123456789abcdef", "s3cretpw", "BEGIN RSA",
		PT_KEY, "ghp_abc", "an event line",
	};
	for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
		if (strstr(s, gone[i]) || strstr(logs, gone[i])) {
			fprintf(stderr, "  context still holds \"%s\"\n", gone[i]);
			tt_case_failed = 1;
		}
	}
	TT_CHECK_HAS(logs, "stderr | export OPENAI_API_KEY=[REDACTED]\n");
	TT_CHECK_HAS(logs, "stderr | curl -H 'Authorization: Bearer [REDACTED]' https://x\n");
	TT_CHECK_HAS(logs, "stderr | aws key [REDACTED] in use\n");
	TT_CHECK_HAS(logs, "stderr | db password: [REDACTED]\n");
	TT_CHECK_HAS(logs, "stderr | login with token [REDACTED]\n");
	TT_CHECK_HAS(logs, "stderr | fetching https://[REDACTED]@db.example.com/data\n");
	TT_CHECK_HAS(logs, "stderr | [REDACTED]\n");
	TT_CHECK_HAS(logs, "stderr | echo [REDACTED] done\n");
	TT_CHECK_HAS(logs, "stdout | step 184 loss 3.1 tokens_per_s=48000\n");
	TT_CHECK_HAS(logs, "stdout | early line 14\n");
	/* the tail is 50 stdout/stderr lines: 9 secrets + 35 steps + 6 early */
	size_t n = 0;
	for (const char *p = logs; (p = strchr(p, '\n')); p++)
		n++;
	TT_CHECK(n == 50);
	TT_CHECK(strstr(s, PT_KEY_ENV) == NULL);
	free(s);
	prop_ctx_free(c);
	/* a shorter tail on request */
	prop_ctx_opts o = {.log_lines = 3, .metric_values = 2};
	TT_REQUIRE(prop_ctx_build(&c, fx.st, fx.repo, fx.inc, &o) == 0);
	TT_CHECK_STR(prop_ctx_section(c, "logs"),
		     "stdout | step 182 loss 3.1 tokens_per_s=48000\n"
		     "stdout | step 183 loss 3.1 tokens_per_s=48000\n"
		     "stdout | step 184 loss 3.1 tokens_per_s=48000\n");
	TT_CHECK_HAS(prop_ctx_section(c, "metrics"), "\"before\":[[148,2.852],[149,2.851]]");
	prop_ctx_free(c);
}

static void test_memory(void)
{
	/* an earlier incident of the same kind with a failed proposal, and one
	 * of another kind that must not show */
	int64_t old = pt_incident(&fx, "loss_spike", "loss_spike:old");
	int64_t other = pt_incident(&fx, "divergence", "divergence");
	int64_t p1, p2, e1;
	store_proposal p = {.incident_id = old, .proposer = "rule", .model = "playbook.lua@x",
			    .state = "rejected", .diagnosis = "clip too loose", .confidence = 0.6,
			    .diff = "--- a/scaffold.lua\n+++ b/scaffold.lua\n",
			    .reject_reason = "gates: val_loss worse"};
	TT_REQUIRE(store_proposal_insert(fx.st, &p1, &p) == 0);
	store_evaluation e = {.proposal_id = p1, .stage = "short", .state = "pending"};
	TT_REQUIRE(store_evaluation_insert(fx.st, &e1, &e) == 0);
	TT_REQUIRE(store_evaluation_finish(fx.st, e1, "done", "fail", "val_loss +0.03", "{}",
					   "abc", 5000) == 0);
	p.incident_id = other;
	p.diagnosis = "other kind";
	TT_REQUIRE(store_proposal_insert(fx.st, &p2, &p) == 0);
	prop_ctx *c = NULL;
	TT_REQUIRE(prop_ctx_build(&c, fx.st, fx.repo, fx.inc, NULL) == 0);
	const char *m = prop_ctx_section(c, "memory");
	json_doc *doc = NULL;
	TT_REQUIRE(json_parse(&doc, m, strlen(m), NULL) == 0);
	const json_val *r = json_root(doc);
	TT_CHECK(json_len(r) == 1);
	const json_val *x = json_at(r, 0);
	TT_CHECK(json_num(json_get(x, "incident_id")) == old);
	TT_CHECK_STR(json_str(json_get(x, "state"), NULL), "rejected");
	TT_CHECK_STR(json_str(json_get(x, "diagnosis"), NULL), "clip too loose");
	TT_CHECK_STR(json_str(json_get(x, "reject_reason"), NULL), "gates: val_loss worse");
	const json_val *ev = json_at(json_get(x, "evaluations"), 0);
	TT_CHECK_STR(json_str(json_get(ev, "verdict"), NULL), "fail");
	TT_CHECK_STR(json_str(json_get(ev, "reason"), NULL), "val_loss +0.03");
	TT_CHECK(strstr(m, "other kind") == NULL);
	json_doc_free(doc);
	prop_ctx_free(c);
}

static void test_moe_series_and_errors(void)
{
	store_metric_put(fx.st, fx.run, 1, 150, "moe.1.max_over_mean", 5.5, 1);
	int64_t id = pt_incident(&fx, "moe_imbalance", "moe_imbalance:layer1");
	prop_ctx *c = NULL;
	TT_REQUIRE(prop_ctx_build(&c, fx.st, fx.repo, id, NULL) == 0);
	TT_CHECK_HAS(prop_ctx_section(c, "metrics"), "\"moe.1.max_over_mean\":{\"n\":1");
	TT_CHECK_HAS(prop_ctx_section(c, "metrics"), "\"moe.1.entropy\":null");
	TT_CHECK(prop_ctx_section(c, "nope") == NULL);
	TT_CHECK(prop_ctx_section(c, "schema") == prop_schema_text());
	prop_ctx_free(c);
	c = (prop_ctx *)1;
	TT_CHECK_RC(prop_ctx_build(&c, fx.st, fx.repo, 999, NULL), TEND_ENOTFOUND);
	TT_CHECK(c == NULL);
	prop_ctx_opts o = {.rev = "no-such-branch"};
	TT_CHECK_RC(prop_ctx_build(&c, fx.st, fx.repo, fx.inc, &o), TEND_ENOTFOUND);
	TT_CHECK_STR(tend_error_last(), "context for incident 1: scaffold revision "
		     "'no-such-branch' not found");
	/* only the allowed files are shown */
	const char *only[] = {"policies.lua"};
	prop_ctx_opts o2 = {.allowed = only, .n_allowed = 1};
	TT_REQUIRE(prop_ctx_build(&c, fx.st, fx.repo, fx.inc, &o2) == 0);
	TT_CHECK_HAS(prop_ctx_section(c, "files"), "=== file: policies.lua (");
	TT_CHECK(strstr(prop_ctx_section(c, "files"), "scaffold.lua") == NULL);
	prop_ctx_free(c);
	prop_ctx_free(NULL);
}

static void test_render(void)
{
	prop_ctx *c = NULL;
	char *out = NULL;
	TT_REQUIRE(prop_ctx_build(&c, fx.st, fx.repo, fx.inc, NULL) == 0);
	const char *t = "kind: {{incident}}\n{{ not one }} {{x} {{schema}}";
	TT_CHECK_RC(prop_render(&out, "t.md", t, strlen(t), c), 0);
	TT_CHECK_HAS(out, "kind: {\"id\":1,\"run_id\":1,\"kind\":\"loss_spike\"");
	TT_CHECK_HAS(out, "\n{{ not one }} {{x} Answer with exactly one JSON object");
	free(out);
	t = "a\nb\n{{files}}{{history}}\n{{bogus}}";
	out = (char *)"unchanged";
	TT_CHECK_RC(prop_render(&out, "t.md", t, strlen(t), c), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "t.md:4: unknown placeholder {{bogus}} (known: incident, "
		     "evidence, metrics, logs, files, history, memory, schema)");
	/* the shipped templates use only known placeholders */
	const char *names[] = {"prompts/system.md", "prompts/incident.md"};
	for (int i = 0; i < 2; i++) {
		char p[600];
		size_t len;
		snprintf(p, sizeof p, "%s/%s", pt_lua_dir(), names[i]);
		char *tmpl = pt_read(p, &len);
		TT_REQUIRE(tmpl != NULL);
		TT_CHECK_RC(prop_render(&out, names[i], tmpl, len, c), 0);
		/* (the files shown include the templates themselves) */
		TT_CHECK(i == 1 || strstr(out, "{{") == NULL);
		TT_CHECK_HAS(out, "\"expected_effect\"");
		if (i == 1) {
			TT_CHECK_HAS(out, "=== file: scaffold.lua (");
			TT_CHECK_HAS(out, "scaffold: initial import");
			TT_CHECK_HAS(out, "stderr | db password: [REDACTED]");
		}
		free(out);
		free(tmpl);
	}
	prop_ctx_free(c);
}

static void redacts(const char *in, const char *want)
{
	char *out = NULL;
	TT_CHECK_RC(prop_redact(&out, in, strlen(in)), 0);
	if (!out || strcmp(out, want) != 0) {
		fprintf(stderr, "  redact \"%s\"\n  got  \"%s\"\n  want \"%s\"\n", in, out, want);
		tt_case_failed = 1;
	}
	free(out);
}

static void test_redact_rules(void)
{
	redacts("key sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "key [REDACTED]");
	redacts("x=sk-abcdefghijklmnop1234", "x=[REDACTED]");
	redacts("sk-short", "sk-short");
	redacts("{\"api_key\": \"abc123\", \"n\": 5}", "{\"api_key\": \"[REDACTED]\", \"n\": 5}");
	redacts("HF_TOKEN=hf_abcdefghijklmnopqrstu", "HF_TOKEN=[REDACTED]");
	redacts("x-api-key: abcdef", "x-api-key: [REDACTED]");
	redacts("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [REDACTED]");
	redacts("auth=Bearer abcdefghijkl", "auth=Bearer [REDACTED]");
	redacts("bearer abcdefghijkl", "bearer [REDACTED]");
	redacts("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"AWS_SECRET_ACCESS_KEY=[REDACTED]");
	redacts("client_secret: 'abc'", "client_secret: '[REDACTED]'");
	redacts("xoxb-1234567890-abcdefghij slack", "[REDACTED] slack");
	redacts("url postgres://u:p@h/db ok", "url postgres://[REDACTED]@h/db ok");
	/* ordinary training output stays as it is */
	redacts("step 10 loss 3.2 tokens_per_s=48000 lr=3e-4 grad_norm: 0.8",
		"step 10 loss 3.2 tokens_per_s=48000 lr=3e-4 grad_norm: 0.8");
	redacts("sha256 4f2a9c1e0b1d2e3f4a5b6c7d8e9f00112233445566778899aabbccddeeff0011",
		"sha256 4f2a9c1e0b1d2e3f4a5b6c7d8e9f00112233445566778899aabbccddeeff0011");
	redacts("the key idea", "the key idea");
	redacts("http://host:8080/path", "http://host:8080/path");
	redacts("two\nlines token=abc\n", "two\nlines token=[REDACTED]\n");
	redacts("", "");
}

int main(void)
{
	pt_setup();
	if (pt_open(&fx, "loss_spike") < 0)
		return 1;
	TT_RUN(test_json_shape);
	TT_RUN(test_logs_tail_redacted);
	TT_RUN(test_memory);
	TT_RUN(test_moe_series_and_errors);
	TT_RUN(test_render);
	TT_RUN(test_redact_rules);
	pt_close(&fx);
	pt_teardown();
	return TT_DONE();
}
