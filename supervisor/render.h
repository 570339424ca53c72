/*
 * render.h - turning figures into terminal text, shared by the inspection
 * commands (`tend runs`, `status`, `report`, ...) and the dashboard:
 * Unicode sparklines, aligned tables, durations and times, numbers, and
 * JSON numbers that stay strict JSON when a value is not finite.
 */
#ifndef RENDER_H
#define RENDER_H

#include "json.h"

#include <stddef.h>
#include <stdio.h>

/* ---- sparklines ------------------------------------------------------- */

/* Bytes a sparkline of width columns needs, NUL included. */
#define RND_SPARK_CAP(width) ((size_t)(width) * 3 + 1)

/* Draws v[0..n) as a sparkline of at most width columns (one per value
 * when n <= width): value i falls in column rnd_spark_col(i, n, width),
 * each column shows the mean of its values scaled between the smallest and
 * largest column mean as one of ▁▂▃▄▅▆▇█, and a column holding any
 * non-finite value shows '!'. Writes UTF-8 into out (cap bytes, at least
 * RND_SPARK_CAP(width)); returns the number of columns drawn, 0 when n or
 * width is 0, or -1 when cap is too small (out is then ""). */
int rnd_sparkline(char *out, size_t cap, const double *v, size_t n, int width);

/* The column value i of n falls in, for marks drawn under a sparkline. */
int rnd_spark_col(size_t i, size_t n, int width);

/* ---- tables ----------------------------------------------------------- */

typedef struct rnd_table rnd_table;

/* A table with ncols columns: headers[i] names column i and align[i] is
 * 'l' or 'r'. Free with rnd_table_free. Returns 0 or TEND_ENOMEM. */
int rnd_table_new(rnd_table **out, int ncols, const char *const *headers,
		  const char *align);
void rnd_table_free(rnd_table *t);

/* Appends one cell (printf-style) to the current row; a row is complete
 * after ncols cells and the next cell starts a new one. 0 or TEND_ENOMEM. */
int rnd_table_cell(rnd_table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Rows added so far (a partial row counts). */
size_t rnd_table_rows(const rnd_table *t);

/* Prints the header and rows, columns padded to their widest cell (in
 * characters, UTF-8 aware) and separated by two spaces; the last column is
 * not padded. */
void rnd_table_print(FILE *f, const rnd_table *t);

/* ---- text ------------------------------------------------------------- */

/* Characters (UTF-8 code points) in s. */
size_t rnd_width(const char *s);

/* A duration: "850ms", "42s", "12m05s", "3h04m", "2d03h"; "-" when s is
 * negative or not finite. Returns out. */
const char *rnd_duration(char *out, size_t cap, double s);

/* A wall time (seconds since the epoch) as local "YYYY-mm-dd HH:MM:SS";
 * "-" for 0 or a non-finite value. Returns out. */
const char *rnd_time(char *out, size_t cap, double epoch_s);

/* A number as "%.*g" with digits significant digits; "NaN", "inf",
 * "-inf" when not finite, "-" when missing is set and v is NaN. */
const char *rnd_num(char *out, size_t cap, double v, int digits, int missing);

/* A number with the fewest digits (15..17) that read back as the same
 * double; "nan", "inf", "-inf" when not finite. Returns out. */
const char *rnd_exact(char *out, size_t cap, double v);

/* A ratio in [0, 1] as a percentage "87.5%"; "-" when not finite. */
const char *rnd_percent(char *out, size_t cap, double ratio);

/* A JSON number that stays strict JSON: NaN as null, infinities as the
 * strings "inf" and "-inf" (the monitors' evidence does the same). */
int rnd_json_num(jbuf *b, double v);

/* Writes the text of b and a newline to f; returns 0, or b's error. */
int rnd_json_out(FILE *f, const jbuf *b);

#endif
