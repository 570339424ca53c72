/* test_model.c - the OpenAI and Anthropic proposers against the real
 * loopback server (tests/support/httpd.c): good answers in both shapes (one
 * fenced), the request as sent (headers, body, hashes), bad answers with
 * their messages, a 50 MB body refused, a trickle cut at the deadline, 429
 * then success, 500s exhausting the retries, the budget, and the API key:
 * taken from the named variable, sent in the right header, and never in a
 * result, an error, a prompt or the context. */
#include "pt.h"

#include "httpd.h"
#include "sha256.h"

#include <time.h>

static pt_fx fx;
static prop_ctx *ctx;
static test_httpd srv;
static char sdir[300];

#define PROPOSAL(conf) "{\"diagnosis\":\"learning rate too high\",\"confidence\":" conf "," \
	"\"diff\":\"--- a/scaffold.lua\\n+++ b/scaffold.lua\\n@@ -12 +12 @@\\n-  lr = 3e-4,\\n" \
	"+  lr = 1.5e-4,\\n\",\"rationale\":\"halve the peak\",\"expected_effect\":\"no spike\"}"

/* Writes sdir/name with an OpenAI envelope around content. */
static void openai_file(const char *name, const char *content, const char *finish)
{
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "id");
	jbuf_str(&b, "chatcmpl-1");
	jbuf_key(&b, "model");
	jbuf_str(&b, "gpt-test-0613");
	jbuf_key(&b, "choices");
	jbuf_arr_open(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "index");
	jbuf_int(&b, 0);
	jbuf_key(&b, "message");
	jbuf_obj_open(&b);
	jbuf_key(&b, "role");
	jbuf_str(&b, "assistant");
	jbuf_key(&b, "content");
	jbuf_str(&b, content);
	jbuf_obj_close(&b);
	jbuf_key(&b, "finish_reason");
	jbuf_str(&b, finish);
	jbuf_obj_close(&b);
	jbuf_arr_close(&b);
	jbuf_key(&b, "usage");
	const char *usage = "{\"prompt_tokens\":1234,\"completion_tokens\":56,\"total_tokens\":1290}";
	jbuf_raw(&b, usage, strlen(usage));
	jbuf_obj_close(&b);
	pt_write(sdir, name, jbuf_cstr(&b, NULL));
	jbuf_free(&b);
}

static void anthropic_file(const char *name, const char *content, const char *stop)
{
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "id");
	jbuf_str(&b, "msg_1");
	jbuf_key(&b, "type");
	jbuf_str(&b, "message");
	jbuf_key(&b, "content");
	jbuf_arr_open(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "type");
	jbuf_str(&b, "text");
	jbuf_key(&b, "text");
	jbuf_str(&b, content);
	jbuf_obj_close(&b);
	jbuf_arr_close(&b);
	jbuf_key(&b, "stop_reason");
	jbuf_str(&b, stop);
	jbuf_key(&b, "usage");
	const char *usage = "{\"input_tokens\":1000,\"output_tokens\":50}";
	jbuf_raw(&b, usage, strlen(usage));
	jbuf_obj_close(&b);
	pt_write(sdir, name, jbuf_cstr(&b, NULL));
	jbuf_free(&b);
}

static cfg_proposer conf(int kind, const char *path)
{
	static char ep[8][256];
	static int k;
	char *e = ep[k++ % 8];
	snprintf(e, 256, "http://127.0.0.1:%d%s", srv.port, path);
	cfg_proposer c = {
		.kind = kind, .endpoint = e, .model = kind == CFG_PROPOSER_OPENAI ? "gpt-test" : "claude-test",
		.temperature = 0.2, .timeout_s = 5, .deadline_s = 10, .api_key_env = PT_KEY_ENV,
		.max_requests = 8, .max_tokens = 4096, .max_response_bytes = 1 << 20,
	};
	return c;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *server_file(const char *name)
{
	char p[400];
	snprintf(p, sizeof p, "%s/%s", sdir, name);
	return pt_read(p, NULL);
}

/* The body of the last request logged (a copy), and its path. */
static char *last_request(char *path, size_t cap)
{
	char *log = server_file("requests.log");
	if (!log || !*log) {
		free(log);
		return NULL;
	}
	size_t n = strlen(log);
	log[n - 1] = '\0';
	char *line = strrchr(log, '\n');
	line = line ? line + 1 : log;
	sscanf(line, "%*s %255s", path);
	(void)cap;
	char *body = strdup(strchr(line, '\t') + 1);
	free(log);
	return body;
}

static size_t count_requests(void)
{
	char *log = server_file("requests.log");
	size_t n = 0;
	for (char *p = log; p && (p = strchr(p, '\n')); p++)
		n++;
	free(log);
	return n;
}

static bool starts(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static void no_key_in(const prop_result *r)
{
	const char *s[] = {r->diagnosis, r->diff, r->rationale, r->expected_effect, r->model,
			   r->proposer, tend_error_last()};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		TT_CHECK(!s[i] || !strstr(s[i], PT_KEY));
}

static int ask(prop_result *r, const cfg_proposer *c, prop_budget *b)
{
	int rc = prop_ask(r, c, ctx, fx.scaffold, b);
	no_key_in(r);
	return rc;
}

static void test_openai_good(void)
{
	prop_result r;
	prop_budget b;
	cfg_proposer c = conf(CFG_PROPOSER_OPENAI, "/hdr/oa/");
	openai_file("oa.1", PROPOSAL("0.7"), "stop");
	prop_budget_init(&b, &c);
	TT_CHECK(b.max_requests == 8 && b.requests == 0 && b.max_tokens == 0);
	TT_REQUIRE(ask(&r, &c, &b) == 0);
	TT_CHECK_STR(r.diagnosis, "learning rate too high");
	TT_CHECK(r.confidence == 0.7);
	TT_CHECK_HAS(r.diff, "+  lr = 1.5e-4,\n");
	TT_CHECK_STR(r.proposer, "openai");
	TT_CHECK_STR(r.model, "gpt-test");
	TT_CHECK(r.tokens_in == 1234 && r.tokens_out == 56);
	TT_CHECK(b.requests == 1 && b.tokens == 1290);
	/* the hashes are of the exact bytes sent and received */
	char path[256] = "", want[65];
	char *body = last_request(path, sizeof path);
	TT_REQUIRE(body != NULL);
	TT_CHECK_STR(path, "/hdr/oa/chat/completions");
	sha256_hex(body, strlen(body), want);
	TT_CHECK_STR(r.prompt_sha256, want);
	char *resp = server_file("oa.1");
	sha256_hex(resp, strlen(resp), want);
	TT_CHECK_STR(r.response_sha256, want);
	TT_CHECK(starts(body, "{\"model\":\"gpt-test\",\"temperature\":0.2,\"max_tokens\":4096,"
			 "\"messages\":[{\"role\":\"system\",\"content\":\"You are the on-call"));
	TT_CHECK_HAS(body, "{\"role\":\"user\",\"content\":\"# Incident\\n\\n{\\\"id\\\":1,");
	TT_CHECK_HAS(body, "=== file: scaffold.lua (");
	TT_CHECK_HAS(body, "stderr | db password: [REDACTED]");
	TT_CHECK_HAS(body, "\"response_format\":{\"type\":\"json_object\"}}");
	TT_CHECK(strstr(body, PT_KEY) == NULL);
	/* the key went in the header, and only there */
	char *hdr = server_file("headers.log");
	TT_CHECK_HAS(hdr, "POST /hdr/oa/chat/completions HTTP/1.1\r\n");
	TT_CHECK_HAS(hdr, "\r\nAuthorization: Bearer " PT_KEY "\r\n");
	TT_CHECK_HAS(hdr, "\r\nContent-Type: application/json\r\n");
	free(hdr);
	free(resp);
	free(body);
	prop_result_free(&r);
}

static void test_anthropic_good(void)
{
	prop_result r;
	cfg_proposer c = conf(CFG_PROPOSER_ANTHROPIC, "/hdr/an");
	anthropic_file("an.1", "```json\n" PROPOSAL("0.4") "\n```", "end_turn");
	TT_REQUIRE(ask(&r, &c, NULL) == 0);
	TT_CHECK_STR(r.diagnosis, "learning rate too high");
	TT_CHECK(r.confidence == 0.4);
	TT_CHECK_STR(r.proposer, "anthropic");
	TT_CHECK_STR(r.model, "claude-test");
	TT_CHECK(r.tokens_in == 1000 && r.tokens_out == 50);
	char path[256] = "";
	char *body = last_request(path, sizeof path);
	TT_REQUIRE(body != NULL);
	TT_CHECK_STR(path, "/hdr/an/v1/messages");
	TT_CHECK(starts(body, "{\"model\":\"claude-test\",\"max_tokens\":4096,\"temperature\":0.2,"
			 "\"system\":\"You are the on-call"));
	TT_CHECK_HAS(body, "\"messages\":[{\"role\":\"user\",\"content\":\"# Incident");
	TT_CHECK(strstr(body, "response_format") == NULL);
	char *hdr = server_file("headers.log");
	TT_CHECK_HAS(hdr, "POST /hdr/an/v1/messages HTTP/1.1\r\n");
	TT_CHECK_HAS(hdr, "\r\nx-api-key: " PT_KEY "\r\n");
	TT_CHECK_HAS(hdr, "\r\nanthropic-version: 2023-06-01\r\n");
	TT_CHECK(strstr(strstr(hdr, "/hdr/an/"), "Authorization") == NULL);
	free(hdr);
	free(body);
	prop_result_free(&r);
}

static void bad(int kind, const char *file, int code, const char *msg)
{
	prop_result r;
	char path[300];
	snprintf(path, sizeof path, "/file/%s", file);
	cfg_proposer c = conf(kind, path);
	int rc = ask(&r, &c, NULL);
	if (rc != code || strcmp(tend_error_last(), msg) != 0) {
		fprintf(stderr, "  %s: got %d \"%s\"\n  want %d \"%s\"\n", file, rc,
			tend_error_last(), code, msg);
		tt_case_failed = 1;
	}
	TT_CHECK(!r.diagnosis && !r.diff && !r.rationale && !r.expected_effect);
}

static void test_bad_answers(void)
{
	openai_file("malformed", "{diagnosis: 'lr'}", "stop");
	bad(CFG_PROPOSER_OPENAI, "malformed", TEND_EINVAL,
	    "openai: response: not valid JSON: 1:2: expected '\"' to start an object key");
	openai_file("missing", "{\"diagnosis\":\"d\",\"confidence\":0.5}", "stop");
	bad(CFG_PROPOSER_OPENAI, "missing", TEND_EINVAL, "openai: response: missing key \"diff\" "
	    "(expected diagnosis, confidence, diff, rationale, expected_effect)");
	anthropic_file("extra", "{\"diagnosis\":\"d\",\"confidence\":0.5,\"diff\":\"--- a\\n+++ b\\n\","
		       "\"rationale\":\"\",\"expected_effect\":\"\",\"commands\":\"rm -rf /\"}",
		       "end_turn");
	bad(CFG_PROPOSER_ANTHROPIC, "extra", TEND_EINVAL, "anthropic: response: unknown key "
	    "\"commands\" (expected diagnosis, confidence, diff, rationale, expected_effect)");
	openai_file("conf2", PROPOSAL("2"), "stop");
	bad(CFG_PROPOSER_OPENAI, "conf2", TEND_EINVAL,
	    "openai: response: confidence: 2 out of range [0, 1]");
	openai_file("prose", "Sure! Here is my proposal: " PROPOSAL("0.5"), "stop");
	bad(CFG_PROPOSER_OPENAI, "prose", TEND_EINVAL,
	    "openai: response: not valid JSON: 1:1: expected a value");
	openai_file("length", "{\"diagnosis\":\"the lear", "length");
	bad(CFG_PROPOSER_OPENAI, "length", TEND_EINVAL, "openai: the model stopped at max_tokens "
	    "(finish_reason \"length\") before finishing its answer");
	anthropic_file("maxtok", "{\"diagnosis\":", "max_tokens");
	bad(CFG_PROPOSER_ANTHROPIC, "maxtok", TEND_EINVAL, "anthropic: the model stopped at "
	    "max_tokens (stop_reason \"max_tokens\") before finishing its answer");
	pt_write(sdir, "nochoice", "{\"choices\":[]}");
	bad(CFG_PROPOSER_OPENAI, "nochoice", TEND_EINVAL,
	    "openai: the response has no choices[0].message.content string");
	pt_write(sdir, "notext", "{\"content\":[{\"type\":\"tool_use\",\"id\":\"x\"}]}");
	bad(CFG_PROPOSER_ANTHROPIC, "notext", TEND_EINVAL,
	    "anthropic: the response has no content block of type text");
	pt_write(sdir, "html", "<html>502 Bad Gateway</html>");
	bad(CFG_PROPOSER_OPENAI, "html", TEND_EINVAL,
	    "openai: the response body is not JSON: 1:1: expected a value");
	/* an error that echoes the key: the message keeps the error, not the key */
	pt_write(sdir, "denied", "{\"error\":{\"message\":\"Incorrect API key provided: " PT_KEY
		 "\",\"type\":\"invalid_request_error\"}}");
	pt_write(sdir, "denied.status", "401");
	bad(CFG_PROPOSER_OPENAI, "denied", TEND_EIO, "openai: HTTP 401: {\"error\":{\"message\":"
	    "\"Incorrect API key provided: [REDACTED]\",\"type\":\"invalid_request_error\"}}");
	pt_write(sdir, "apierr", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
		 "\"message\":\"Overloaded, key " PT_KEY "\"}}");
	bad(CFG_PROPOSER_ANTHROPIC, "apierr", TEND_EIO,
	    "anthropic: API error: Overloaded, key [REDACTED]");
}

static void test_big_body_refused(void)
{
	prop_result r;
	cfg_proposer c = conf(CFG_PROPOSER_OPENAI, "/big");
	TT_CHECK_RC(ask(&r, &c, NULL), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "openai: http://127.0.0.1:");
	TT_CHECK_HAS(tend_error_last(), "/big/chat/completions: response over 1048576 bytes refused");
}

static void test_trickle_deadline(void)
{
	prop_result r;
	cfg_proposer c = conf(CFG_PROPOSER_ANTHROPIC, "/trickle");
	c.deadline_s = 1;
	c.timeout_s = 1;
	double t0 = now();
	TT_CHECK_RC(ask(&r, &c, NULL), TEND_ETIMEOUT);
	double dt = now() - t0;
	TT_CHECK(dt >= 0.9 && dt < 2.5);
	TT_CHECK_HAS(tend_error_last(), "anthropic: http://127.0.0.1:");
	TT_CHECK_HAS(tend_error_last(), "deadline of 1000 ms passed");
}

static void test_429_then_success(void)
{
	prop_result r;
	prop_budget b = {.max_requests = 8};
	cfg_proposer c = conf(CFG_PROPOSER_OPENAI, "/429");
	openai_file("ok.body", PROPOSAL("0.5"), "stop");
	double t0 = now();
	TT_REQUIRE(ask(&r, &c, &b) == 0);
	TT_CHECK(now() - t0 >= 1.9); /* Retry-After: 1, twice */
	TT_CHECK(b.requests == 3);
	TT_CHECK(r.confidence == 0.5);
	prop_result_free(&r);
}

static void test_500_exhausts_retries(void)
{
	prop_result r;
	prop_budget b = {.max_requests = 8};
	cfg_proposer c = conf(CFG_PROPOSER_OPENAI, "/500");
	size_t before = count_requests();
	TT_CHECK_RC(ask(&r, &c, &b), TEND_EIO);
	TT_CHECK_HAS(tend_error_last(), "/500/chat/completions: HTTP 500 (after 3 attempts)");
	TT_CHECK(b.requests == 3);
	TT_CHECK(count_requests() == before + 3);
	/* the budget caps the attempts too */
	b = (prop_budget){.max_requests = 4, .requests = 3};
	TT_CHECK_RC(ask(&r, &c, &b), TEND_EIO);
	TT_CHECK_HAS(tend_error_last(), "HTTP 500 (after 1 attempts)");
	TT_CHECK(b.requests == 4);
}

static void test_budget(void)
{
	prop_result r;
	cfg_proposer c = conf(CFG_PROPOSER_OPENAI, "/file/oa.1");
	size_t before = count_requests();
	prop_budget b = {.max_requests = 2, .requests = 2};
	TT_CHECK_RC(ask(&r, &c, &b), TEND_EBUSY);
	TT_CHECK_STR(tend_error_last(), "openai: budget spent: 2 of 2 requests used");
	b = (prop_budget){.max_tokens = 1290, .tokens = 1290};
	TT_CHECK_RC(ask(&r, &c, &b), TEND_EBUSY);
	TT_CHECK_STR(tend_error_last(), "openai: budget spent: 1290 of 1290 tokens used");
	TT_CHECK(count_requests() == before); /* nothing was sent */
	/* what is left of the tokens caps what the request asks for */
	b = (prop_budget){.max_tokens = 2000, .tokens = 10};
	TT_REQUIRE(ask(&r, &c, &b) == 0);
	prop_result_free(&r);
	char path[256];
	char *body = last_request(path, sizeof path);
	TT_CHECK_HAS(body, "\"max_tokens\":1990,");
	free(body);
	TT_CHECK(b.tokens == 1300 && b.requests == 1);
	TT_CHECK_RC(ask(&r, &c, &b), 0);
	prop_result_free(&r);
	TT_CHECK_RC(ask(&r, &c, &b), TEND_EBUSY);
}

static void test_config_errors(void)
{
	prop_result r;
	cfg_proposer c = conf(CFG_PROPOSER_OPENAI, "/hdr/oa");
	size_t before = count_requests();
	c.api_key_env = "TEND_TEST_NO_SUCH_KEY";
	TT_CHECK_RC(ask(&r, &c, NULL), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "openai: the environment variable TEND_TEST_NO_SUCH_KEY "
		     "(proposer.api_key_env) is not set");
	c.api_key_env = PT_KEY_ENV;
	c.model = "";
	TT_CHECK_RC(ask(&r, &c, NULL), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "openai: proposer.model is empty: name the model to ask");
	c.model = "gpt-test";
	char dir[300];
	pt_fresh(dir, sizeof dir, "noprompts");
	mkdir(dir, 0755);
	TT_CHECK_RC(prop_ask(&r, &c, ctx, dir, NULL), TEND_ENOTFOUND);
	TT_CHECK_HAS(tend_error_last(), "prompt template prompts/system.md not found in ");
	pt_write(dir, "prompts/system.md", "{{schema}}");
	pt_write(dir, "prompts/incident.md", "line\n{{incidents}}\n");
	TT_CHECK_RC(prop_ask(&r, &c, ctx, dir, NULL), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "prompts/incident.md:2: unknown placeholder {{incidents}} "
		     "(known: incident, evidence, metrics, logs, files, history, memory, schema)");
	TT_CHECK(count_requests() == before);
	/* no key configured: no key header at all */
	c.api_key_env = "";
	TT_REQUIRE(ask(&r, &c, NULL) == 0);
	prop_result_free(&r);
	char *hdr = server_file("headers.log");
	char *last = hdr;
	for (char *p = hdr; (p = strstr(p, "POST ")); p++)
		last = p;
	TT_CHECK(strstr(last, "Authorization") == NULL);
	free(hdr);
	c.kind = 7;
	TT_CHECK_RC(prop_ask(&r, &c, ctx, fx.scaffold, NULL), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "proposer.kind 7 is not known");
}

/* A prompt carries the key only if something leaked it: scrubbed anyway. */
static void test_key_never_leaves(void)
{
	char *s = pt_ctx_json(ctx);
	TT_CHECK(strstr(s, PT_KEY) == NULL);
	TT_CHECK_HAS(prop_ctx_section(ctx, "logs"), "stderr | echo [REDACTED] done\n");
	free(s);
	char *log = server_file("requests.log");
	TT_REQUIRE(log != NULL);
	TT_CHECK(strstr(log, PT_KEY) == NULL);
	TT_CHECK(strstr(log, "[REDACTED]") != NULL);
	free(log);
	/* a template that tries to smuggle the key is scrubbed too */
	char dir[300];
	prop_result r;
	pt_fresh(dir, sizeof dir, "smuggle");
	mkdir(dir, 0755);
	pt_write(dir, "prompts/system.md", "key is " PT_KEY " ok");
	pt_write(dir, "prompts/incident.md", "{{incident}}");
	cfg_proposer c = conf(CFG_PROPOSER_OPENAI, "/file/oa.1");
	TT_REQUIRE(prop_ask(&r, &c, ctx, dir, NULL) == 0);
	prop_result_free(&r);
	char path[256];
	char *body = last_request(path, sizeof path);
	TT_CHECK_HAS(body, "\"content\":\"key is [REDACTED] ok\"");
	free(body);
}

int main(void)
{
	pt_setup();
	snprintf(sdir, sizeof sdir, "%s/srv", pt_tmp);
	mkdir(sdir, 0755);
	if (pt_open(&fx, "loss_spike") < 0 || test_httpd_start(&srv, sdir) < 0 ||
	    prop_ctx_build(&ctx, fx.st, fx.repo, fx.inc, NULL) < 0) {
		fprintf(stderr, "setup: %s\n", tend_error_last());
		return 1;
	}
	TT_RUN(test_openai_good);
	TT_RUN(test_anthropic_good);
	TT_RUN(test_bad_answers);
	TT_RUN(test_big_body_refused);
	TT_RUN(test_trickle_deadline);
	TT_RUN(test_429_then_success);
	TT_RUN(test_500_exhausts_retries);
	TT_RUN(test_budget);
	TT_RUN(test_config_errors);
	TT_RUN(test_key_never_leaves);
	test_httpd_stop(&srv);
	prop_ctx_free(ctx);
	pt_close(&fx);
	pt_teardown();
	return TT_DONE();
}
