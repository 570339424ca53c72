/*
 * propose_parse.c - a model's answer, checked strictly: one JSON object with
 * exactly the five keys of the schema, each of the right type and size,
 * optionally inside one ```json fence and nothing else. Every rejection
 * names the key and the rule (docs/proposals.md lists them), because the
 * message is stored with the rejected proposal and shown to the next one.
 */
#include "propose_int.h"
#include "tend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RESPONSE_MAX (1024 * 1024)

static const char schema_text[] =
	"Answer with exactly one JSON object and nothing else (no prose; a single\n"
	"```json fence around it is tolerated). It must have exactly these keys:\n"
	"{\n"
	"  \"diagnosis\": string, 1 to 4000 characters: what went wrong and why,\n"
	"  \"confidence\": number from 0 to 1: how sure you are that the patch helps,\n"
	"  \"diff\": string, at most 65536 bytes: a unified diff (git style:\n"
	"      diff --git a/F b/F, --- a/F, +++ b/F, @@ hunks) against the scaffold\n"
	"      files shown, paths relative to the scaffold root,\n"
	"  \"rationale\": string, at most 4000 characters: why this change addresses\n"
	"      the diagnosis,\n"
	"  \"expected_effect\": string, at most 2000 characters: what the metrics\n"
	"      should show if the patch works\n"
	"}\n"
	"Only the files shown may be changed; every patched scaffold must still pass\n"
	"its selftest.\n";

const char *prop_schema_text(void)
{
	return schema_text;
}

void prop_result_free(prop_result *r)
{
	if (!r)
		return;
	free(r->diagnosis);
	free(r->diff);
	free(r->rationale);
	free(r->expected_effect);
	memset(r, 0, sizeof *r);
}

size_t prop__utf8_chars(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Finds the JSON text: all of it, or the inside of one ```json fence. */
static int unfence(const char **p, size_t *len)
{
	const char *s = *p, *e = *p + *len;
	while (s < e && is_space(*s))
		s++;
	while (e > s && is_space(e[-1]))
		e--;
	if (e - s < 3 || memcmp(s, "```", 3) != 0) {
		*p = s;
		*len = (size_t)(e - s);
		return 0;
	}
	const char *nl = memchr(s, '\n', (size_t)(e - s));
	const char *tag = s + 3, *tag_end = nl ? nl : e;
	while (tag_end > tag && is_space(tag_end[-1]))
		tag_end--;
	if (tag_end - tag != 4 || memcmp(tag, "json", 4) != 0)
		return tend_error_set(TEND_EINVAL, "response: a code fence must be ```json");
	if (!nl || e - nl < 4 || memcmp(e - 3, "```", 3) != 0 || e[-4] != '\n')
		return tend_error_set(TEND_EINVAL,
				      "response: the ```json fence is not closed by ``` on its own line");
	s = nl + 1;
	e -= 4;
	if (e < s)
		e = s; /* "```json\n```": nothing inside */
	if (memmem(s, (size_t)(e - s), "```", 3))
		return tend_error_set(TEND_EINVAL, "response: more than one code fence");
	*p = s;
	*len = (size_t)(e - s);
	return 0;
}

typedef struct field {
	const char *key;
	size_t min, max;  /* characters, or bytes for the diff */
	size_t off;       /* of the char * in prop_result */
} field;

static const field fields[] = {
	{"diagnosis", 1, PROP_DIAGNOSIS_MAX, offsetof(prop_result, diagnosis)},
	{"diff", 1, PROP_DIFF_MAX, offsetof(prop_result, diff)},
	{"rationale", 0, PROP_RATIONALE_MAX, offsetof(prop_result, rationale)},
	{"expected_effect", 0, PROP_EFFECT_MAX, offsetof(prop_result, expected_effect)},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

/* Whether text has the headers of a unified diff. */
static bool looks_like_diff(const char *s, size_t len)
{
	bool minus = false;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - s) : len, n = end - i;
		if (n >= 11 && !memcmp(s + i, "diff --git ", 11))
			return true;
		if (minus && n >= 4 && !memcmp(s + i, "+++ ", 4))
			return true;
		minus = n >= 4 && !memcmp(s + i, "--- ", 4);
		i = end + 1;
	}
	return false;
}

static int check_string(const field *f, const json_val *v, const char **out, size_t *out_len)
{
	size_t len;
	if (json_type(v) != JSON_STR)
		return tend_error_set(TEND_EINVAL, "response: %s: expected a string, got %s",
				      f->key, json_type_name(json_type(v)));
	const char *s = json_str(v, &len);
	if (memchr(s, '\0', len))
		return tend_error_set(TEND_EINVAL, "response: %s: contains a NUL character", f->key);
	bool bytes = f->off == offsetof(prop_result, diff);
	size_t n = bytes ? len : prop__utf8_chars(s, len);
	if (n < f->min)
		return tend_error_set(TEND_EINVAL, "response: %s: empty", f->key);
	if (n > f->max)
		return tend_error_set(TEND_EINVAL, "response: %s: %zu %s, at most %zu", f->key, n,
				      bytes ? "bytes" : "characters", f->max);
	if (bytes && !looks_like_diff(s, len))
		return tend_error_set(TEND_EINVAL, "response: diff: not a unified diff "
				      "(no ---/+++ or diff --git header)");
	*out = s;
	*out_len = len;
	return 0;
}

static int check_confidence(const json_val *v, double *out)
{
	if (json_type(v) != JSON_NUM)
		return tend_error_set(TEND_EINVAL, "response: confidence: expected a number, got %s",
				      json_type_name(json_type(v)));
	double c = json_num(v);
	if (!(c >= 0 && c <= 1))
		return tend_error_set(TEND_EINVAL, "response: confidence: %g out of range [0, 1]", c);
	*out = c;
	return 0;
}

/* Every key known, none missing; the message lists the expected set. */
static int check_keys(const json_val *root)
{
	static const char expected[] =
		"(expected diagnosis, confidence, diff, rationale, expected_effect)";
	for (size_t i = 0; i < json_len(root); i++) {
		const char *k = json_key_at(root, i, NULL);
		bool known = !strcmp(k, "confidence");
		for (size_t f = 0; f < NFIELDS; f++)
			known |= !strcmp(k, fields[f].key);
		if (!known)
			return tend_error_set(TEND_EINVAL, "response: unknown key \"%.64s\" %s", k,
					      expected);
	}
	const char *all[] = {"diagnosis", "confidence", "diff", "rationale", "expected_effect"};
	for (size_t i = 0; i < 5; i++)
		if (!json_get(root, all[i]))
			return tend_error_set(TEND_EINVAL, "response: missing key \"%s\" %s", all[i],
					      expected);
	return 0;
}

static int fill(prop_result *out, const json_val *root)
{
	const char *s[NFIELDS];
	size_t len[NFIELDS];
	double conf = 0;
	int rc;
	if ((rc = check_keys(root)) < 0)
		return rc;
	for (size_t f = 0; f < NFIELDS; f++) {
		if ((rc = check_string(&fields[f], json_get(root, fields[f].key), &s[f], &len[f])) < 0)
			return rc;
		if (f == 0 && (rc = check_confidence(json_get(root, "confidence"), &conf)) < 0)
			return rc;
	}
	for (size_t f = 0; f < NFIELDS; f++) {
		char **dst = (char **)((char *)out + fields[f].off);
		if (!(*dst = strndup(s[f], len[f]))) {
			for (size_t g = 0; g < f; g++) {
				free(*(char **)((char *)out + fields[g].off));
				*(char **)((char *)out + fields[g].off) = NULL;
			}
			return tend_error_set(TEND_ENOMEM, "response: out of memory");
		}
	}
	out->confidence = conf;
	return 0;
}

int prop_parse_response(prop_result *out, const char *text, size_t len)
{
	json_doc *doc = NULL;
	json_limits lim = {.max_bytes = RESPONSE_MAX, .max_depth = 16};
	int rc;
	out->diagnosis = out->diff = out->rationale = out->expected_effect = NULL;
	if (len > RESPONSE_MAX)
		return tend_error_set(TEND_EINVAL, "response: %zu bytes, at most %d", len,
				      RESPONSE_MAX);
	if ((rc = unfence(&text, &len)) < 0)
		return rc;
	if (len == 0)
		return tend_error_set(TEND_EINVAL, "response: empty");
	if ((rc = json_parse(&doc, text, len, &lim)) < 0)
		return rc == TEND_EINVAL ? tend_error_wrap(rc, "response: not valid JSON")
					 : tend_error_set(rc, "response: out of memory");
	const json_val *root = json_root(doc);
	if (json_type(root) != JSON_OBJ)
		rc = tend_error_set(TEND_EINVAL, "response: expected a JSON object, got %s",
				    json_type_name(json_type(root)));
	else
		rc = fill(out, root);
	json_doc_free(doc);
	return rc;
}
