/* test_mline.c - the metrics line protocol: every line type, the flattened
 * moe metrics, each malformation's exact reason, and 10,000 junk lines. */
#include "mline.h"
#include "tend.h"
#include "tt.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static mline m;

static int parse(const char *s)
{
	return mline_parse(&m, s, strlen(s));
}

/* Parses s expecting it to be malformed; returns the reason. */
static const char *reason(const char *s, size_t len)
{
	int rc = mline_parse(&m, s, len);
	if (rc == 0)
		return "parsed";
	if (rc != TEND_EINVAL)
		return "wrong code";
	if (m.n_metrics || m.path || m.event || m.scaffold || m.step != -1)
		return "fields not reset";
	return tend_error_last();
}

#define WHY(s) reason((s), strlen(s))

static double val(const char *name)
{
	double v = -12345;
	return mline_get(&m, name, &v) == 0 ? v : -12345;
}

static void test_step_line(void)
{
	const char *line =
		"{\"step\":12,\"t\":1764500000.25,\"loss\":2.5,\"lr\":3e-4,"
		"\"grad_norm\":0.75,\"tokens_per_s\":12000,\"step_time_s\":0.5,"
		"\"my_metric\":-1,\"scaffold\":\"abc123\","
		"\"moe\":[{\"layer\":0,\"load\":[0.5,0.25,0.25],\"max_over_mean\":1.5,"
		"\"entropy\":1.04,\"dropped\":3,\"aux_loss\":0.01,\"z_loss\":0.002,\"dead\":0},"
		"{\"layer\":3,\"load\":[1,0],\"dead\":1}]}\n";
	TT_CHECK_RC(parse(line), 0);
	TT_CHECK(m.type == MLINE_STEP && m.step == 12 && m.t == 1764500000.25);
	TT_CHECK_STR(m.scaffold, "abc123");
	TT_CHECK(m.path == NULL && m.event == NULL && m.ok == -1);
	const char *names[] = {"loss", "lr", "grad_norm", "tokens_per_s", "step_time_s",
		"my_metric", "moe.0.load.0", "moe.0.load.1", "moe.0.load.2",
		"moe.0.max_over_mean", "moe.0.entropy", "moe.0.dropped", "moe.0.aux_loss",
		"moe.0.z_loss", "moe.0.dead", "moe.3.load.0", "moe.3.load.1", "moe.3.dead"};
	double vals[] = {2.5, 3e-4, 0.75, 12000, 0.5, -1, 0.5, 0.25, 0.25, 1.5, 1.04,
		3, 0.01, 0.002, 0, 1, 0, 1};
	size_t n = sizeof names / sizeof names[0];
	TT_REQUIRE(m.n_metrics == n);
	for (size_t i = 0; i < n; i++) {
		TT_CHECK_STR(m.metrics[i].name, names[i]);
		TT_CHECK(m.metrics[i].value == vals[i]);
	}
	TT_CHECK(val("moe.0.entropy") == 1.04);
	double v;
	TT_CHECK_RC(mline_get(&m, "nope", &v), TEND_ENOTFOUND);
	TT_CHECK_STR(mline_type_name(m.type), "step");
}

static void test_defaults_and_values(void)
{
	TT_CHECK_RC(parse("{\"step\":0}"), 0);
	TT_CHECK(m.type == MLINE_STEP && m.step == 0 && isnan(m.t) && m.n_metrics == 0);
	TT_CHECK_RC(parse("{\"type\":\"step\",\"step\":1,\"t\":null,\"loss\":null,\"lr\":1}\r\n"), 0);
	TT_CHECK(m.n_metrics == 1 && isnan(m.t) && val("lr") == 1);
	TT_CHECK_RC(parse("{\"step\":5,\"loss\":NaN,\"a\":Infinity,\"b\":-Infinity}"), 0);
	TT_CHECK(m.n_metrics == 3 && isnan(val("loss")));
	TT_CHECK(isinf(val("a")) && val("a") > 0 && isinf(val("b")) && val("b") < 0);
	TT_CHECK_RC(parse(" {\"step\":9007199254740992} "), 0);
	TT_CHECK(m.step == 9007199254740992ll);
	TT_CHECK_RC(parse("{\"step\":1,\"\xc3\xa9t\xc3\xa9\":2}"), 0);
	TT_CHECK_STR(m.metrics[0].name, "\xc3\xa9t\xc3\xa9");
}

static void test_other_types(void)
{
	TT_CHECK_RC(parse("{\"type\":\"eval\",\"step\":100,\"val_loss\":2.1,\"acc\":0.5,"
			  "\"scaffold\":\"d00d\"}"), 0);
	TT_CHECK(m.type == MLINE_EVAL && m.n_metrics == 2 && val("val_loss") == 2.1);
	TT_CHECK_STR(m.scaffold, "d00d");
	TT_CHECK_RC(parse("{\"type\":\"heartbeat\",\"step\":7,\"t\":5.5}"), 0);
	TT_CHECK(m.type == MLINE_HEARTBEAT && m.step == 7 && m.t == 5.5 && m.n_metrics == 0);
	const char *sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	char line[400];
	snprintf(line, sizeof line, "{\"type\":\"checkpoint\",\"step\":200,"
		 "\"path\":\"ckpt/step200.bin\",\"sha256\":\"%s\",\"bytes\":1048576}", sha);
	TT_CHECK_RC(parse(line), 0);
	TT_CHECK(m.type == MLINE_CHECKPOINT && val("bytes") == 1048576);
	TT_CHECK_STR(m.path, "ckpt/step200.bin");
	TT_CHECK_STR(m.sha256, sha);
	TT_CHECK_RC(parse("{\"type\":\"checkpoint\",\"step\":1,\"path\":\"c\"}"), 0);
	TT_CHECK(m.sha256 == NULL && m.n_metrics == 0);
	TT_CHECK_RC(parse("{\"type\":\"event\",\"step\":3,\"event\":\"oom\","
			  "\"message\":\"CUDA out of memory\",\"ok\":false,\"free_mb\":12}"), 0);
	TT_CHECK(m.type == MLINE_EVENT && m.ok == 0 && val("free_mb") == 12);
	TT_CHECK_STR(m.event, "oom");
	TT_CHECK_STR(m.message, "CUDA out of memory");
	TT_CHECK_RC(parse("{\"type\":\"event\",\"step\":3,\"event\":\"resumed\",\"ok\":true}"), 0);
	TT_CHECK(m.ok == 1 && m.message == NULL);
}

static void test_malformed(void)
{
	TT_CHECK_STR(WHY(""), "empty line");
	TT_CHECK_STR(WHY(" \t\n"), "empty line");
	TT_CHECK_STR(WHY("{\"step\":1,\"loss\":2.3"), "truncated JSON");
	TT_CHECK_STR(WHY("{\"step\":1,\"scaffold\":\"ab"), "truncated JSON");
	TT_CHECK_STR(WHY("{\"step\":1,\"ok\":tr"), "truncated JSON");
	TT_CHECK_STR(WHY("{\"step\":1,\"x\":\"\xe2\x82"), "truncated JSON");
	TT_CHECK_STR(reason("{\"step\":\0\x01\x02", 11), "binary data");
	TT_CHECK_STR(WHY("\x89PNG\r\n\x1a\n"), "binary data");
	TT_CHECK_STR(WHY("{\"step\":1,\"x\":\"\xff\xfe\"}"), "binary data");
	TT_CHECK_STR(WHY("{\"step\":1 \"loss\":2}"),
		     "invalid JSON: 1:11: expected ',' or '}' after object member");
	TT_CHECK_STR(WHY("{\"step\":1,\"step\":2}"), "invalid JSON: 1:11: duplicate key \"step\"");
	TT_CHECK_STR(WHY("[1,2]"), "not a JSON object (got an array)");
	TT_CHECK_STR(WHY("{\"loss\":1}"), "missing step");
	TT_CHECK_STR(WHY("{\"step\":-1}"), "field step: expected an integer >= 0, got -1");
	TT_CHECK_STR(WHY("{\"step\":1.5}"), "field step: expected an integer >= 0, got 1.5");
	TT_CHECK_STR(WHY("{\"step\":\"3\"}"),
		     "field step: expected an integer >= 0, got a string");
	TT_CHECK_STR(WHY("{\"step\":NaN}"), "field step: expected an integer >= 0, got NaN");
	TT_CHECK_STR(WHY("{\"step\":1e16}"),
		     "field step: expected an integer >= 0, got 10000000000000000");
	TT_CHECK_STR(WHY("{\"step\":1,\"loss\":\"NaN\"}"),
		     "field loss: expected a number, got a string");
	TT_CHECK_STR(WHY("{\"step\":1,\"loss\":true}"), "field loss: expected a number, got a bool");
	TT_CHECK_STR(WHY("{\"step\":1,\"t\":\"now\"}"), "field t: expected a number, got a string");
	TT_CHECK_STR(WHY("{\"step\":1,\"t\":Infinity}"),
		     "field t: expected a finite number, got Infinity");
	TT_CHECK_STR(WHY("{\"type\":\"train\",\"step\":1}"), "field type: unknown line type \"train\"");
	TT_CHECK_STR(WHY("{\"type\":2,\"step\":1}"), "field type: expected a string, got a number");
	TT_CHECK_STR(WHY("{\"step\":1,\"\":2}"),
		     "field : not a valid metric name (1-128 bytes, no control characters)");
	TT_CHECK_STR(WHY("{\"step\":1,\"a\\u0001\":2}"),
		     "field a\\x01: not a valid metric name (1-128 bytes, no control characters)");
	TT_CHECK_STR(WHY("{\"step\":1,\"moe.0.x\":2}"),
		     "field moe.0.x: names starting with \"moe.\" are reserved");
	TT_CHECK_STR(WHY("{\"step\":1,\"scaffold\":7}"),
		     "field scaffold: expected a string, got a number");
	TT_CHECK_STR(WHY("{\"step\":1,\"scaffold\":\"\"}"),
		     "field scaffold: expected a non-empty string");
	TT_CHECK_STR(WHY("{\"type\":\"heartbeat\",\"step\":1,\"loss\":2}"),
		     "field loss: not allowed in a heartbeat line");
	TT_CHECK_STR(WHY("{\"type\":\"checkpoint\",\"step\":1}"), "missing path");
	TT_CHECK_STR(WHY("{\"type\":\"checkpoint\",\"step\":1,\"path\":\"a\\u0000b\"}"),
		     "field path: contains a NUL character");
	TT_CHECK_STR(WHY("{\"type\":\"checkpoint\",\"step\":1,\"path\":\"p\",\"sha256\":\"ABC\"}"),
		     "field sha256: expected 64 lowercase hex digits");
	TT_CHECK_STR(WHY("{\"type\":\"checkpoint\",\"step\":1,\"path\":\"p\",\"bytes\":-5}"),
		     "field bytes: expected an integer >= 0, got -5");
	TT_CHECK_STR(WHY("{\"type\":\"event\",\"step\":1}"), "missing event");
	TT_CHECK_STR(WHY("{\"type\":\"event\",\"step\":1,\"event\":\"x\",\"ok\":1}"),
		     "field ok: expected a bool, got a number");
	TT_CHECK_STR(WHY("{\"type\":\"eval\",\"step\":1,\"moe\":[]}"),
		     "field moe: expected a number, got an array");
	TT_CHECK_STR(WHY("{\"step\":1,\"d\":{\"a\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}}"),
		     "invalid JSON: 1:34: nesting deeper than 16");
}

static void test_moe_errors(void)
{
	TT_CHECK_STR(WHY("{\"step\":1,\"moe\":{}}"), "field moe: expected an array, got an object");
	TT_CHECK_STR(WHY("{\"step\":1,\"moe\":[1]}"),
		     "field moe[0]: expected an object, got a number");
	TT_CHECK_STR(WHY("{\"step\":1,\"moe\":[{\"load\":[1]}]}"), "missing moe[0].layer");
	TT_CHECK_STR(WHY("{\"step\":1,\"moe\":[{\"layer\":-1}]}"),
		     "field moe[0].layer: expected an integer >= 0, got -1");
	TT_CHECK_STR(WHY("{\"step\":1,\"moe\":[{\"layer\":1},{\"layer\":1}]}"),
		     "field moe[1].layer: layers must be strictly increasing (1 after 1)");
	TT_CHECK_STR(WHY("{\"step\":1,\"moe\":[{\"layer\":0,\"load\":1}]}"),
		     "field moe[0].load: expected an array, got a number");
	TT_CHECK_STR(WHY("{\"step\":1,\"moe\":[{\"layer\":0,\"load\":[1,\"x\"]}]}"),
		     "field moe[0].load[1]: expected a number, got a string");
	TT_CHECK_STR(WHY("{\"step\":1,\"moe\":[{\"layer\":0,\"entropy\":\"hi\"}]}"),
		     "field moe[0].entropy: expected a number, got a string");
	TT_CHECK_STR(WHY("{\"step\":1,\"moe\":[{\"layer\":0,\"a\\u0001\":1}]}"),
		     "field moe[0].a\\x01: not a valid metric name");
	TT_CHECK_STR(WHY("{\"step\":1,\"moe\":[{\"layer\":0,\"dead\":false}]}"),
		     "field moe[0].dead: expected a number, got a bool");
	TT_CHECK_RC(parse("{\"step\":1,\"moe\":[{\"layer\":2,\"load\":[null,0.5],\"x\":null}]}"), 0);
	TT_CHECK(m.n_metrics == 1);
	TT_CHECK_STR(m.metrics[0].name, "moe.2.load.1");
}

static void test_line_limit(void)
{
	size_t n = MLINE_MAX_BYTES + 1;
	char *big = malloc(n + 2);
	TT_REQUIRE(big);
	/* exactly 1 MiB of line (plus its newline) still parses */
	memset(big, ' ', n + 1);
	memcpy(big, "{\"step\":1}", 10);
	big[n - 1] = '\n';
	TT_CHECK_RC(mline_parse(&m, big, n), 0);
	big[n - 1] = ' ';
	TT_CHECK_STR(reason(big, n), "line over 1 MiB");
	/* a 1 MiB line of metrics: many names, all flattened */
	size_t o = (size_t)sprintf(big, "{\"step\":1,\"moe\":[{\"layer\":0,\"load\":[");
	size_t k = 0;
	for (; o < MLINE_MAX_BYTES - 100; k++)
		o += (size_t)sprintf(big + o, "0.5,");
	o += (size_t)sprintf(big + o, "1]}]}");
	TT_CHECK_RC(mline_parse(&m, big, o), 0);
	TT_CHECK(m.n_metrics == k + 1 && k > 200000);
	char last[64];
	snprintf(last, sizeof last, "moe.0.load.%zu", k);
	TT_CHECK_STR(m.metrics[m.n_metrics - 1].name, last);
	TT_CHECK_STR(m.metrics[0].name, "moe.0.load.0");
	free(big);
}

/* One mline across lines: the second parse replaces the first. */
static void test_reuse(void)
{
	TT_CHECK_RC(parse("{\"step\":1,\"moe\":[{\"layer\":0,\"load\":[1,2,3,4]}]}"), 0);
	TT_CHECK(m.n_metrics == 4);
	TT_CHECK_RC(parse("{\"type\":\"event\",\"step\":2,\"event\":\"e\"}"), 0);
	TT_CHECK(m.n_metrics == 0 && m.type == MLINE_EVENT);
	TT_CHECK_RC(parse("{\"step\":3,\"moe\":[{\"layer\":9,\"load\":[5]}]}"), 0);
	TT_CHECK(m.n_metrics == 1 && m.event == NULL && m.type == MLINE_STEP);
	TT_CHECK_STR(m.metrics[0].name, "moe.9.load.0");
	/* once grown, the buffers stay put: no allocation per line */
	const char *line = "{\"step\":4,\"loss\":1,\"moe\":[{\"layer\":9,\"load\":[5,6]}]}";
	TT_CHECK_RC(parse(line), 0);
	const void *doc = m.doc_, *metrics = m.metrics, *names = m.names_;
	for (int i = 0; i < 100; i++)
		TT_CHECK_RC(parse(line), 0);
	TT_CHECK(m.doc_ == doc && m.metrics == metrics && m.names_ == names);
	TT_CHECK_STR(m.metrics[2].name, "moe.9.load.1");
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return rng;
}

/* 10,000 seeded lines: random bytes, truncations and byte flips of valid
 * lines, and spliced fragments. None may crash (this runs under ASan); each
 * either parses into consistent fields or fails with TEND_EINVAL. */
static void test_junk(void)
{
	static const char *good[] = {
		"{\"step\":12,\"t\":1.5,\"loss\":2.5,\"moe\":[{\"layer\":0,\"load\":[0.5,0.5],"
		"\"entropy\":0.69}]}",
		"{\"type\":\"checkpoint\",\"step\":1,\"path\":\"c\\u00e9\",\"bytes\":10}",
		"{\"type\":\"event\",\"step\":3,\"event\":\"x\",\"message\":\"\\ud83d\\ude00\",\"ok\":true}",
		"{\"type\":\"eval\",\"step\":4,\"val_loss\":NaN,\"a\":-Infinity}",
		"{\"type\":\"heartbeat\",\"step\":5}",
	};
	static const char *frags[] = {"{", "}", "[", "]", ",", ":", "\"", "\\u", "NaN",
		"-Inf", "1e999", "\"step\"", "\"moe\"", "{\"layer\":", "0", "-", "\xc3",
		"\xff", "\\", "null", " "};
	char buf[512];
	int ok = 0, bad = 0;
	for (int i = 0; i < 10000; i++) {
		size_t len = 0;
		const char *g = good[next() % 5];
		switch (i % 5) {
		case 0: /* random bytes */
			len = next() % 200;
			for (size_t j = 0; j < len; j++)
				buf[j] = (char)next();
			break;
		case 1: /* truncation */
			len = next() % (strlen(g) + 1);
			memcpy(buf, g, len);
			break;
		case 2: /* flips */
			len = strlen(g);
			memcpy(buf, g, len);
			for (int k = 1 + (int)(next() % 3); k > 0; k--)
				buf[next() % len] = (char)next();
			break;
		case 3: /* intact, padded with blanks */
			len = (size_t)sprintf(buf, "%*s%s%*s", (int)(next() % 3), "", g,
					      (int)(next() % 3), "");
			break;
		default: /* fragments */
			for (int k = (int)(next() % 30); k > 0; k--) {
				const char *f = frags[next() % (sizeof frags / sizeof frags[0])];
				memcpy(buf + len, f, strlen(f));
				len += strlen(f);
			}
		}
		int rc = mline_parse(&m, buf, len);
		TT_CHECK(rc == 0 || rc == TEND_EINVAL);
		if (rc == 0) {
			ok++;
			TT_CHECK(m.step >= 0);
			for (size_t j = 0; j < m.n_metrics; j++)
				TT_CHECK(m.metrics[j].name && m.metrics[j].name[0]);
		} else {
			bad++;
			TT_CHECK(m.n_metrics == 0 && strlen(tend_error_last()) > 5);
		}
	}
	fprintf(stderr, "junk: %d parsed, %d malformed\n", ok, bad);
	TT_CHECK(ok > 2000 && bad > 7000);
}

int main(void)
{
	mline_init(&m);
	TT_RUN(test_step_line);
	TT_RUN(test_defaults_and_values);
	TT_RUN(test_other_types);
	TT_RUN(test_malformed);
	TT_RUN(test_moe_errors);
	TT_RUN(test_line_limit);
	TT_RUN(test_reuse);
	TT_RUN(test_junk);
	mline_free(&m);
	mline_free(NULL);
	return TT_DONE();
}
