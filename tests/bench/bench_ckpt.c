/*
 * bench_ckpt.c - checkpoint write and read speed for a GPT-2 124M-sized
 * training state (params + Adam m + v = 3 x 124,475,904 floats, 1.49 GB),
 * each next to the raw system calls on the same bytes in the same run:
 *
 *   raw write+fsync   write(2) of the three arrays into one file, fsync
 *   ckpt_write        the same arrays as a checkpoint (hash, write, fsync,
 *                     rename, fsync dir)
 *   raw read          read(2) of the raw file after dropping it from cache
 *   ckpt_open         map + verify SHA-256 + table, after dropping it too
 *   sha256            hashing the bytes in memory: the floor under both
 *
 * usage: bench_ckpt [SCALE]   SCALE (default 1) shrinks the state, e.g. 0.25.
 * The files go to a fresh directory under $TMPDIR (or /tmp), removed after.
 */
#include "ckpt.h"
#include "fsutil.h"
#include "sha256.h"
#include "tend.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GPT2_124M_PARAMS 124475904UL /* llm.c, vocabulary padded to 50304 */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Evicts path's (clean, fsynced) pages so the next read comes from disk. */
static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

static double raw_write(const char *path, float *const sec[3], size_t n)
{
	double t = now();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	for (int s = 0; s < 3; s++) {
		const char *p = (const char *)sec[s];
		for (size_t left = n * 4; left;) {
			ssize_t w = write(fd, p, left < (8u << 20) ? left : (8u << 20));
			if (w <= 0) {
				close(fd);
				return -1;
			}
			p += w;
			left -= (size_t)w;
		}
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		return -1;
	return now() - t;
}

static double raw_read(const char *path, char *buf, size_t cap)
{
	double t = now();
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r = read(fd, buf, cap);
		if (r < 0) {
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
	}
	close(fd);
	return now() - t;
}

static void row(const char *what, double secs, double mb, double base)
{
	printf("  %-18s %8.2f s %9.1f MB/s", what, secs, mb / secs);
	if (base > 0)
		printf("   %.2fx of raw", (mb / secs) / base);
	putchar('\n');
}

int main(int argc, char **argv)
{
	double scale = argc > 1 ? atof(argv[1]) : 1.0;
	size_t n = (size_t)((double)GPT2_124M_PARAMS * scale);
	char dir[512], raw[600], ck[600];
	float *sec[3] = {0};
	ckpt_writer *w = NULL;
	ckpt *c = NULL;
	int rc = 1;
	const char *tmp = getenv("TMPDIR");

	if (scale <= 0 || scale > 4) {
		fprintf(stderr, "usage: bench_ckpt [SCALE in (0, 4]]\n");
		return 2;
	}
	snprintf(dir, sizeof dir, "%s/tend-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(raw, sizeof raw, "%s/raw.bin", dir);
	ckpt_path(ck, sizeof ck, dir, 1);
	double mb = 3.0 * (double)n * 4 / 1e6;
	printf("bench_ckpt: 3 x %zu floats = %.1f MB (scale %g of GPT-2 124M "
	       "params + Adam m + v)\n", n, mb, scale);
	for (int s = 0; s < 3; s++) {
		if (!(sec[s] = malloc(n * sizeof(float)))) {
			fprintf(stderr, "out of memory\n");
			goto done;
		}
		for (size_t i = 0; i < n; i++)
			sec[s][i] = (float)(i % 1000) * 0.001f * (float)(s + 1);
	}

	double t_raw = raw_write(raw, sec, n);
	if (t_raw < 0) {
		perror("raw write");
		goto done;
	}
	double base_w = mb / t_raw;
	row("raw write+fsync", t_raw, mb, 0);

	double t = now();
	if (ckpt_writer_new(&w, 1) < 0 || ckpt_writer_config(w, "n_layer=12\n") < 0 ||
	    ckpt_writer_add(w, "params", sec[0], n) < 0 ||
	    ckpt_writer_add(w, "adam_m", sec[1], n) < 0 ||
	    ckpt_writer_add(w, "adam_v", sec[2], n) < 0 || ckpt_write(w, ck) < 0) {
		fprintf(stderr, "ckpt_write: %s\n", tend_error_last());
		goto done;
	}
	row("ckpt_write", now() - t, mb, base_w);

	drop_cache(raw);
	double t_read = raw_read(raw, (char *)sec[0], n * sizeof(float));
	double base_r = mb / t_read;
	row("raw read", t_read, mb, 0);

	drop_cache(ck);
	t = now();
	if (ckpt_open(&c, ck) < 0) {
		fprintf(stderr, "ckpt_open: %s\n", tend_error_last());
		goto done;
	}
	row("ckpt_open+verify", now() - t, mb, base_r);

	sha256_ctx h;
	uint8_t d[32];
	t = now();
	sha256_init(&h);
	for (int s = 0; s < 3; s++)
		sha256_update(&h, sec[s], n * sizeof(float));
	sha256_final(&h, d);
	row("sha256 in memory", now() - t, mb, 0);
	rc = 0;
done:
	ckpt_free(c);
	ckpt_writer_free(w);
	for (int s = 0; s < 3; s++)
		free(sec[s]);
	fsu_rm_rf(dir);
	return rc;
}
