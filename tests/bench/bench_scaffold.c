/*
 * bench_scaffold.c - what the Lua scaffold costs the trainer per step:
 * scf_lr + scf_clip + scf_coeffs + scf_on_step (a metrics table with two
 * MoE layers) on the default scaffold in lua/, over 100,000 steps, next
 * to an empty lua_pcall of a no-op Lua function in the same state and run.
 * Target: <= 50 microseconds per step.
 */
#include "scf.h"
#include "tend.h"
#include "tend_build.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define STEPS 100000
#define TARGET_US 50.0

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds for n scaffold steps; -1 on an error (printed). */
static double run_steps(scf *f, long n)
{
	scf_moe moe[2] = {{1.3, 2.01, 0.0}, {1.7, 1.95, 0.004}};
	scf_metrics m = {.grad_norm = 0.9, .tokens_per_s = 48000, .step_time_s = 0.21,
			 .moe = moe, .n_moe = 2};
	scf_actions act;
	double lr, clip, aux, z;
	double t0 = now_s();
	for (long step = 0; step < n; step++) {
		m.step = step;
		m.loss = 4.0 / (1.0 + step * 1e-4);
		m.has_val_loss = step % 500 == 0;
		m.val_loss = m.loss + 0.05;
		if (scf_lr(f, step, n, &lr) || scf_clip(f, step, &clip) ||
		    scf_coeffs(f, step, &aux, &z) || scf_on_step(f, &m, &act)) {
			fprintf(stderr, "bench_scaffold: step %ld: %s\n", step, tend_error_last());
			return -1;
		}
		m.lr = lr;
	}
	return now_s() - t0;
}

/* Seconds for n lua_pcall of a no-op Lua function, in f's state. */
static double run_empty_pcalls(scf *f, long n)
{
	lsb *sb = scf_sandbox(f);
	lua_State *L = lsb_state(sb);
	static const char src[] = "return function() end";
	if (lsb_load(sb, "noop.lua", src, sizeof src - 1) != 0)
		return -1;
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		lua_pushvalue(L, -1);
		lua_pcall(L, 0, 0, 0);
	}
	double t = now_s() - t0;
	lua_pop(L, 1);
	return t;
}

int main(void)
{
	char dir[1024];
	const char *root = getenv("TEND_SOURCE_ROOT");
	scf *f = NULL;
	snprintf(dir, sizeof dir, "%s/lua", root ? root : TEND_SOURCE_ROOT);
	if (scf_open(&f, dir, NULL) != 0) {
		fprintf(stderr, "bench_scaffold: %s\n", tend_error_last());
		return 1;
	}
	run_steps(f, 2000); /* warm up */
	double steps = run_steps(f, STEPS);
	double empty = run_empty_pcalls(f, STEPS);
	scf_free(f);
	if (steps < 0 || empty <= 0)
		return 1;
	double us_step = steps / STEPS * 1e6, us_empty = empty / STEPS * 1e6;
	printf("scaffold step (lr+clip+coeffs+on_step, 2 MoE layers): %.2f us/step over %d steps\n",
	       us_step, STEPS);
	printf("empty lua_pcall of a no-op function:                  %.3f us/call\n", us_empty);
	printf("ratio step / empty pcall: %.1fx; target <= %.0f us/step: %s (%.1f%% of target)\n",
	       us_step / us_empty, TARGET_US, us_step <= TARGET_US ? "met" : "MISSED",
	       100.0 * us_step / TARGET_US);
	return 0;
}
