/*
 * render.c - sparklines, tables, durations, times and numbers as terminal
 * text (render.h). Everything here formats; nothing reads the store.
 */
#include "render.h"
#include "tend.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- sparklines ------------------------------------------------------- */

static const char *const bars[8] = {
	"\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588",
};

int rnd_spark_col(size_t i, size_t n, int width)
{
	size_t cols = n < (size_t)width ? n : (size_t)width;
	if (n == 0 || width <= 0)
		return 0;
	return (int)((double)i * (double)cols / (double)n);
}

/* Column means into mean[] (count[] is scratch), bad[] set where a
 * column holds a non-finite value. Every column gets at least one value
 * because a value's column grows by at most one from one value to the
 * next. */
static void spark_means(double *mean, size_t *count, char *bad,
			const double *v, size_t n, int width, int cols)
{
	for (int c = 0; c < cols; c++)
		mean[c] = 0, count[c] = 0, bad[c] = 0;
	for (size_t i = 0; i < n; i++) {
		int c = rnd_spark_col(i, n, width);
		if (!isfinite(v[i]))
			bad[c] = 1;
		else
			mean[c] += v[i], count[c]++;
	}
	for (int c = 0; c < cols; c++)
		if (count[c])
			mean[c] /= (double)count[c];
}

static const char *spark_glyph(double mean, int bad, double lo, double hi)
{
	if (bad)
		return "!";
	/* A flat line sits in the middle rather than on the floor. */
	int k = hi > lo ? (int)lround((mean - lo) / (hi - lo) * 7) : 3;
	return bars[k < 0 ? 0 : k > 7 ? 7 : k];
}

int rnd_sparkline(char *out, size_t cap, const double *v, size_t n, int width)
{
	int cols = n < (size_t)(width > 0 ? width : 0) ? (int)n : width;
	if (cap == 0)
		return -1;
	out[0] = '\0';
	if (cols <= 0)
		return 0;
	if (cap < RND_SPARK_CAP(cols))
		return -1;
	double *mean = malloc((size_t)cols * (sizeof *mean + sizeof(size_t) + 1));
	if (!mean)
		return -1;
	size_t *count = (size_t *)(mean + cols);
	char *bad = (char *)(count + cols);
	spark_means(mean, count, bad, v, n, width, cols);
	double lo = INFINITY, hi = -INFINITY;
	for (int c = 0; c < cols; c++)
		if (!bad[c]) {
			lo = mean[c] < lo ? mean[c] : lo;
			hi = mean[c] > hi ? mean[c] : hi;
		}
	size_t len = 0;
	for (int c = 0; c < cols; c++) {
		const char *g = spark_glyph(mean[c], bad[c], lo, hi);
		size_t gl = strlen(g);
		memcpy(out + len, g, gl);
		len += gl;
	}
	out[len] = '\0';
	free(mean);
	return cols;
}

/* ---- tables ----------------------------------------------------------- */

struct rnd_table {
	int ncols;
	char **cells;    /* row-major, headers first */
	size_t n, cap;   /* cells used / allocated */
	char align[16];
};

int rnd_table_new(rnd_table **out, int ncols, const char *const *headers,
		  const char *align)
{
	rnd_table *t = calloc(1, sizeof *t);
	*out = NULL;
	if (!t || ncols <= 0 || ncols >= (int)sizeof t->align) {
		free(t);
		return tend_error_set(TEND_ENOMEM, "table: out of memory");
	}
	t->ncols = ncols;
	for (int i = 0; i < ncols; i++)
		t->align[i] = align && align[i] == 'r' ? 'r' : 'l';
	for (int i = 0; i < ncols; i++)
		if (rnd_table_cell(t, "%s", headers[i]) < 0) {
			rnd_table_free(t);
			return TEND_ENOMEM;
		}
	*out = t;
	return 0;
}

void rnd_table_free(rnd_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

int rnd_table_cell(rnd_table *t, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		char **c = realloc(t->cells, cap * sizeof *c);
		if (!c)
			return tend_error_set(TEND_ENOMEM, "table: out of memory");
		t->cells = c;
		t->cap = cap;
	}
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return tend_error_set(TEND_ENOMEM, "table: out of memory");
	t->cells[t->n++] = s;
	return 0;
}

size_t rnd_table_rows(const rnd_table *t)
{
	size_t cells = t->n - (size_t)t->ncols;
	return (cells + (size_t)t->ncols - 1) / (size_t)t->ncols;
}

void rnd_table_print(FILE *f, const rnd_table *t)
{
	size_t w[16] = {0};
	for (size_t i = 0; i < t->n; i++) {
		size_t c = i % (size_t)t->ncols, cw = rnd_width(t->cells[i]);
		w[c] = cw > w[c] ? cw : w[c];
	}
	for (size_t i = 0; i < t->n; i++) {
		int c = (int)(i % (size_t)t->ncols);
		bool last = c == t->ncols - 1 || i + 1 == t->n;
		int pad = (int)(w[c] - rnd_width(t->cells[i]));
		if (t->align[c] == 'r')
			fprintf(f, "%*s%s", pad, "", t->cells[i]);
		else
			fprintf(f, "%s%*s", t->cells[i], last ? 0 : pad, "");
		fputs(last ? "\n" : "  ", f);
	}
}

/* ---- text ------------------------------------------------------------- */

size_t rnd_width(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		n += (*p & 0xc0) != 0x80;
	return n;
}

const char *rnd_duration(char *out, size_t cap, double s)
{
	if (!isfinite(s) || s < 0)
		snprintf(out, cap, "-");
	else if (s < 1)
		snprintf(out, cap, "%.0fms", s * 1000);
	else if (s < 60)
		snprintf(out, cap, "%.0fs", floor(s));
	else if (s < 3600)
		snprintf(out, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
	else if (s < 86400)
		snprintf(out, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s, 3600) / 60);
	else
		snprintf(out, cap, "%dd%02dh", (int)(s / 86400), (int)fmod(s, 86400) / 3600);
	return out;
}

const char *rnd_time(char *out, size_t cap, double epoch_s)
{
	struct tm tm;
	time_t t = (time_t)epoch_s;
	if (!isfinite(epoch_s) || epoch_s <= 0 || !localtime_r(&t, &tm) ||
	    strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, cap, "-");
	return out;
}

const char *rnd_num(char *out, size_t cap, double v, int digits, int missing)
{
	if (isnan(v))
		snprintf(out, cap, "%s", missing ? "-" : "NaN");
	else if (isinf(v))
		snprintf(out, cap, "%s", v > 0 ? "inf" : "-inf");
	else
		snprintf(out, cap, "%.*g", digits, v);
	return out;
}

const char *rnd_exact(char *out, size_t cap, double v)
{
	if (!isfinite(v)) {
		snprintf(out, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
		return out;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, cap, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			break;
	}
	return out;
}

const char *rnd_percent(char *out, size_t cap, double ratio)
{
	if (!isfinite(ratio))
		snprintf(out, cap, "-");
	else
		snprintf(out, cap, "%.1f%%", ratio * 100);
	return out;
}

int rnd_json_num(jbuf *b, double v)
{
	if (isnan(v))
		return jbuf_null(b);
	if (isinf(v))
		return jbuf_str(b, v > 0 ? "inf" : "-inf");
	return jbuf_num(b, v);
}

int rnd_json_out(FILE *f, const jbuf *b)
{
	size_t len = 0;
	const char *text = jbuf_cstr(b, &len);
	if (b->err)
		return tend_error_set(b->err, "writing JSON: out of memory");
	fwrite(text, 1, len, f);
	fputc('\n', f);
	return 0;
}
