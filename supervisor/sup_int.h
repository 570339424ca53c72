/*
 * sup_int.h - the supervisor's state, shared by its files: sup.c (set-up,
 * lock, loop), sup_life.c (the lifecycle table, trainer start and stop),
 * sup_ingest.c (tails -> store -> monitors), sup_policy.c (incident ->
 * action through the Lua policies), sup_verify.c (the checkpoint to resume
 * from, verified in a child), sup_status.c (status line, accounts).
 */
#ifndef SUP_INT_H
#define SUP_INT_H

#include "alert.h"
#include "config.h"
#include "ev.h"
#include "http.h"
#include "launch.h"
#include "lsb.h"
#include "mline.h"
#include "mon.h"
#include "sample.h"
#include "store.h"
#include "sup.h"
#include "tail.h"
#include "umon.h"

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef enum sup_state {
	SUP_RUNNING, SUP_STOPPING, SUP_BACKOFF, SUP_DONE, SUP_STOPPED, SUP_FAILED,
	SUP_NSTATES,
} sup_state;

typedef enum sup_event {
	SUP_EV_EXIT,       /* the trainer ended (status in sup.exit_status) */
	SUP_EV_RECOVER,    /* a policy asked for a stop-and-restart (sup.next) */
	SUP_EV_GIVEUP,     /* a policy asked to stop for good */
	SUP_EV_STOP,       /* the user asked to stop (graceful) */
	SUP_EV_STOP_NOW,   /* the user asked to stop now */
	SUP_EV_GRACE,      /* the SIGTERM grace period ran out */
	SUP_EV_BACKOFF,    /* the restart backoff ran out */
	SUP_NEVENTS,
} sup_event;

typedef enum sup_intent {
	SUP_INTENT_NONE, SUP_INTENT_RESTART, SUP_INTENT_STOP, SUP_INTENT_GIVEUP,
} sup_intent;

/* How the next trainer process starts. */
typedef struct sup_restart {
	char resume[PATH_MAX]; /* checkpoint path, "latest", or "" for fresh */
	long from_step;        /* that checkpoint's step (-1 unknown) */
	long skip;             /* batches to skip after resuming */
	char reason[256];
	bool backoff;          /* wait before starting (crashes) */
	/* A rollback: resume from the newest good checkpoint before before[0],
	 * else the newest before before[1]; at_step is where it was decided
	 * (for the steps-lost count). sup_verify.c finds it. */
	bool rollback;
	long before[2];
	long at_step;
} sup_restart;

/* A search for the checkpoint to resume from, run in a child process
 * (sup_verify.c), and the verdicts of earlier searches by file identity. */
typedef struct sup_vfile {
	char name[40];          /* file name in RUN_DIR/checkpoints */
	long step;              /* by name; the header's once verified good */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int known;              /* 1 good, 0 bad, -1 not verified, -2 could
				 * not be checked (this search only) */
} sup_vfile;

#define SUP_VCACHE 64

typedef struct sup_verify {
	bool busy;              /* a search is in flight */
	bool reading;           /* fd is open and watched */
	bool reaped;            /* the child has been waited for (status) */
	pid_t pid;              /* the verifying child, 0 = none now */
	int fd;                 /* read end of the child's answer pipe */
	int status;             /* the child's wait status */
	int64_t timer;          /* the child's progress check (or the
				 * deferred give-up), 0 = none */
	double limit_s;         /* seconds without progress it is given */
	long long cpu;          /* its utime+stime (ticks) at the last check */
	bool expired;           /* killed for making no progress */
	int children;           /* started in this search */
	double t0;
	sup_vfile *cand;        /* this search's candidates, in order */
	size_t n_cand;
	size_t next;            /* the first not answered for: the one a
				 * child that dies was checking */
	char line[192];         /* the answer line being read */
	size_t len;
	bool answered, garbage;
	long found, step;       /* the good candidate and its step, -1 = none */
	size_t rejected, unchecked;
	char first[200];        /* why the first unchecked one was skipped */
	bool give_up;           /* the search ended in a give-up ... */
	char giveup[640];       /* ... saying this */
	sup_vfile cache[SUP_VCACHE];
	size_t n_cache, next_slot;
} sup_verify;

#define SUP_RING 64
#define SUP_PENDING 32
#define SUP_ASKED 64
#define SUP_COMMIT_S 1.0
#define SUP_POLL_MS 20        /* ingest period without inotify */
#define SUP_WATCH_POLL_MS 100 /* with it: commits and a safety net */
#define SUP_WATCH_GAP_MS 10   /* a watch's rest after each wake */
#define SUP_WATCH_MISSES 3    /* lines found without events: poll instead */

typedef struct sup_pending {
	int64_t incident;
	mon_incident inc;
} sup_pending;

typedef struct sup {
	const sup_opts *o;
	char ws[PATH_MAX], run_dir[PATH_MAX], name[128];
	char metrics_path[PATH_MAX], out_path[PATH_MAX], err_path[PATH_MAX];
	cfg *cfg;
	store *st;
	ev_loop *loop;
	http_client *http;
	alert *alerts;
	mon_set *mon;
	lsb *policy;
	umon *umon;             /* the scaffold's monitors.lua, NULL = none */
	int lock_fd;
	int64_t run_id;
	int attempt;
	pid_t pid;               /* trainer process (group leader); 0 = none */
	bool adopted;            /* not our child: poll, cannot wait */
	int exit_status;         /* waitpid status of the last exit */
	bool finished;           /* the trainer said it finished its steps */
	sup_state state;
	sup_intent intent;
	sup_restart next;
	int64_t grace_timer;
	double lr_scale;         /* the live LR scale recovery has applied */
	tail *t_metrics, *t_out, *t_err;
	mline ml;
	smp smp;
	char *ring[SUP_RING];    /* last output lines, for crash classification */
	int ring_pos;
	sup_pending pending[SUP_PENDING];
	int n_pending;
	long malformed;
	bool in_batch;           /* sup__ingest opened the store batch */
	double last_commit;      /* monotonic time of the last batch commit */
	int watch_fd;            /* inotify on the files' directories, -1 = poll */
	bool watch_resting;      /* its rest after a wake: events wait unread */
	int watch_misses;        /* timer ticks in a row that found lines no
				  * event announced */
	bool backlog;            /* the last read stopped at its size cap */
	int batch_rc;            /* why opening it failed */
	/* accounts */
	double wall_start;
	double productive_s;     /* step time of steps still on the timeline */
	double *step_time;       /* by step, for taking lost steps back out */
	long step_cap;
	long last_step, total_steps;
	double last_loss, tokens_per_s;
	long lost_steps, recoveries;
	double restarts[64];     /* monotonic times of recent restarts */
	int n_restarts;
	int backoff_n;           /* consecutive crash restarts, for backoff */
	long acted_step[MON_KIND_COUNT]; /* last step a policy acted per kind */
	int repeats[MON_KIND_COUNT];
	double last_status;
	pid_t propose_pid;       /* the `tend propose` child, 0 = none */
	int64_t propose_queue[16];
	int n_propose;
	struct { int kind; long onset; } asked[SUP_ASKED]; /* causes proposed for */
	int n_asked;
	sup_verify verify;       /* finding the checkpoint to resume from */
} sup;

/* sup_life.c */
void sup__dispatch(sup *s, sup_event ev);
int sup__start_trainer(sup *s);
const char *sup__state_name(sup_state st);
void sup__on_child_exit(sup *s, int status);
void sup__restart(sup *s);      /* start again now or after backoff */
void sup__giveup(sup *s, const char *why);

/* sup_lock.c */
/* True while a trainer of this run holds RUN_DIR/trainer.lock; its pid
 * (verified to hold the lock) in *pid when not NULL, 0 if none found. */
bool sup__trainer_alive(sup *s, pid_t *pid);
/* launch_start with the trainer lock taken for the child. */
int sup__launch_locked(sup *s, pid_t *pid, const launch_spec *spec);

/* sup_ingest.c */
int sup__ingest_open(sup *s);
void sup__ingest_close(sup *s);
int sup__ingest(sup *s);      /* read and commit now */
int sup__ingest_tick(sup *s); /* read; commit when due or an incident waits */
/* sup_watch.c: the ingest woken by writes (inotify), else by polling. */
int sup__watch_open(sup *s);
void sup__watch_close(sup *s);
long sup__ingest_period_ms(const sup *s);
/* An ingest tick: lines read, or -1 after a store error stopped the loop. */
int sup__ingest_wake(sup *s);
/* The ingest timer's tick; its next period, or EV_TIMER_STOP. */
long sup__ingest_timer(sup *s);
void sup__ring_push(sup *s, const char *line, size_t len);

/* sup_policy.c */
int sup__policy_open(sup *s);
void sup__policy_run(sup *s);  /* acts on s->pending */
int sup__incident_emit(const mon_incident *inc, void *ud);
int sup__mon_params(mon_params *p, const cfg *c);
/* The "rollback" event, once s->next says where the rollback resumes. */
void sup__rollback_event(sup *s);

/* sup_verify.c */
/* Resolves s->next ("latest" or a rollback) to the newest good checkpoint.
 * 0: s->next now names it (or a fresh start; also when nothing needed
 * resolving). 1: a child is verifying checksums; its answer fills s->next
 * and starts the trainer, so the caller starts nothing. */
int sup__verify_resolve(sup *s);
/* True when pid was the verifying child (its status is taken). */
bool sup__verify_reaped(sup *s, pid_t pid, int status);
/* Kills and reaps a verifying child (the run is ending); harmless when
 * none runs. */
void sup__verify_cancel(sup *s);

/* sup_umon.c */
int sup__user_monitors_open(sup *s);
void sup__user_monitors(sup *s);

/* sup_propose.c */
void sup__propose_queue(sup *s, int64_t incident, const mon_incident *inc);
bool sup__propose_reaped(sup *s, pid_t pid, int status);
/* Waits for a running proposal pipeline (the run is ending). */
void sup__propose_finish(sup *s);

/* sup_status.c */
void sup__status_line(sup *s, bool final);
double sup__effective_ratio(const sup *s, double now);
void sup__account_step(sup *s, long step, double step_time);
void sup__account_rollback(sup *s, long to_step);
void sup__event(sup *s, long step, const char *kind, const char *reason);
void sup__accounts(sup *s); /* the accounts as an "accounts" event */

#endif
