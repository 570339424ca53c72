/*
 * sup_status.c - the accounts (effective training time: productive step
 * time over wall time, steps lost to recoveries), the live status line,
 * and the supervisor's own events in the store.
 */
#include "sup_int.h"
#include "clock.h"
#include "tend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sup__event(sup *s, long step, const char *kind, const char *reason)
{
	store_event_put(s->st, s->run_id, s->attempt, tend_wall_s(), step, kind, reason, NULL);
	if (s->o->status_line)
		fprintf(stderr, "\r\033[K[tend] step %ld: %s: %s\n", step, kind, reason);
	else if (s->o->print_events)
		fprintf(stderr, "[tend] step %ld: %s: %s\n", step, kind, reason);
}

void sup__account_step(sup *s, long step, double step_time)
{
	if (step < 0 || !isfinite(step_time) || step_time < 0)
		return;
	if (step >= s->step_cap) {
		long cap = s->step_cap ? s->step_cap : 4096;
		while (cap <= step)
			cap *= 2;
		double *p = realloc(s->step_time, (size_t)cap * sizeof *p);
		if (!p)
			return;
		memset(p + s->step_cap, 0, (size_t)(cap - s->step_cap) * sizeof *p);
		s->step_time = p;
		s->step_cap = cap;
	}
	s->productive_s += step_time - s->step_time[step];
	s->step_time[step] = step_time;
}

/* Steps after to_step left the timeline: their time was not productive. */
void sup__account_rollback(sup *s, long to_step)
{
	for (long i = to_step + 1; i < s->step_cap && i <= s->last_step; i++) {
		if (i < 0)
			continue;
		s->productive_s -= s->step_time[i];
		s->step_time[i] = 0;
	}
}

double sup__effective_ratio(const sup *s, double now)
{
	double wall = now - s->wall_start;
	return wall > 0 ? s->productive_s / wall : 0;
}

static int open_incidents_cb(const store_incident *i, void *ud)
{
	(void)i;
	(*(int *)ud)++;
	return 0;
}

void sup__status_line(sup *s, bool final)
{
	double now = ev_now(s->loop);
	if (!s->o->status_line || (!final && now - s->last_status < 0.5))
		return;
	s->last_status = now;
	int open = 0;
	store_incident_list(s->st, s->run_id, "open", open_incidents_cb, &open);
	double eta = s->tokens_per_s > 0 && s->last_step > 0 && s->total_steps > s->last_step
		? (now - s->wall_start) / s->last_step * (s->total_steps - s->last_step) : 0;
	fprintf(stderr, "\r\033[K%s %s | step %ld/%ld | loss %.4f | %.0f tok/s | ETA %.0fs | "
		"ETT %.0f%% | incidents %d%s", s->name,
		s->verify.busy ? "verifying" : sup__state_name(s->state), s->last_step,
		s->total_steps, s->last_loss, s->tokens_per_s, eta,
		100 * sup__effective_ratio(s, now), open, final ? "\n" : "");
	fflush(stderr);
}

/* The run's accounts as an event, so they outlive the supervisor:
 * effective training time (step time still on the timeline over wall
 * time), steps lost to recoveries, recoveries. */
void sup__accounts(sup *s)
{
	double now = tend_mono_s(), wall = now - s->wall_start;
	char msg[256], detail[512];
	snprintf(msg, sizeof msg, "effective training time %.0f%% (%.1f s of %.1f s), "
		 "%ld steps lost, %ld recoveries", 100 * sup__effective_ratio(s, now),
		 s->productive_s, wall, s->lost_steps, s->recoveries);
	snprintf(detail, sizeof detail, "{\"wall_s\":%.3f,\"productive_s\":%.3f,"
		 "\"effective\":%.4f,\"lost_steps\":%ld,\"recoveries\":%ld,"
		 "\"last_step\":%ld}", wall, s->productive_s, sup__effective_ratio(s, now),
		 s->lost_steps, s->recoveries, s->last_step);
	store_event_put(s->st, s->run_id, s->attempt, tend_wall_s(), s->last_step, "accounts",
			msg, detail);
}
