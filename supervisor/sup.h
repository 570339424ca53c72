/*
 * sup.h - the run supervisor behind `tend run`: launches the trainer,
 * ingests its metrics and logs into the store, runs the monitors, applies
 * the scaffold's recovery policies, sends alerts, keeps the accounts.
 */
#ifndef SUP_H
#define SUP_H

#include <stdbool.h>

typedef struct sup_opts {
	const char *workspace;  /* absolute path of the workspace */
	const char *name;       /* run name; NULL = a fresh timestamped one */
	const char *config;     /* tend.yaml to use; NULL = WS/tend.yaml */
	bool resume;            /* continue run `name` (or the latest run) */
	bool status_line;       /* draw a live status line on stderr */
	bool print_events;      /* print each event as a line on stderr */
	long steps;             /* override run.steps; 0 = config */
	const char *const *extra_args; /* appended to the trainer's argv */
	int ready_fd;           /* > 0: "ok\n" is written to it once the
				 * trainer runs (for --detach); not closed */
} sup_opts;

/* Supervises one run to its end. Returns 0 when the run finished, 1 when
 * it was stopped or given up (see the store for why), or a negative code
 * when the supervisor could not start (config, lock, store, launch). */
int sup_run(const sup_opts *o);

/* The name of the newest run in the workspace (for --resume). */
int sup_latest_run(const char *workspace, char *out, size_t cap);

/* The pid of the supervisor holding the workspace lock, or 0 if none. */
int sup_lock_holder(const char *workspace, int *pid, char *run, size_t cap);

#endif
