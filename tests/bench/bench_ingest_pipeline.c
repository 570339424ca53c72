/*
 * bench_ingest_pipeline.c - metrics lines in a file -> a real `tend run`
 * supervisor's ingest (tail, parse, store batch with offsets, monitors)
 * -> the SQLite store, in metric values per second. The run's "trainer"
 * is `sleep`, and its metrics.jsonl (lines as the in-tree trainer writes
 * them for 2 MoE layers x 8 experts: 36 values) is written beforehand;
 * the clock runs from the supervisor's start until the store's committed
 * offset reaches the end of the file. Baseline in the same run: parsing
 * the same lines alone (mline_parse), the pipeline's first stage.
 * Target: >= 500,000 values/s.
 */
#include "e2e.h"
#include "mline.h"

#define LINES 40000

static size_t write_lines(FILE *f, long n, long *values)
{
	size_t bytes = 0;
	for (long s = 1; s <= n; s++) {
		double loss = 6.0 / (1.0 + 0.001 * (double)s) + 0.01 * (double)(s % 7);
		int k = fprintf(f, "{\"type\":\"step\",\"step\":%ld,\"t\":%.3f,\"loss\":%.9g,"
				"\"lr\":%.9g,\"grad_norm\":%.9g,\"tokens_per_s\":%.9g,"
				"\"step_time_s\":%.9g,\"clip\":1,\"moe\":[", s,
				1796000000.0 + 0.05 * (double)s, loss, 3e-4, 1.5 + 0.001 * (s % 13),
				120000.0 + (double)(s % 11) * 100, 0.05);
		for (int l = 0; l < 2; l++) {
			k += fprintf(f, "%s{\"layer\":%d,\"load\":[", l ? "," : "", l);
			for (int e = 0; e < 8; e++)
				k += fprintf(f, "%s%.5g", e ? "," : "", 0.125 + 0.001 * ((s + e) % 5));
			k += fprintf(f, "],\"max_over_mean\":1.04,\"entropy\":2.0794,\"dropped\":0,"
				     "\"tokens\":1024,\"dead\":0,\"aux_loss\":0.0101,"
				     "\"z_loss\":0.0009}");
		}
		k += fprintf(f, "],\"scaffold\":\"4f2a9c1\"}\n");
		bytes += (size_t)k;
	}
	*values = n * (6 + 2 * (8 + 7));
	return bytes;
}

/* Parses every line of the file alone: the baseline. Values per second. */
static double parse_rate(const char *path, long *values)
{
	char *text = e2e_slurp(path);
	mline m;
	long n = 0;
	mline_init(&m);
	double t0 = e2e_now();
	for (char *p = text, *nl; (nl = strchr(p, '\n')); p = nl + 1)
		if (mline_parse(&m, p, (size_t)(nl - p)) == 0)
			n += (long)m.n_metrics;
	double dt = e2e_now() - t0;
	mline_free(&m);
	free(text);
	*values = n;
	return (double)n / dt;
}

/* CPU seconds (user + system) process pid has used so far. */
static double cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return NAN;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* fields after the command name */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return NAN;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long long offset(sqlite3 *db, const char *path)
{
	long long v = e2e_int(db, "SELECT byte_offset FROM ingest_offsets WHERE source = %Q", path);
	return v < 0 ? 0 : v;
}

int main(void)
{
	char ws[PATH_MAX], dir[PATH_MAX + 16], path[PATH_MAX + 32];
	e2e_cfg c = {.run = "  command: [sleep, \"600\"]\n"};
	e2e_proc p;
	long values = 0, parsed = 0;
	int ok = 1;
	if (e2e_setup() < 0 || e2e_workspace(ws, sizeof ws, "ingest", &c) < 0)
		return 1;
	snprintf(dir, sizeof dir, "%s/runs/b", ws);
	snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
	mkdir(dir, 0755);
	FILE *f = fopen(path, "w");
	if (!f)
		return 1;
	size_t bytes = write_lines(f, LINES, &values);
	fclose(f);
	double base = parse_rate(path, &parsed);

	sqlite3 *db = e2e_db(ws);
	double t0 = e2e_now(), t_first = 0;
	if (e2e_spawnv(&p, ws, "run", (const char *const[]){"run", "b", "--no-status", NULL}) < 0)
		return 1;
	long long off = 0;
	while (off < (long long)bytes && e2e_now() - t0 < 300) {
		e2e_sleep(0.002);
		off = offset(db, path);
		if (off > 0 && t_first == 0)
			t_first = e2e_now();
	}
	double t1 = e2e_now(), cpu = cpu_s(p.pid);
	e2e_proc stop;
	e2e_tend(&stop, ws, "stop", 60, "stop", "--now");
	e2e_wait(&p, 60);
	long long rows = e2e_int(db, "SELECT count(*) FROM metrics m JOIN runs r ON "
				 "r.id = m.run_id WHERE r.name = 'b'");
	sqlite3_close(db);

	double rate = (double)values / (t1 - t0);
	double steady = t_first > 0 && t1 > t_first ? (double)values / (t1 - t_first) : 0;
	printf("bench_ingest_pipeline: %d lines, %ld values, %.1f MB of metrics.jsonl\n",
	       LINES, values, (double)bytes / 1e6);
	printf("  supervisor start -> all committed: %.3f s = %.0f values/s (%.0f lines/s)\n",
	       t1 - t0, rate, LINES / (t1 - t0));
	printf("  first commit -> all committed:     %.3f s = %.0f values/s\n", t1 - t_first,
	       steady);
	printf("  supervisor CPU time:                %.3f s = %.0f values per CPU second "
	       "(%.0f%% of the wall time: the rest is waiting for a core or the disk)\n", cpu,
	       (double)values / cpu, 100 * cpu / (t1 - t0));
	printf("  baseline, mline_parse alone:        %.0f values/s\n", base);
	printf("  ratio pipeline / parse alone:       %.3f\n", rate / base);
	printf("  target >= 500000 values/s: %s\n", rate >= 500000 ? "met" : "NOT met");
	if (off != (long long)bytes || rows != values || parsed != values) {
		printf("  ERROR: offset %lld of %zu bytes, %lld rows of %ld values\n", off, bytes,
		       rows, values);
		ok = 0;
	}
	e2e_kill_trainer(ws, "b");
	e2e_teardown();
	return ok ? 0 : 1;
}
