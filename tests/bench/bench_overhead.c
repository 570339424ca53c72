/*
 * bench_overhead.c - what supervision costs the trainer: the in-tree
 * trainer's step time alone (`tend train`) and under `tend run` (ingest
 * every 20 ms, monitors, status ticks), same model, same steps, runs
 * interleaved A B B A ... so drift in the machine's load hits both alike.
 * Step time is the trainer's own step_time_s (median over the run's steps
 * after 10 warm-up steps); the wall time of each run is shown beside it.
 * On a shared machine those swing by tens of percent from run to run, so
 * the supervisor's CPU time over its trainer's (both sampled from /proc
 * during the supervised runs) is printed too: the load supervision adds.
 * Target: supervised <= 1% slower.
 */
#include "e2e.h"

#define PAIRS 3
#define STEPS 100

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median step_time_s of a metrics file's step lines past step 10. */
static double median_step(const char *path)
{
	static double v[100000];
	char *text = e2e_slurp(path);
	size_t n = 0;
	for (char *p = text; (p = strstr(p, "\"step\":")) && n < 100000; p++) {
		long step = atol(p + 7);
		char *eol = strchr(p, '\n'), *st = strstr(p, "\"step_time_s\":");
		if (!eol || !st || st > eol || step <= 10)
			continue;
		v[n++] = atof(st + 14);
		p = eol;
	}
	free(text);
	if (n == 0)
		return NAN;
	qsort(v, n, sizeof v[0], cmp);
	return v[n / 2];
}

/* CPU seconds (user + system) process pid has used so far; NAN if gone. */
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
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return NAN;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Runs `tend run name` to its end, sampling the CPU time of the
 * supervisor and of its trainer every 20 ms. */
static int supervised_run(const char *ws, const char *name, double *sup_cpu, double *trn_cpu)
{
	e2e_proc p;
	int st;
	*sup_cpu = *trn_cpu = 0;
	if (e2e_spawnv(&p, ws, name, (const char *const[]){"run", name, "--no-status", NULL}) < 0)
		return -1;
	while (waitpid(p.pid, &st, WNOHANG) == 0) {
		pid_t t = 0;
		double c = cpu_s(p.pid);
		if (c > *sup_cpu)
			*sup_cpu = c;
		if (e2e_trainer_alive(ws, name, &t) && t > 1 && (c = cpu_s(t)) > *trn_cpu)
			*trn_cpu = c;
		e2e_sleep(0.02);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double median(double *x, int n)
{
	qsort(x, (size_t)n, sizeof x[0], cmp);
	return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

int main(void)
{
	char ws[PATH_MAX], path[PATH_MAX + 64], name[32], dir[PATH_MAX + 32];
	e2e_cfg c = {.steps = STEPS, .ckpt_every = 100, .monitors = "",
		.trainer = "  layers: 2\n  d_model: 64\n  heads: 4\n  context: 64\n"
			   "  batch: 8\n  experts: 4\n  top_k: 2\n"};
	double alone[PAIRS], sup[PAIRS], wall_a[PAIRS], wall_s[PAIRS];
	double cpu_sup[PAIRS], cpu_trn[PAIRS], cpu_ratio[PAIRS];
	e2e_proc p;
	int ok = 1;
	if (e2e_setup() < 0 || e2e_workspace(ws, sizeof ws, "ovh", &c) < 0)
		return 1;
	for (int i = 0; i < 2 * PAIRS; i++) {
		int k = i / 2;
		bool supervised = (i % 4 == 1 || i % 4 == 2); /* A B B A */
		double t0 = e2e_now();
		int rc;
		if (supervised) {
			snprintf(name, sizeof name, "sup%d", k);
			rc = supervised_run(ws, name, &cpu_sup[k], &cpu_trn[k]);
		} else {
			snprintf(name, sizeof name, "alone%d", k);
			snprintf(dir, sizeof dir, "%s/runs/%s", ws, name);
			rc = e2e_tend(&p, ws, name, 600, "train", "--run-dir", dir);
		}
		double wall = e2e_now() - t0;
		snprintf(path, sizeof path, "%s/runs/%s/metrics.jsonl", ws, name);
		double st = median_step(path);
		if (rc != 0 || isnan(st)) {
			fprintf(stderr, "bench_overhead: %s: exit %d\n", name, rc);
			ok = 0;
		}
		(supervised ? sup : alone)[k] = st;
		(supervised ? wall_s : wall_a)[k] = wall;
		fprintf(stderr, "  %-7s median step %.3f ms, wall %.2f s\n", name, st * 1e3, wall);
		if (supervised)
			fprintf(stderr, "          CPU: supervisor %.2f s, trainer %.2f s\n",
				cpu_sup[k], cpu_trn[k]);
	}
	for (int k = 0; k < PAIRS; k++)
		cpu_ratio[k] = cpu_sup[k] / cpu_trn[k];
	double ma = median(alone, PAIRS), ms = median(sup, PAIRS);
	double mc = median(cpu_ratio, PAIRS);
	double wa = median(wall_a, PAIRS), wsu = median(wall_s, PAIRS);
	printf("bench_overhead: %d steps x %d runs each, 2x64 MoE model, 1 thread\n", STEPS,
	       PAIRS);
	printf("  median step time alone %.3f ms, supervised %.3f ms\n", ma * 1e3, ms * 1e3);
	printf("  ratio supervised / alone (step time): %.4f (%+.2f%%)\n", ms / ma,
	       100 * (ms / ma - 1));
	printf("  median wall alone %.2f s, supervised %.2f s, ratio %.4f (start-up, checkpoints "
	       "and the supervisor's set-up included)\n", wa, wsu, wsu / wa);
	printf("  supervisor CPU / trainer CPU over a supervised run: %.4f (%.2f%%; the load "
	       "supervision adds, robust to the machine's noise)\n", mc, 100 * mc);
	printf("  target <= 1%% slower: step time %s, CPU %s\n", ms / ma <= 1.01 ? "met" : "NOT met",
	       mc <= 0.01 ? "met" : "NOT met");
	for (int k = 0; k < PAIRS; k++) {
		snprintf(name, sizeof name, "sup%d", k);
		e2e_kill_trainer(ws, name);
	}
	e2e_teardown();
	return ok ? 0 : 1;
}
