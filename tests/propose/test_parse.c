/* test_parse.c - prop_parse_response: good answers (plain and fenced) and
 * every rejection, each with its exact message; and that a failed parse
 * leaves no strings behind. */
#include "propose.h"
#include "tend.h"
#include "tt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIFF "--- a/scaffold.lua\\n+++ b/scaffold.lua\\n@@ -1 +1 @@\\n-a\\n+b\\n"
#define GOOD "{\"diagnosis\":\"lr too high\",\"confidence\":0.7,\"diff\":\"" DIFF "\"," \
	"\"rationale\":\"halve it\",\"expected_effect\":\"no spikes\"}"

static int parse(prop_result *r, const char *text)
{
	memset(r, 0, sizeof *r);
	return prop_parse_response(r, text, strlen(text));
}

/* Checks that text is refused with exactly msg, and holds no strings. */
static void refused(const char *text, const char *msg)
{
	prop_result r;
	int rc = parse(&r, text);
	if (rc != TEND_EINVAL || strcmp(tend_error_last(), msg) != 0) {
		fprintf(stderr, "  for %.80s\n  got %d \"%s\"\n  want \"%s\"\n", text, rc,
			tend_error_last(), msg);
		tt_case_failed = 1;
	}
	TT_CHECK(!r.diagnosis && !r.diff && !r.rationale && !r.expected_effect);
	prop_result_free(&r);
}

static void test_good(void)
{
	prop_result r;
	TT_CHECK_RC(parse(&r, GOOD), 0);
	TT_CHECK_STR(r.diagnosis, "lr too high");
	TT_CHECK(r.confidence == 0.7);
	TT_CHECK_STR(r.diff, "--- a/scaffold.lua\n+++ b/scaffold.lua\n@@ -1 +1 @@\n-a\n+b\n");
	TT_CHECK_STR(r.rationale, "halve it");
	TT_CHECK_STR(r.expected_effect, "no spikes");
	prop_result_free(&r);
	TT_CHECK(r.diagnosis == NULL);
	prop_result_free(NULL);
}

static void test_fenced(void)
{
	prop_result r;
	TT_CHECK_RC(parse(&r, "```json\n" GOOD "\n```"), 0);
	TT_CHECK_STR(r.diagnosis, "lr too high");
	prop_result_free(&r);
	TT_CHECK_RC(parse(&r, "\n  ```json  \n" GOOD "\n```\n\n"), 0);
	prop_result_free(&r);
	/* git-style headers count as a diff too; empty strings are fine where allowed */
	TT_CHECK_RC(parse(&r, "{\"diagnosis\":\"d\",\"confidence\":0,\"diff\":"
			  "\"diff --git a/x.lua b/x.lua\\n\",\"rationale\":\"\","
			  "\"expected_effect\":\"\"}"), 0);
	TT_CHECK(r.confidence == 0);
	TT_CHECK_STR(r.rationale, "");
	prop_result_free(&r);
}

static void test_fences_refused(void)
{
	refused("```python\n" GOOD "\n```", "response: a code fence must be ```json");
	refused("```\n" GOOD "\n```", "response: a code fence must be ```json");
	refused("```json\n" GOOD, "response: the ```json fence is not closed by ``` on its own line");
	refused("```json\n" GOOD "```", "response: the ```json fence is not closed by ``` on its own line");
	refused("```json\n" GOOD "\n```\n```json\n" GOOD "\n```", "response: more than one code fence");
	refused("Here you go:\n```json\n" GOOD "\n```",
		"response: not valid JSON: 1:1: expected a value");
	refused("```json\n```", "response: empty");
}

static void test_syntax(void)
{
	refused("", "response: empty");
	refused("   \n", "response: empty");
	refused("{diagnosis: 1}", "response: not valid JSON: 1:2: expected '\"' to start an object key");
	refused(GOOD " trailing", "response: not valid JSON: 1:"
		"170: expected end of input after the value");
	refused("[1,2]", "response: expected a JSON object, got an array");
	refused("\"text\"", "response: expected a JSON object, got a string");
	refused("{\"diagnosis\":\"a\xff\"}", "response: not valid JSON: 1:16: invalid UTF-8 in string");
	refused("{\"diagnosis\":\"a\",\"diagnosis\":\"b\"}",
		"response: not valid JSON: 1:18: duplicate key \"diagnosis\"");
}

static void test_keys(void)
{
	refused("{\"diagnosis\":\"d\",\"confidence\":0.5,\"diff\":\"" DIFF "\",\"rationale\":\"r\"}",
		"response: missing key \"expected_effect\" "
		"(expected diagnosis, confidence, diff, rationale, expected_effect)");
	refused("{\"diagnosis\":\"d\",\"confidence\":0.5,\"diff\":\"" DIFF "\",\"rationale\":\"r\","
		"\"expected_effect\":\"e\",\"patch\":\"x\"}",
		"response: unknown key \"patch\" "
		"(expected diagnosis, confidence, diff, rationale, expected_effect)");
	refused("{}", "response: missing key \"diagnosis\" "
		"(expected diagnosis, confidence, diff, rationale, expected_effect)");
}

static char *make(const char *diag, const char *conf, const char *diff, const char *rat,
		  const char *eff)
{
	size_t n = strlen(diag) + strlen(diff) + strlen(rat) + strlen(eff) + 256;
	char *s = malloc(n);
	snprintf(s, n, "{\"diagnosis\":%s,\"confidence\":%s,\"diff\":%s,\"rationale\":%s,"
		 "\"expected_effect\":%s}", diag, conf, diff, rat, eff);
	return s;
}

static void refused_fields(const char *d, const char *c, const char *diff, const char *r,
			   const char *e, const char *msg)
{
	char *s = make(d, c, diff, r, e);
	refused(s, msg);
	free(s);
}

static void test_types_and_ranges(void)
{
	const char *D = "\"" DIFF "\"";
	refused_fields("5", "0.5", D, "\"r\"", "\"e\"",
		       "response: diagnosis: expected a string, got a number");
	refused_fields("\"d\"", "\"0.5\"", D, "\"r\"", "\"e\"",
		       "response: confidence: expected a number, got a string");
	refused_fields("\"d\"", "2", D, "\"r\"", "\"e\"", "response: confidence: 2 out of range [0, 1]");
	refused_fields("\"d\"", "-0.1", D, "\"r\"", "\"e\"",
		       "response: confidence: -0.1 out of range [0, 1]");
	refused_fields("\"d\"", "null", D, "\"r\"", "\"e\"",
		       "response: confidence: expected a number, got null");
	refused_fields("\"\"", "0.5", D, "\"r\"", "\"e\"", "response: diagnosis: empty");
	refused_fields("\"d\"", "0.5", "\"\"", "\"r\"", "\"e\"", "response: diff: empty");
	refused_fields("\"d\"", "0.5", "\"change lr to 1e-4\"", "\"r\"", "\"e\"",
		       "response: diff: not a unified diff (no ---/+++ or diff --git header)");
	refused_fields("\"d\"", "0.5", "[\"--- a\"]", "\"r\"", "\"e\"",
		       "response: diff: expected a string, got an array");
	refused_fields("\"d\"", "0.5", D, "{}", "\"e\"",
		       "response: rationale: expected a string, got an object");
	refused_fields("\"d\"", "0.5", D, "\"r\"", "true",
		       "response: expected_effect: expected a string, got a bool");
	refused_fields("\"a\\u0000b\"", "0.5", D, "\"r\"", "\"e\"",
		       "response: diagnosis: contains a NUL character");
}

/* A JSON string literal of n copies of unit. */
static char *rep(const char *unit, size_t n, const char *pre)
{
	size_t ul = strlen(unit), pl = strlen(pre);
	char *s = malloc(pl + ul * n + 3), *p = s;
	*p++ = '"';
	memcpy(p, pre, pl);
	p += pl;
	for (size_t i = 0; i < n; i++, p += ul)
		memcpy(p, unit, ul);
	*p++ = '"';
	*p = '\0';
	return s;
}

static void test_sizes(void)
{
	const char *D = "\"" DIFF "\"";
	prop_result r;
	/* 4000 two-byte characters are 4000 characters, not 8000 */
	char *ok = rep("\xc3\xa9", 4000, ""), *long1 = rep("\xc3\xa9", 4001, "");
	char *s = make(ok, "1", D, ok, "\"e\"");
	TT_CHECK_RC(parse(&r, s), 0);
	prop_result_free(&r);
	free(s);
	refused_fields(long1, "1", D, "\"r\"", "\"e\"",
		       "response: diagnosis: 4001 characters, at most 4000");
	refused_fields("\"d\"", "1", D, long1, "\"e\"",
		       "response: rationale: 4001 characters, at most 4000");
	char *eff = rep("x", 2001, "");
	refused_fields("\"d\"", "1", D, "\"r\"", eff,
		       "response: expected_effect: 2001 characters, at most 2000");
	/* the diff counts bytes: 64 KiB is the limit */
	char *diff = rep("x", 65536 - 28, "--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n");
	s = make("\"d\"", "1", diff, "\"r\"", "\"e\"");
	TT_CHECK_RC(parse(&r, s), 0);
	TT_CHECK(r.diff && strlen(r.diff) == 65536);
	prop_result_free(&r);
	free(s);
	free(diff);
	diff = rep("x", 65537 - 28, "--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n");
	refused_fields("\"d\"", "1", diff, "\"r\"", "\"e\"",
		       "response: diff: 65537 bytes, at most 65536");
	free(diff);
	free(ok);
	free(long1);
	free(eff);
}

int main(void)
{
	TT_RUN(test_good);
	TT_RUN(test_fenced);
	TT_RUN(test_fences_refused);
	TT_RUN(test_syntax);
	TT_RUN(test_keys);
	TT_RUN(test_types_and_ranges);
	TT_RUN(test_sizes);
	return TT_DONE();
}
