/*
 * bench_mline.c - metrics line parsing speed: mline_parse over realistic
 * step lines (a 2-layer, 8-expert moe array; 33 metrics a line, numbers as
 * Python writes float32 values: up to 17 significant digits), next to a
 * plain memchr newline scan of the same buffer as the ceiling.
 *
 * usage: bench_mline [LINES]   (default 1,000,000)
 * 10,000 distinct lines (about 7 MB) are generated once and parsed over and
 * over until LINES lines have been parsed.
 */
#include "clock.h"
#include "json.h"
#include "mline.h"
#include "tend.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DISTINCT 10000

static uint64_t rng = 0x2545f4914f6cdd1dull;

/* A float32 value in [lo, hi), widened as torch's .item() widens it. */
static double f32(double lo, double hi)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (double)(float)(lo + (hi - lo) * (double)(rng >> 11) / 9007199254740992.0);
}

static void moe_layer(jbuf *b, int layer)
{
	double load[8], sum = 0;
	for (int e = 0; e < 8; e++)
		sum += load[e] = f32(0.5, 1.5);
	jbuf_obj_open(b);
	jbuf_key(b, "layer");
	jbuf_int(b, layer);
	jbuf_key(b, "load");
	jbuf_arr_open(b);
	for (int e = 0; e < 8; e++)
		jbuf_num(b, (double)(float)(load[e] / sum));
	jbuf_arr_close(b);
	const char *keys[] = {"max_over_mean", "entropy", "aux_loss", "z_loss"};
	for (int k = 0; k < 4; k++) {
		jbuf_key(b, keys[k]);
		jbuf_num(b, f32(0.001, 2.0));
	}
	jbuf_key(b, "dropped");
	jbuf_int(b, (int64_t)(f32(0, 50)));
	jbuf_key(b, "dead");
	jbuf_int(b, 0);
	jbuf_obj_close(b);
}

static void step_line(jbuf *b, int step)
{
	jbuf_reset(b);
	jbuf_obj_open(b);
	jbuf_key(b, "step");
	jbuf_int(b, step);
	jbuf_key(b, "t");
	jbuf_num(b, 1764460800.0 + step * 0.25123);
	const char *keys[] = {"loss", "lr", "grad_norm", "tokens_per_s", "step_time_s"};
	const double lo[] = {1.5, 1e-5, 0.1, 50000, 0.1}, hi[] = {4, 6e-4, 3, 200000, 0.5};
	for (int k = 0; k < 5; k++) {
		jbuf_key(b, keys[k]);
		jbuf_num(b, f32(lo[k], hi[k]));
	}
	jbuf_key(b, "moe");
	jbuf_arr_open(b);
	moe_layer(b, 0);
	moe_layer(b, 1);
	jbuf_arr_close(b);
	jbuf_obj_close(b);
}

/* DISTINCT lines, each ending in '\n', in one buffer. */
static char *make_lines(size_t *len)
{
	jbuf line;
	size_t cap = 1 << 20, used = 0;
	char *buf = malloc(cap);
	jbuf_init(&line);
	for (int i = 0; buf && i < DISTINCT; i++) {
		size_t n;
		step_line(&line, i);
		const char *s = jbuf_cstr(&line, &n);
		while (used + n + 1 > cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb)
				free(buf);
			buf = nb;
			if (!buf)
				break;
		}
		if (!buf)
			break;
		memcpy(buf + used, s, n);
		used += n;
		buf[used++] = '\n';
	}
	jbuf_free(&line);
	*len = used;
	return buf;
}

/* CPU seconds of this process: on a shared machine, wall time also counts
 * the other programs' turns. Both are printed. */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	long want = argc > 1 ? atol(argv[1]) : 1000000;
	size_t len;
	char *buf = make_lines(&len);
	mline m;
	if (!buf || want <= 0) {
		fprintf(stderr, "bench_mline: setup failed\n");
		return 1;
	}
	mline_init(&m);
	long rounds = (want + DISTINCT - 1) / DISTINCT, lines = 0;
	uint64_t values = 0, t0 = tend_mono_ns();
	double c0 = cpu_s();
	for (long r = 0; r < rounds; r++)
		for (const char *p = buf, *end = buf + len; p < end;) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			if (mline_parse(&m, p, (size_t)(nl - p)) < 0) {
				fprintf(stderr, "bench_mline: %s\n", tend_error_last());
				return 1;
			}
			values += m.n_metrics;
			lines++;
			p = nl + 1;
		}
	double parse_s = cpu_s() - c0, parse_wall = (double)(tend_mono_ns() - t0) * 1e-9;

	long scanned = 0;
	t0 = tend_mono_ns();
	c0 = cpu_s();
	/* the scan is fast: ten times the rounds, for a steadier clock */
	for (long r = 0; r < rounds * 10; r++)
		for (const char *p = buf, *end = buf + len; p < end; scanned++) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			p = nl + 1;
		}
	double scan_s = (cpu_s() - c0) / 10, scan_wall = (double)(tend_mono_ns() - t0) * 1e-10;
	scanned /= 10;
	double bytes = (double)len * (double)rounds;

	printf("bench_mline: %ld lines (%.0f bytes/line, %.1f metrics/line); CPU time\n",
	       lines, (double)len / DISTINCT, (double)values / (double)lines);
	printf("  mline_parse:  %.3f s (wall %.3f)  %.2f M values/s  %.0f k lines/s  %.0f MB/s\n",
	       parse_s, parse_wall, (double)values / parse_s * 1e-6,
	       (double)lines / parse_s * 1e-3, bytes / parse_s * 1e-6);
	printf("  memchr scan:  %.3f s (wall %.3f)  %.0f k lines/s  %.0f MB/s\n", scan_s,
	       scan_wall, (double)scanned / scan_s * 1e-3, bytes / scan_s * 1e-6);
	printf("  ratio: parse takes %.0fx the time of the newline scan\n", parse_s / scan_s);
	mline_free(&m);
	free(buf);
	return scanned == lines ? 0 : 1;
}
