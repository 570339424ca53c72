/*
 * test_render.c - the rendering helpers the inspection commands and the
 * dashboard share (supervisor/render.h): sparklines (scaling, downsampling
 * by mean, '!' for non-finite values), tables, durations, numbers, and
 * JSON numbers that stay strict JSON.
 */
#include "json.h"
#include "render.h"
#include "tend.h"
#include "tt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void test_sparkline_levels(void)
{
	double v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	char out[RND_SPARK_CAP(60)];
	TT_CHECK(rnd_sparkline(out, sizeof out, v, 8, 60) == 8);
	TT_CHECK_STR(out, "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588");

	double flat[3] = {2, 2, 2};
	TT_CHECK(rnd_sparkline(out, sizeof out, flat, 3, 60) == 3);
	TT_CHECK_STR(out, "\u2584\u2584\u2584");

	double bad[4] = {1, NAN, INFINITY, 3};
	TT_CHECK(rnd_sparkline(out, sizeof out, bad, 4, 60) == 4);
	TT_CHECK_STR(out, "\u2581!!\u2588");

	TT_CHECK(rnd_sparkline(out, sizeof out, v, 0, 60) == 0);
	TT_CHECK_STR(out, "");
	TT_CHECK(rnd_sparkline(out, 10, v, 8, 60) == -1);
}

static void test_sparkline_downsamples(void)
{
	/* 120 values in 60 columns: two per column, by mean. A NaN marks
	 * only its own column. */
	double v[120];
	char out[RND_SPARK_CAP(60)];
	for (int i = 0; i < 120; i++)
		v[i] = i;
	v[57] = NAN;
	TT_CHECK(rnd_sparkline(out, sizeof out, v, 120, 60) == 60);
	TT_CHECK(rnd_width(out) == 60);
	TT_CHECK(strncmp(out, "\u2581", 3) == 0);
	TT_CHECK(strcmp(out + strlen(out) - 3, "\u2588") == 0);
	const char *bang = strchr(out, '!');
	TT_REQUIRE(bang);
	TT_CHECK(rnd_width(bang) == 60 - 28); /* column 28 holds 56 and 57 */
	TT_CHECK(strchr(bang + 1, '!') == NULL);
	TT_CHECK(rnd_spark_col(57, 120, 60) == 28);
	TT_CHECK(rnd_spark_col(119, 120, 60) == 59);
	TT_CHECK(rnd_spark_col(5, 8, 60) == 5);

	/* 7 values in 3 columns: the columns hold 3, 2 and 2 values (a
	 * value's column is i * 3 / 7); their means 1, 3.5 and 5.5. */
	double w[7] = {0, 1, 2, 3, 4, 5, 6};
	TT_CHECK(rnd_sparkline(out, sizeof out, w, 7, 3) == 3);
	TT_CHECK_STR(out, "\u2581\u2585\u2588");
}

static void test_table(void)
{
	static const char *const head[] = {"NAME", "N", "NOTE"};
	rnd_table *t = NULL;
	char *text = NULL;
	size_t len = 0;
	TT_REQUIRE(rnd_table_new(&t, 3, head, "lrl") == 0);
	rnd_table_cell(t, "r1");
	rnd_table_cell(t, "%d", 120);
	rnd_table_cell(t, "caf\u00e9");
	rnd_table_cell(t, "longer");
	rnd_table_cell(t, "%d", 5);
	rnd_table_cell(t, "x");
	TT_CHECK(rnd_table_rows(t) == 2);
	FILE *f = open_memstream(&text, &len);
	rnd_table_print(f, t);
	fclose(f);
	TT_CHECK_STR(text, "NAME      N  NOTE\n"
			   "r1      120  caf\u00e9\n"
			   "longer    5  x\n");
	free(text);
	rnd_table_free(t);
	rnd_table_free(NULL);
}

static void test_text(void)
{
	char b[64];
	TT_CHECK_STR(rnd_duration(b, sizeof b, 0.25), "250ms");
	TT_CHECK_STR(rnd_duration(b, sizeof b, 42.9), "42s");
	TT_CHECK_STR(rnd_duration(b, sizeof b, 725), "12m05s");
	TT_CHECK_STR(rnd_duration(b, sizeof b, 11040), "3h04m");
	TT_CHECK_STR(rnd_duration(b, sizeof b, 183600), "2d03h");
	TT_CHECK_STR(rnd_duration(b, sizeof b, NAN), "-");
	TT_CHECK_STR(rnd_duration(b, sizeof b, -1), "-");
	TT_CHECK_STR(rnd_time(b, sizeof b, 0), "-");
	setenv("TZ", "UTC", 1);
	tzset();
	TT_CHECK_STR(rnd_time(b, sizeof b, 1764460800.7), "2025-11-30 00:00:00");
	TT_CHECK_STR(rnd_num(b, sizeof b, 2.2721540, 5, 0), "2.2722");
	TT_CHECK_STR(rnd_num(b, sizeof b, NAN, 5, 0), "NaN");
	TT_CHECK_STR(rnd_num(b, sizeof b, NAN, 5, 1), "-");
	TT_CHECK_STR(rnd_num(b, sizeof b, -INFINITY, 5, 1), "-inf");
	TT_CHECK_STR(rnd_exact(b, sizeof b, 0.1), "0.1");
	TT_CHECK(strtod(rnd_exact(b, sizeof b, 1.0 / 3), NULL) == 1.0 / 3);
	TT_CHECK_STR(rnd_exact(b, sizeof b, NAN), "nan");
	TT_CHECK_STR(rnd_percent(b, sizeof b, 0.6), "60.0%");
	TT_CHECK_STR(rnd_percent(b, sizeof b, NAN), "-");
	TT_CHECK(rnd_width("a\u2581\u00e9") == 3);
}

static void test_json_num(void)
{
	jbuf b;
	json_doc *doc = NULL;
	jbuf_init(&b);
	jbuf_arr_open(&b);
	rnd_json_num(&b, 1.5);
	rnd_json_num(&b, NAN);
	rnd_json_num(&b, INFINITY);
	rnd_json_num(&b, -INFINITY);
	jbuf_arr_close(&b);
	TT_CHECK_STR(jbuf_cstr(&b, NULL), "[1.5,null,\"inf\",\"-inf\"]");
	TT_CHECK_RC(json_parse(&doc, jbuf_cstr(&b, NULL), b.len, NULL), 0);
	json_doc_free(doc);
	jbuf_free(&b);
}

int main(void)
{
	TT_RUN(test_sparkline_levels);
	TT_RUN(test_sparkline_downsamples);
	TT_RUN(test_table);
	TT_RUN(test_text);
	TT_RUN(test_json_num);
	return TT_DONE();
}
