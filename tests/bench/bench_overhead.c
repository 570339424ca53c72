/*
 * bench_overhead.c - what supervision costs the trainer: the in-tree
 * trainer's step time alone (`tend train`) and under `tend run` (ingest,
 * every monitor at its default, user monitors, status ticks), same model,
 * same steps.
 *
 * Run one after the other, two runs of the same trainer on this shared
 * machine differ by 10-25% in step time, more than the effect measured.
 * So the two run side by side, at the same time, each pinned to its own
 * core, and the supervisor is pinned to the supervised trainer's core:
 * every cycle it spends is a cycle its trainer loses (the worst case, a
 * machine with no spare core), while whatever else loads the machine hits
 * both alike. Rounds swap the cores; the figure is the geometric mean of
 * each round's ratio of median step times (step_time_s, past warm-up),
 * checked against the median of the step-by-step ratios (step k of one
 * against step k of the other, which ran at about the same moment). The
 * supervisor's CPU time over its trainer's is printed too.
 * Target: supervised <= 1% slower.
 */
#include "e2e.h"

#include <sched.h>

#define ROUNDS 4
#define STEPS 300
#define WARMUP 10

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *x, size_t n)
{
	if (n == 0)
		return NAN;
	qsort(x, n, sizeof x[0], cmp);
	return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

/* Each step's step_time_s by step (NAN where none) from a metrics file. */
static void step_times(const char *path, double *by_step)
{
	char *text = e2e_slurp(path);
	for (int i = 0; i <= STEPS; i++)
		by_step[i] = NAN;
	for (char *p = text; p && (p = strstr(p, "\"step\":")); p++) {
		long step = atol(p + 7);
		char *eol = strchr(p, '\n'), *st = strstr(p, "\"step_time_s\":");
		if (!eol || !st || st > eol || step < 0 || step > STEPS)
			continue;
		by_step[step] = atof(st + 14);
		p = eol;
	}
	free(text);
}

/* The median of x[WARMUP+1 .. STEPS] that are numbers. */
static double median_past_warmup(const double *x)
{
	double v[STEPS + 1];
	size_t n = 0;
	for (int i = WARMUP + 1; i <= STEPS; i++)
		if (!isnan(x[i]))
			v[n++] = x[i];
	return median(v, n);
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

/* Pins this process, and so what it forks next, to one core (-1: all). */
static void pin(int core)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	for (int c = 0; c < CPU_SETSIZE && c < sysconf(_SC_NPROCESSORS_ONLN); c++)
		if (core < 0 || c == core)
			CPU_SET(c, &set);
	sched_setaffinity(0, sizeof set, &set);
}

typedef struct round_t {
	double alone, sup;          /* median step times */
	double ratio[STEPS + 1];    /* supervised / alone, step by step */
	double cpu_sup, cpu_trn;    /* CPU seconds of the supervisor, its trainer */
	double wall_alone, wall_sup;
} round_t;

/* Waits for both, sampling the supervisor's and its trainer's CPU time. */
static int wait_both(const char *ws, const char *name, e2e_proc *a, e2e_proc *b, round_t *r,
		     double t0)
{
	int st, left = 2, rc = 0;
	while (left > 0) {
		pid_t t = 0;
		double c = cpu_s(b->pid);
		if (c > r->cpu_sup)
			r->cpu_sup = c;
		if (e2e_trainer_alive(ws, name, &t) && t > 1 && (c = cpu_s(t)) > r->cpu_trn)
			r->cpu_trn = c;
		for (e2e_proc *p = a; p; p = p == a ? b : NULL) {
			if (p->pid > 0 && waitpid(p->pid, &st, WNOHANG) == p->pid) {
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
					rc = -1;
				*(p == a ? &r->wall_alone : &r->wall_sup) = e2e_now() - t0;
				p->pid = 0;
				left--;
			}
		}
		e2e_sleep(0.02);
	}
	return rc;
}

static int one_round(const char *ws, int k, int alone_core, int sup_core, round_t *r)
{
	char an[32], sn[32], dir[PATH_MAX + 32], path[PATH_MAX + 64];
	e2e_proc a, b;
	snprintf(an, sizeof an, "alone%d", k);
	snprintf(sn, sizeof sn, "sup%d", k);
	snprintf(dir, sizeof dir, "%s/runs/%s", ws, an);
	double t0 = e2e_now();
	pin(alone_core);
	int rc = e2e_spawnv(&a, ws, an, (const char *const[]){"train", "--run-dir", dir, NULL});
	pin(sup_core);
	rc |= e2e_spawnv(&b, ws, sn, (const char *const[]){"run", sn, "--no-status", NULL});
	pin(-1);
	if (rc < 0 || wait_both(ws, sn, &a, &b, r, t0) < 0) {
		fprintf(stderr, "bench_overhead: round %d failed (see %s/*.err)\n", k, ws);
		return -1;
	}
	double ta[STEPS + 1], ts[STEPS + 1];
	snprintf(path, sizeof path, "%s/runs/%s/metrics.jsonl", ws, an);
	step_times(path, ta);
	snprintf(path, sizeof path, "%s/runs/%s/metrics.jsonl", ws, sn);
	step_times(path, ts);
	r->alone = median_past_warmup(ta);
	r->sup = median_past_warmup(ts);
	/* Side by side, step k of one ran at about the time of step k of the
	 * other: the pairs share the machine's moment. */
	for (int i = 0; i <= STEPS; i++)
		r->ratio[i] = ts[i] / ta[i];
	fprintf(stderr, "  round %d: alone on core %d %.3f ms/step (%.1f s), supervised on core %d "
		"%.3f ms/step (%.1f s), ratio %.4f; CPU supervisor %.2f s, trainer %.2f s\n", k,
		alone_core, r->alone * 1e3, r->wall_alone, sup_core, r->sup * 1e3, r->wall_sup,
		r->sup / r->alone, r->cpu_sup, r->cpu_trn);
	return isnan(r->alone) || isnan(r->sup) ? -1 : 0;
}

int main(void)
{
	char ws[PATH_MAX];
	e2e_cfg c = {.steps = STEPS, .ckpt_every = 100, .monitors = "",
		.trainer = "  layers: 2\n  d_model: 64\n  heads: 4\n  context: 64\n"
			   "  batch: 8\n  experts: 4\n  top_k: 2\n"};
	round_t r[ROUNDS] = {0};
	double log_sum = 0, share[ROUNDS];
	static double pairs[ROUNDS * (STEPS + 1)];
	size_t np = 0;
	int ok = 1;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("bench_overhead: needs two cores to run both side by side; skipped\n");
		return 77;
	}
	if (e2e_setup() < 0 || e2e_workspace(ws, sizeof ws, "ovh", &c) < 0)
		return 1;
	for (int k = 0; k < ROUNDS && ok; k++) {
		if (one_round(ws, k, k % 2, 1 - k % 2, &r[k]) < 0) {
			ok = 0;
			break;
		}
		log_sum += log(r[k].sup / r[k].alone);
		share[k] = r[k].cpu_sup / r[k].cpu_trn;
		for (int i = WARMUP + 1; i <= STEPS; i++)
			if (!isnan(r[k].ratio[i]))
				pairs[np++] = r[k].ratio[i];
	}
	if (ok) {
		double ratio = exp(log_sum / ROUNDS), ms = median(share, ROUNDS);
		printf("bench_overhead: %d steps, %d rounds side by side (cores swapped), 2x64 MoE "
		       "model, 1 trainer thread, supervisor on its trainer's core\n", STEPS, ROUNDS);
		for (int k = 0; k < ROUNDS; k++)
			printf("  round %d: alone %.3f ms, supervised %.3f ms: %+.2f%%\n", k,
			       r[k].alone * 1e3, r[k].sup * 1e3, 100 * (r[k].sup / r[k].alone - 1));
		printf("  supervised / alone step time (geometric mean): %.4f (%+.2f%%)\n", ratio,
		       100 * (ratio - 1));
		double mp = median(pairs, np);
		printf("  median of %zu step-by-step ratios: %.4f (%+.2f%%)\n", np, mp, 100 * (mp - 1));
		printf("  supervisor CPU / trainer CPU (median): %.4f (%.2f%%)\n", ms, 100 * ms);
		printf("  target <= 1%% slower: %s\n", ratio <= 1.01 && mp <= 1.01 ? "met" : "NOT met");
	}
	for (int k = 0; k < ROUNDS; k++) {
		char name[32];
		snprintf(name, sizeof name, "sup%d", k);
		e2e_kill_trainer(ws, name);
	}
	e2e_teardown();
	return ok ? 0 : 1;
}
