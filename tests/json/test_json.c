/* test_json.c - the strict JSON parser, its accessors, and the jbuf writer. */
#include "json.h"
#include "tend.h"
#include "tt.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Under ASan, let the huge allocation in test_writer_enomem fail the way
 * malloc does (NULL) instead of aborting. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

static json_doc *parse_ok(const char *s, const json_limits *lim)
{
	json_doc *d = NULL;
	int rc = json_parse(&d, s, strlen(s), lim);
	if (rc != 0)
		fprintf(stderr, "parse \"%s\": %s\n", s, tend_error_last());
	return d;
}

/* Parses s expecting failure; returns the message (or "parsed"). */
static const char *parse_err(const char *s, size_t len, const json_limits *lim)
{
	json_doc *d = (json_doc *)1;
	int rc = json_parse(&d, s, len, lim);
	if (rc == 0) {
		json_doc_free(d);
		return "parsed";
	}
	if (rc != TEND_EINVAL || d != NULL)
		return "wrong code or out";
	return tend_error_last();
}

#define ERR(s) parse_err((s), strlen(s), NULL)

static void test_scalars(void)
{
	json_doc *d = parse_ok(" true ", NULL);
	TT_REQUIRE(d);
	TT_CHECK(json_type(json_root(d)) == JSON_BOOL);
	TT_CHECK(json_bool(json_root(d)));
	json_doc_free(d);
	d = parse_ok("null", NULL);
	TT_CHECK(d && json_type(json_root(d)) == JSON_NULL);
	json_doc_free(d);
	d = parse_ok("-12.5e1", NULL);
	TT_CHECK(d && json_num(json_root(d)) == -125.0);
	json_doc_free(d);
	d = parse_ok("\"h\\u00e9\\ud83d\\ude00\\n\\\"\\/\"", NULL);
	size_t n;
	const char *s = json_str(json_root(d), &n);
	TT_CHECK(n == 10 && memcmp(s, "h\xc3\xa9\xf0\x9f\x98\x80\n\"/", 10) == 0);
	TT_CHECK(s[n] == '\0');
	json_doc_free(d);
	d = parse_ok("\"a\\u0000b\"", NULL);
	s = json_str(json_root(d), &n);
	TT_CHECK(n == 3 && s[1] == '\0' && s[2] == 'b');
	json_doc_free(d);
}

static void test_containers(void)
{
	const char *txt = "{\"a\": [1, 2, [3, {}], []], \"b\": {\"c\": \"x\"},"
			  " \"n\": null, \"t\": false}";
	json_doc *d = parse_ok(txt, NULL);
	TT_REQUIRE(d);
	const json_val *r = json_root(d);
	TT_CHECK(json_type(r) == JSON_OBJ && json_len(r) == 4);
	size_t kl;
	TT_CHECK_STR(json_key_at(r, 0, &kl), "a");
	TT_CHECK(kl == 1);
	TT_CHECK_STR(json_key_at(r, 3, NULL), "t");
	TT_CHECK(json_key_at(r, 4, NULL) == NULL);
	const json_val *a = json_get(r, "a");
	TT_CHECK(json_type(a) == JSON_ARR && json_len(a) == 4);
	TT_CHECK(json_num(json_at(a, 1)) == 2);
	TT_CHECK(json_len(json_at(a, 2)) == 2);
	TT_CHECK(json_type(json_at(json_at(a, 2), 1)) == JSON_OBJ);
	TT_CHECK(json_len(json_at(a, 3)) == 0);
	TT_CHECK(json_at(a, 4) == NULL);
	TT_CHECK_STR(json_str(json_get(json_get(r, "b"), "c"), NULL), "x");
	TT_CHECK(json_at(r, 1) == json_get(r, "b"));
	TT_CHECK(json_get(r, "zz") == NULL);
	TT_CHECK(json_get(a, "a") == NULL);
	/* wrong types and NULL give neutral answers */
	TT_CHECK(json_num(a) == 0 && json_str(a, NULL) == NULL && !json_bool(NULL));
	TT_CHECK(json_len(NULL) == 0 && json_type(NULL) == JSON_NULL);
	json_doc_free(d);
	json_doc_free(NULL);
}

static void test_get_helpers(void)
{
	json_doc *d = parse_ok("{\"n\":2.5,\"i\":42,\"s\":\"hi\",\"b\":true,"
			       "\"big\":1e19,\"neg\":-9223372036854775808}", NULL);
	TT_REQUIRE(d);
	const json_val *r = json_root(d);
	double x = 0;
	int64_t i = 0;
	const char *s = NULL;
	bool b = false;
	TT_CHECK_RC(json_get_num(r, "n", &x), 0);
	TT_CHECK(x == 2.5);
	TT_CHECK_RC(json_get_num(r, "nope", &x), TEND_ENOTFOUND);
	TT_CHECK_STR(tend_error_last(), "missing field nope");
	TT_CHECK_RC(json_get_num(r, "s", &x), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "field s: expected a number, got a string");
	TT_CHECK_RC(json_get_int(r, "i", &i), 0);
	TT_CHECK(i == 42);
	TT_CHECK_RC(json_get_int(r, "n", &i), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "field n: expected an integer, got 2.5");
	TT_CHECK_RC(json_get_int(r, "big", &i), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "field big: expected an integer, got 1e+19");
	TT_CHECK_RC(json_get_int(r, "neg", &i), 0);
	TT_CHECK(i == INT64_MIN);
	TT_CHECK_RC(json_get_str(r, "s", &s), 0);
	TT_CHECK_STR(s, "hi");
	TT_CHECK_RC(json_get_str(r, "b", &s), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "field b: expected a string, got a bool");
	TT_CHECK_RC(json_get_bool(r, "b", &b), 0);
	TT_CHECK(b);
	TT_CHECK_RC(json_get_int(NULL, "i", &i), TEND_ENOTFOUND);
	json_doc_free(d);
}

static void test_syntax_errors(void)
{
	TT_CHECK_STR(ERR("{\"loss\":1,\"lr\":2\"x\":3}"),
		     "1:17: expected ',' or '}' after object member");
	TT_CHECK_STR(ERR(""), "1:1: expected a value, got end of input");
	TT_CHECK_STR(ERR("   "), "1:4: expected a value, got end of input");
	TT_CHECK_STR(ERR("{} x"), "1:4: expected end of input after the value");
	TT_CHECK_STR(ERR("[1,2]]"), "1:6: expected end of input after the value");
	TT_CHECK_STR(ERR("[1,]"), "1:4: expected a value");
	TT_CHECK_STR(ERR("{\"a\":1,}"), "1:8: expected '\"' to start an object key");
	TT_CHECK_STR(ERR("{\"a\" 1}"), "1:6: expected ':' after object key");
	TT_CHECK_STR(ERR("[1 2]"), "1:4: expected ',' or ']' after array element");
	TT_CHECK_STR(ERR("{a:1}"), "1:2: expected '\"' to start an object key");
	TT_CHECK_STR(ERR("[1,\n  2,\n  x]"), "3:3: expected a value");
	TT_CHECK_STR(ERR("{\"a\":[1,2"),
		     "1:10: expected ',' or ']' after array element, got end of input");
	TT_CHECK_STR(ERR("[tru"), "1:5: expected 'true', got end of input");
	TT_CHECK_STR(ERR("[trUe]"), "1:2: expected a value");
	TT_CHECK_STR(ERR("'a'"), "1:1: expected a value");
	TT_CHECK_STR(ERR("[\"abc"), "1:6: expected '\"' to end the string, got end of input");
}

static void test_number_errors(void)
{
	TT_CHECK_STR(ERR("01"), "1:1: leading zero in number");
	TT_CHECK_STR(ERR("[-012]"), "1:3: leading zero in number");
	TT_CHECK_STR(ERR("-"), "1:2: expected a digit after '-', got end of input");
	TT_CHECK_STR(ERR("1."), "1:3: expected a digit after '.', got end of input");
	TT_CHECK_STR(ERR("1.e5"), "1:3: expected a digit after '.'");
	TT_CHECK_STR(ERR("1e+"), "1:4: expected a digit in the exponent, got end of input");
	TT_CHECK_STR(ERR("+1"), "1:1: expected a value");
	TT_CHECK_STR(ERR(".5"), "1:1: expected a value");
	TT_CHECK_STR(ERR("[1e400]"), "1:2: number out of range");
	TT_CHECK_STR(ERR("0x10"), "1:2: expected end of input after the value");
	TT_CHECK_STR(ERR("NaN"), "1:1: expected a value");
	TT_CHECK_STR(ERR("-Infinity"), "1:2: expected a digit after '-'");
}

static void test_string_errors(void)
{
	TT_CHECK_STR(ERR("\"a\\x\""), "1:3: invalid escape \\x");
	TT_CHECK_STR(ERR("\"a\\\x01\""), "1:3: invalid escape \\ followed by byte 0x01");
	TT_CHECK_STR(ERR("\"\\u12G4\""), "1:2: expected 4 hex digits after \\u");
	TT_CHECK_STR(ERR("\"\\u12\""), "1:2: expected 4 hex digits after \\u");
	TT_CHECK_STR(ERR("\"\\u12"), "1:6: expected 4 hex digits after \\u, got end of input");
	TT_CHECK_STR(ERR("\"\\ud83d\\u"),
		     "1:10: expected a low surrogate after \\uD83D, got end of input");
	TT_CHECK_STR(ERR("\"x\\ud800\""), "1:3: lone surrogate \\uD800");
	TT_CHECK_STR(ERR("\"\\ud800\\u0041\""), "1:2: lone surrogate \\uD800");
	TT_CHECK_STR(ERR("\"\\udc00\""), "1:2: lone surrogate \\uDC00");
	TT_CHECK_STR(ERR("\"a\tb\""), "1:3: control character U+0009 in string");
	TT_CHECK_STR(ERR("\"a\nb\""), "1:3: control character U+000A in string");
	TT_CHECK_STR(ERR("\"\xc3\x28\""), "1:2: invalid UTF-8 in string");
	TT_CHECK_STR(ERR("\"\xc0\xaf\""), "1:2: invalid UTF-8 in string");      /* overlong */
	TT_CHECK_STR(ERR("\"\xed\xa0\x80\""), "1:2: invalid UTF-8 in string");  /* surrogate */
	TT_CHECK_STR(ERR("\"\xf4\x90\x80\x80\""), "1:2: invalid UTF-8 in string");
	TT_CHECK_STR(ERR("\"\xff\""), "1:2: invalid UTF-8 in string");
	TT_CHECK_STR(ERR("\"ok\xe2\x82"), "1:6: expected '\"' to end the string, got end of input");
	TT_CHECK_STR(parse_err("\"a\0b\"", 5, NULL), "1:3: control character U+0000 in string");
	json_doc *d = parse_ok("\"\xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"", NULL);
	TT_CHECK(d != NULL);
	json_doc_free(d);
}

static void test_duplicate_keys(void)
{
	TT_CHECK_STR(ERR("{\"a\":1,\"b\":2,\"a\":3}"), "1:14: duplicate key \"a\"");
	TT_CHECK_STR(ERR("{\"x\":{\"a\":1},\"y\":{\"a\":1},\"x\":0}"),
		     "1:26: duplicate key \"x\"");
	TT_CHECK_STR(ERR("{\"\\u0041\":1,\"A\":2}"), "1:13: duplicate key \"A\"");
	TT_CHECK_STR(ERR("{\"a\\nb\":1,\"a\\nb\":2}"), "1:11: duplicate key \"a\\x0ab\"");
	/* the same key in sibling objects is fine */
	json_doc *d = parse_ok("[{\"a\":1},{\"a\":2}]", NULL);
	TT_CHECK(d != NULL);
	json_doc_free(d);

	/* past the linear limit the hash table takes over */
	char buf[20000];
	size_t o = 0;
	buf[o++] = '{';
	for (int i = 0; i < 1000; i++)
		o += (size_t)sprintf(buf + o, "%s\"k%d\":%d", i ? "," : "", i, i);
	buf[o++] = '}';
	buf[o] = '\0';
	d = parse_ok(buf, NULL);
	TT_REQUIRE(d);
	TT_CHECK(json_len(json_root(d)) == 1000);
	TT_CHECK(json_num(json_get(json_root(d), "k999")) == 999);
	TT_CHECK_STR(json_key_at(json_root(d), 517, NULL), "k517");
	json_doc_free(d);
	o--; /* replace '}' with a repeat of k700 */
	o += (size_t)sprintf(buf + o, ",\"k700\":1}");
	TT_CHECK_HAS(ERR(buf), ": duplicate key \"k700\"");
	size_t col = (size_t)(strstr(buf, ",\"k700\":1}") - buf) + 2;
	char want[64];
	snprintf(want, sizeof want, "1:%zu: duplicate key \"k700\"", col);
	TT_CHECK_STR(ERR(buf), want);
}

static void test_limits(void)
{
	char deep[200];
	memset(deep, '[', 65);
	memset(deep + 65, ']', 65);
	deep[130] = '\0';
	TT_CHECK_STR(ERR(deep), "1:65: nesting deeper than 64");
	deep[0] = ' ';
	deep[129] = ' ';
	json_doc *d = parse_ok(deep, NULL); /* 64 levels are fine */
	TT_CHECK(d != NULL);
	json_doc_free(d);

	/* deeper limits are capped at JSON_MAX_DEPTH (the parser recurses) */
	json_limits lim = {.max_depth = 100000};
	char *deeper = malloc(2 * JSON_MAX_DEPTH + 3);
	TT_REQUIRE(deeper);
	memset(deeper, '[', JSON_MAX_DEPTH);
	memset(deeper + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
	d = NULL;
	TT_CHECK_RC(json_parse(&d, deeper, 2 * JSON_MAX_DEPTH, &lim), 0);
	json_doc_free(d);
	memset(deeper, '[', JSON_MAX_DEPTH + 1);
	memset(deeper + JSON_MAX_DEPTH + 1, ']', JSON_MAX_DEPTH + 1);
	TT_CHECK_STR(parse_err(deeper, 2 * JSON_MAX_DEPTH + 2, &lim),
		     "1:1025: nesting deeper than 1024");
	free(deeper);

	lim = (json_limits){.max_depth = 2};
	TT_CHECK_STR(parse_err("[[[]]]", 6, &lim), "1:3: nesting deeper than 2");
	lim = (json_limits){.max_bytes = 5};
	TT_CHECK_STR(parse_err("[1,2,3]", 7, &lim),
		     "JSON text of 7 bytes is over the limit of 5");
	lim = (json_limits){.max_str = 3};
	TT_CHECK_STR(parse_err("[\"abc\",\"abcd\"]", 14, &lim),
		     "1:8: string longer than 3 bytes");
	lim = (json_limits){.max_nodes = 3};
	TT_CHECK_STR(parse_err("[1,2,3]", 7, &lim), "1:6: more than 3 values");
	d = NULL;
	TT_CHECK_RC(json_parse(&d, "[1,2]", 5, &lim), 0);
	json_doc_free(d);
}

static void test_nonfinite(void)
{
	json_limits lim = {.allow_nonfinite = true};
	json_doc *d = parse_ok("[NaN, Infinity, -Infinity, 1]", &lim);
	TT_REQUIRE(d);
	const json_val *r = json_root(d);
	TT_CHECK(isnan(json_num(json_at(r, 0))));
	TT_CHECK(isinf(json_num(json_at(r, 1))) && json_num(json_at(r, 1)) > 0);
	TT_CHECK(isinf(json_num(json_at(r, 2))) && json_num(json_at(r, 2)) < 0);
	TT_CHECK(json_type(json_at(r, 2)) == JSON_NUM);
	json_doc_free(d);
	TT_CHECK_STR(parse_err("[nan]", 5, &lim), "1:2: expected a value");
	TT_CHECK_STR(parse_err("[-Inf]", 6, &lim), "1:2: expected a value");
	TT_CHECK_STR(parse_err("[-Inf", 5, &lim),
		     "1:6: expected '-Infinity', got end of input");
	TT_CHECK_STR(parse_err("[1,Infinit", 10, &lim),
		     "1:11: expected 'Infinity', got end of input");
	TT_CHECK_STR(parse_err("[-Inf]", 6, NULL), "1:3: expected a digit after '-'");
}

/* The fast path must give exactly what strtod gives. */
static void test_numbers_exact(void)
{
	const char *cases[] = {
		"0", "-0", "1", "0.1", "0.3", "2.345678997039795", "1e22", "1e23",
		"9007199254740993", "12345678901234567890", "0.000001234",
		"1.7976931348623157e308", "4.9e-324", "1e-400", "123456789012345678901234567890e-10",
		"0.10000000149011612", "3.0000000000000004", "-1.5E+3", "100",
		"1.00000000000000000000000000001", "9007199254740993", "9007199254740995",
		"18014398509481993", "9223372036854775807", "18446744073709551615",
		"9999999999999999999", "0.9999999999999999999", "1234567890123456789e-27",
		"1234567890123456789e27", "7e-27", "7e27", "0.00030000001424923539",
		"123456789012345678.9", "2.2250738585072011e-308",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_doc *d = parse_ok(cases[i], NULL);
		TT_REQUIRE(d);
		double got = json_num(json_root(d)), want = strtod(cases[i], NULL);
		if (memcmp(&got, &want, sizeof got) != 0) {
			fprintf(stderr, "%s: got %.17g want %.17g\n", cases[i], got, want);
			TT_CHECK(0);
		}
		json_doc_free(d);
	}
	uint64_t s = 88172645463325252ull;
	for (int i = 0; i < 20000; i++) {
		char buf[64];
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		double v;
		if (i % 2) {
			uint64_t bits = s & ~(0x7ffull << 52);
			bits |= (uint64_t)(1023 - 30 + s % 60) << 52;
			memcpy(&v, &bits, sizeof v);
		} else {
			v = (double)(s % 100000000) / (double)(1 + (s >> 40) % 1000000);
		}
		snprintf(buf, sizeof buf, "%.*g", 9 + (int)(s % 9), v);
		json_doc *d = parse_ok(buf, NULL);
		TT_REQUIRE(d);
		double got = json_num(json_root(d)), want = strtod(buf, NULL);
		if (memcmp(&got, &want, sizeof got) != 0) {
			fprintf(stderr, "%s: got %.17g want %.17g\n", buf, got, want);
			TT_CHECK(0);
			json_doc_free(d);
			return;
		}
		json_doc_free(d);
	}
}

/* Long mantissas with powers of ten around the 128-bit path's range. */
static void test_numbers_long(void)
{
	uint64_t s = 0x853c49e6748fea9bull;
	for (int i = 0; i < 50000; i++) {
		char buf[64];
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		int nd = 1 + (int)(s % 19), e = (int)(s >> 20 & 63) - 32;
		uint64_t m = (s >> 5) % 10000000000000000000ull;
		char digs[24];
		snprintf(digs, sizeof digs, "%019llu", (unsigned long long)m);
		digs[0] = digs[0] == '0' ? '7' : digs[0];
		if (i % 3 == 0 && nd > 1) /* with a point: d.ddd */
			snprintf(buf, sizeof buf, "%c.%.*se%d", digs[0], nd - 1, digs + 1, e);
		else
			snprintf(buf, sizeof buf, "%.*se%d", nd, digs, e);
		json_doc *d = parse_ok(buf, NULL);
		TT_REQUIRE(d);
		double got = json_num(json_root(d)), want = strtod(buf, NULL);
		json_doc_free(d);
		if (memcmp(&got, &want, sizeof got) != 0) {
			fprintf(stderr, "%s: got %.17g want %.17g\n", buf, got, want);
			TT_CHECK(0);
			return;
		}
	}
}

/* Reusing a document's allocation: same block while it is big enough. */
static void test_reuse(void)
{
	json_doc *d = NULL;
	size_t off = 99;
	TT_CHECK_RC(json__parse_reuse(&d, "[1,2,3,4,5,6,7,8]", 17, NULL, &off), 0);
	json_doc *first = d;
	TT_CHECK_RC(json__parse_reuse(&d, "{\"a\":[1]}", 9, NULL, &off), 0);
	TT_CHECK(d == first);
	TT_CHECK(json_num(json_at(json_get(json_root(d), "a"), 0)) == 1);
	TT_CHECK_RC(json__parse_reuse(&d, "{\"a\":", 5, NULL, &off), TEND_EINVAL);
	TT_CHECK(off == 5 && d == first && json_root(d) == NULL);
	TT_CHECK_RC(json__parse_reuse(&d, "[1,x]", 5, NULL, &off), TEND_EINVAL);
	TT_CHECK(off == 3);
	json_doc_free(d);
}

/* Every prefix of a valid text fails cleanly, and so does every corruption
 * of one byte; the offsets stay inside the input. */
static void test_prefixes_and_flips(void)
{
	const char *txt = "{\"a\":[1.5e3,-0.25,true,null,\"x\\u00e9\\ud83d\\ude00\"],"
			  "\"b\":{\"c\":{}},\"d\":\"\xc3\xa9\"}";
	size_t len = strlen(txt), off;
	json_doc *d = NULL;
	for (size_t n = 0; n < len; n++) {
		int rc = json__parse_reuse(&d, txt, n, NULL, &off);
		TT_CHECK(rc == TEND_EINVAL && off <= n);
	}
	char buf[256];
	for (size_t i = 0; i < len; i++)
		for (int c = 0; c < 256; c += 7) {
			memcpy(buf, txt, len);
			buf[i] = (char)c;
			int rc = json__parse_reuse(&d, buf, len, NULL, &off);
			TT_CHECK(rc == 0 || (rc == TEND_EINVAL && off <= len));
		}
	json_doc_free(d);
}

static void test_writer(void)
{
	jbuf b;
	jbuf_init(&b);
	TT_CHECK_STR(jbuf_cstr(&b, NULL), "");
	jbuf_obj_open(&b);
	jbuf_key(&b, "a");
	jbuf_arr_open(&b);
	jbuf_int(&b, 1);
	jbuf_int(&b, INT64_MIN);
	jbuf_arr_open(&b);
	jbuf_arr_close(&b);
	jbuf_obj_open(&b);
	jbuf_obj_close(&b);
	jbuf_null(&b);
	jbuf_bool(&b, true);
	jbuf_bool(&b, false);
	jbuf_arr_close(&b);
	jbuf_key(&b, "s\"\\\n\x01");
	jbuf_str(&b, "\xc3\xa9\xff/\t");
	jbuf_key(&b, "raw");
	jbuf_raw(&b, "{\"x\":1}", 7);
	TT_CHECK_RC(jbuf_obj_close(&b), 0);
	size_t len;
	const char *s = jbuf_cstr(&b, &len);
	TT_CHECK_STR(s, "{\"a\":[1,-9223372036854775808,[],{},null,true,false],"
		     "\"s\\\"\\\\\\n\\u0001\":\"\xc3\xa9\\ufffd/\\t\",\"raw\":{\"x\":1}}");
	TT_CHECK(len == strlen(s));
	json_doc *d = parse_ok(s, NULL);
	TT_CHECK(d != NULL);
	json_doc_free(d);
	jbuf_reset(&b);
	jbuf_strn(&b, "a\0b", 3);
	TT_CHECK_STR(jbuf_cstr(&b, NULL), "\"a\\u0000b\"");
	jbuf_free(&b);
}

static const char *num_text(jbuf *b, double v)
{
	jbuf_reset(b);
	jbuf_num(b, v);
	return jbuf_cstr(b, NULL);
}

static void test_writer_numbers(void)
{
	jbuf b;
	jbuf_init(&b);
	TT_CHECK_STR(num_text(&b, 0.1), "0.1");
	TT_CHECK_STR(num_text(&b, 1.0 / 3), "0.3333333333333333");
	TT_CHECK_STR(num_text(&b, 2.0), "2");
	TT_CHECK_STR(num_text(&b, -0.0), "-0");
	TT_CHECK_STR(num_text(&b, 1e300), "1e+300");
	TT_CHECK_STR(num_text(&b, 5e-324), "4.94065645841247e-324");
	TT_CHECK_STR(num_text(&b, (double)0.1f), "0.10000000149011612");
	TT_CHECK_STR(num_text(&b, NAN), "NaN");
	TT_CHECK_STR(num_text(&b, INFINITY), "Infinity");
	TT_CHECK_STR(num_text(&b, -INFINITY), "-Infinity");
	jbuf_reset(&b);
	jbuf_arr_open(&b);
	jbuf_num_f(&b, 0.1f);
	jbuf_num_f(&b, 16777217.0f);
	jbuf_num_f(&b, 3.4028235e38f);
	jbuf_num_f(&b, NAN);
	jbuf_arr_close(&b);
	TT_CHECK_STR(jbuf_cstr(&b, NULL), "[0.1,16777216,3.4028235e+38,NaN]");
	/* round trip through the parser, bit for bit */
	uint64_t s = 12345;
	for (int i = 0; i < 2000; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		double v;
		memcpy(&v, &s, sizeof v);
		if (!isfinite(v))
			continue;
		const char *t = num_text(&b, v);
		json_doc *d = parse_ok(t, NULL);
		TT_REQUIRE(d);
		double got = json_num(json_root(d));
		TT_CHECK(memcmp(&got, &v, sizeof v) == 0);
		json_doc_free(d);
	}
	jbuf_free(&b);
}

/* A byte cap drives the allocation-failure path: the failed call returns
 * TEND_ENOMEM, leaves the text as it was, and the error sticks. */
static void test_writer_enomem(void)
{
	jbuf b;
	jbuf_init(&b);
	b.max = 12;
	TT_CHECK_RC(jbuf_arr_open(&b), 0);
	TT_CHECK_RC(jbuf_str(&b, "abcd"), 0);
	TT_CHECK_STR(jbuf_cstr(&b, NULL), "[\"abcd\"");
	TT_CHECK_RC(jbuf_str(&b, "efgh"), TEND_ENOMEM);
	TT_CHECK_STR(tend_error_last(), "JSON text would exceed 12 bytes");
	TT_CHECK_STR(jbuf_cstr(&b, NULL), "[\"abcd\"");
	TT_CHECK(b.err == TEND_ENOMEM);
	TT_CHECK_RC(jbuf_int(&b, 1), TEND_ENOMEM); /* sticky, even if it fits */
	TT_CHECK_RC(jbuf_arr_close(&b), TEND_ENOMEM);
	TT_CHECK_STR(jbuf_cstr(&b, NULL), "[\"abcd\"");
	jbuf_reset(&b);
	TT_CHECK_RC(jbuf_key(&b, "012345678"), 0); /* "..."': is 12 bytes */
	TT_CHECK_STR(jbuf_cstr(&b, NULL), "\"012345678\":");
	jbuf_reset(&b);
	TT_CHECK_RC(jbuf_key(&b, "0123456789"), TEND_ENOMEM); /* 13 */
	TT_CHECK_STR(jbuf_cstr(&b, NULL), "");
	jbuf_free(&b);

	/* a real allocation failure: realloc cannot give 2^61 bytes */
	jbuf_init(&b);
	TT_CHECK_RC(jbuf_arr_open(&b), 0);
	TT_CHECK_RC(jbuf_raw(&b, "1", SIZE_MAX / 16), TEND_ENOMEM);
	TT_CHECK_STR(tend_error_last(), "out of memory growing JSON text to 2305843009213693952 bytes");
	TT_CHECK_STR(jbuf_cstr(&b, NULL), "[");
	jbuf_free(&b);

	/* every cap from 0 to the full size: never a partial item */
	const char *want = "{\"k\":[1,\"x\\n\",null],\"e\":{}}";
	for (size_t cap = 1; cap <= strlen(want) + 1; cap++) {
		jbuf_init(&b);
		b.max = cap;
		jbuf_obj_open(&b);
		jbuf_key(&b, "k");
		jbuf_arr_open(&b);
		jbuf_int(&b, 1);
		jbuf_str(&b, "x\n");
		jbuf_null(&b);
		jbuf_arr_close(&b);
		jbuf_key(&b, "e");
		jbuf_obj_open(&b);
		jbuf_obj_close(&b);
		jbuf_obj_close(&b);
		size_t len;
		const char *s = jbuf_cstr(&b, &len);
		TT_CHECK(len <= cap && strncmp(s, want, len) == 0 && s[len] == '\0');
		TT_CHECK((b.err == 0) == (cap >= strlen(want)));
		jbuf_free(&b);
	}
}

int main(void)
{
	TT_RUN(test_scalars);
	TT_RUN(test_containers);
	TT_RUN(test_get_helpers);
	TT_RUN(test_syntax_errors);
	TT_RUN(test_number_errors);
	TT_RUN(test_string_errors);
	TT_RUN(test_duplicate_keys);
	TT_RUN(test_limits);
	TT_RUN(test_nonfinite);
	TT_RUN(test_numbers_exact);
	TT_RUN(test_numbers_long);
	TT_RUN(test_reuse);
	TT_RUN(test_prefixes_and_flips);
	TT_RUN(test_writer);
	TT_RUN(test_writer_numbers);
	TT_RUN(test_writer_enomem);
	return TT_DONE();
}
