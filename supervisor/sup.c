/*
 * sup.c - set-up and main loop of the supervisor: the workspace lock, the
 * run record, the trainer (launched or adopted), one event loop with the
 * ingest timer, the tick timer and the signals, and the final accounts.
 */
#include "sup_int.h"
#include "clock.h"
#include "fsutil.h"
#include "launch.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 500

static int lock_path(char *out, size_t cap, const char *ws)
{
	return snprintf(out, cap, "%s/.tend-supervisor.lock", ws) < (int)cap ? 0 : TEND_EINVAL;
}

int sup_lock_holder(const char *ws, int *pid, char *run, size_t cap)
{
	char path[PATH_MAX];
	*pid = 0;
	lock_path(path, sizeof path, ws);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) { /* nobody holds it */
		close(fd);
		return 0;
	}
	char buf[256] = "";
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	char name[160] = "";
	if (sscanf(buf, "%d %159s", pid, name) < 1)
		*pid = 0;
	snprintf(run, cap, "%s", name);
	return 0;
}

static int take_lock(sup *s)
{
	char path[PATH_MAX], buf[256];
	lock_path(path, sizeof path, s->ws);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->lock_fd < 0)
		return tend_error_os("%s", path);
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int pid = 0;
		char run[160] = "";
		sup_lock_holder(s->ws, &pid, run, sizeof run);
		return tend_error_set(TEND_EBUSY, "another supervisor (pid %d, run %s) already "
				      "watches this workspace; `tend status` shows it, `tend stop` "
				      "stops it", pid, run[0] ? run : "?");
	}
	int n = snprintf(buf, sizeof buf, "%d %s\n", (int)getpid(), s->name);
	if (ftruncate(s->lock_fd, 0) < 0 || pwrite(s->lock_fd, buf, (size_t)n, 0) != n)
		return tend_error_os("%s", path);
	return 0;
}

typedef struct attempt_seen {
	int n;          /* the last attempt */
	double ended_t; /* its end, 0 when not recorded */
	pid_t pid;      /* a live trainer's pid */
	int n_pid;      /* the attempt that launched it */
} attempt_seen;

static int attempt_cb(const store_attempt *a, void *ud)
{
	attempt_seen *seen = ud;
	if (a->n > seen->n) {
		seen->n = a->n;
		seen->ended_t = a->ended_t;
	}
	if (seen->pid > 0 && a->pid == seen->pid)
		seen->n_pid = a->n;
	return 0;
}

/* A resumed run goes on counting its attempts. A trainer that still holds
 * its lock is adopted and its rows keep its attempt's number (one that a
 * supervisor launched but died before recording gets its attempt now);
 * an attempt whose trainer died unseen is closed with its end unknown. */
static int last_attempt(sup *s)
{
	attempt_seen seen = {0};
	bool alive = sup__trainer_alive(s, &seen.pid);
	int rc = store_attempt_list(s->st, s->run_id, attempt_cb, &seen);
	if (rc < 0)
		return rc;
	s->attempt = seen.n;
	if (!alive) {
		if (seen.n > 0 && seen.ended_t == 0)
			rc = store_attempt_end(s->st, s->run_id, seen.n, STORE_NONE, STORE_NONE,
					       tend_wall_s());
		return rc;
	}
	if (seen.pid <= 1)
		return tend_error_set(TEND_EBUSY, "a trainer of run %s still holds %s/trainer.lock, "
				      "but no process could be found holding it", s->name,
				      s->run_dir);
	s->pid = seen.pid;
	s->adopted = true;
	if (seen.n_pid > 0)
		s->attempt = seen.n_pid;
	else
		rc = store_attempt_begin(s->st, &s->attempt, s->run_id, "adopted: launched by a "
					 "supervisor that died before recording it", NULL, STORE_NONE,
					 seen.pid, tend_wall_s());
	return rc;
}

static int open_run(sup *s)
{
	int rc;
	store_run *r = NULL;
	if (s->o->resume) {
		if ((rc = store_run_get_by_name(s->st, &r, s->name)) < 0)
			return tend_error_wrap(rc, "run %s", s->name);
		s->run_id = r->id;
		store_run_free(r);
		if ((rc = last_attempt(s)) < 0)
			return rc;
	} else {
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		if (f) {
			cfg_print(f, s->cfg, false);
			fclose(f);
		}
		rc = store_run_create(s->st, &s->run_id, s->name, text ? text : "", s->run_dir);
		free(text);
		if (rc < 0)
			return tend_error_wrap(rc, "run %s", s->name);
	}
	snprintf(s->metrics_path, sizeof s->metrics_path, "%s/%s", s->run_dir,
		 s->cfg->run.metrics_file);
	snprintf(s->out_path, sizeof s->out_path, "%s/stdout.log", s->run_dir);
	snprintf(s->err_path, sizeof s->err_path, "%s/stderr.log", s->run_dir);
	return fsu_mkdir_p(s->run_dir, 0755);
}

static void on_signal(ev_loop *l, int sig, void *ud)
{
	(void)l;
	sup *s = ud;
	if (sig == SIGCHLD) {
		int st;
		pid_t p;
		while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
			if (p == s->pid) {
				s->exit_status = st;
				sup__dispatch(s, SUP_EV_EXIT);
			} else if (!sup__verify_reaped(s, p, st)) {
				sup__propose_reaped(s, p, st);
			}
		}
	} else if (sig == SIGHUP) {
		if (s->pid > 0)
			launch_signal(s->pid, SIGHUP); /* the scaffold changed: reload */
		sup__user_monitors_open(s);    /* ... and so may have monitors.lua */
	} else if (sig == SIGUSR2 || (sig == SIGINT && s->state == SUP_STOPPING)) {
		sup__event(s, s->last_step, "stop", "stop now requested");
		sup__dispatch(s, SUP_EV_STOP_NOW);
	} else {
		sup__event(s, s->last_step, "stop", "stop requested");
		sup__dispatch(s, SUP_EV_STOP);
	}
}

static long ingest_timer(ev_loop *l, void *ud)
{
	(void)l;
	sup *s = ud;
	return sup__ingest_timer(s);
}

static long tick_timer(ev_loop *l, void *ud)
{
	sup *s = ud;
	if (s->state == SUP_RUNNING && s->pid > 0) {
		mon_tick(s->mon, ev_now(l), sup__incident_emit, s);
		if (s->n_pending) /* commit what the incident joined, then act */
			sup__ingest(s);
	}
	if (s->adopted && s->pid > 0 && !sup__trainer_alive(s, NULL)) {
		/* Not our child: no wait status. Its last lines say whether it
		 * finished, so read them before judging. */
		if (sup__ingest(s) >= 0) {
			s->exit_status = s->finished ? 0 : (1 << 8);
			sup__dispatch(s, SUP_EV_EXIT);
		}
	}
	sup__status_line(s, false);
	return TICK_MS;
}

static void on_alert(const char *url, const char *key, int rc, const char *error, void *ud)
{
	sup *s = ud;
	char msg[1024];
	if (rc == 0)
		snprintf(msg, sizeof msg, "delivered %s to %s", key, url);
	else
		snprintf(msg, sizeof msg, "failed to deliver %s: %s", key, error ? error : "");
	store_event_put(s->st, s->run_id, s->attempt, tend_wall_s(), s->last_step,
			rc == 0 ? "alert" : "alert_failed", msg, NULL);
}

static int setup(sup *s)
{
	char path[PATH_MAX + 16];
	mon_params mp;
	int rc;
	snprintf(path, sizeof path, "%s/tend.yaml", s->ws);
	if ((rc = cfg_load(&s->cfg, s->o->config ? s->o->config : path)) < 0)
		return rc;
	s->total_steps = s->o->steps > 0 ? s->o->steps : s->cfg->run.steps;
	/* Everything that can refuse the config comes before the run record,
	 * so a refused start leaves no run behind to block the name. */
	sup__mon_params(&mp, s->cfg);
	if ((rc = mon_set_new(&s->mon, &mp)) < 0)
		return tend_error_wrap(rc, "%s/tend.yaml", s->ws);
	snprintf(path, sizeof path, "%s/tend.db", s->ws);
	if ((rc = store_open(&s->st, path, 0)) < 0 || (rc = take_lock(s)) < 0 ||
	    (rc = sup__policy_open(s)) < 0 || (rc = sup__user_monitors_open(s)) < 0 ||
	    (rc = open_run(s)) < 0 ||
	    (rc = sup__ingest_open(s)) < 0)
		return rc;
	if ((rc = ev_new(&s->loop)) < 0 || (rc = http_client_new(&s->http, s->loop)) < 0 ||
	    (rc = alert_new(&s->alerts, s->http, &s->cfg->alerts, 600, on_alert, s)) < 0)
		return rc;
	int sigs[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGUSR2};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if ((rc = ev_signal_add(s->loop, sigs[i], on_signal, s)) < 0)
			return rc;
	prctl(PR_SET_CHILD_SUBREAPER, 1); /* the trainer's orphans are ours to reap */
	sup__watch_open(s);
	ev_timer_add(s->loop, sup__ingest_period_ms(s), ingest_timer, s, NULL);
	ev_timer_add(s->loop, TICK_MS, tick_timer, s, NULL);
	return 0;
}

static void teardown(sup *s)
{
	sup__verify_cancel(s);
	/* Give webhooks in flight a few seconds, never more. */
	double t0 = tend_wall_s();
	while (s->http && http_pending(s->http) > 0 && tend_wall_s() - t0 < 5)
		ev_run_once(s->loop, 100);
	alert_free(s->alerts);
	http_client_free(s->http);
	/* Let go of the workspace first: signals meant for its supervisor
	 * (a promotion's SIGHUP) then stop coming to this pid. */
	if (s->lock_fd > 0)
		close(s->lock_fd);
	s->lock_fd = -1;
	sup__watch_close(s);
	ev_free(s->loop);
	mon_set_free(s->mon);
	lsb_free(s->policy);
	umon_free(s->umon);
	sup__ingest_close(s);
	store_close(s->st);
	cfg_free(s->cfg);
	free(s->step_time);
}

static void default_name(char *out, size_t cap)
{
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, cap, "run-%Y%m%d-%H%M%S", &tm);
}

static int latest_run(sup *s, char *out, size_t cap)
{
	store_run *runs = NULL;
	size_t n = 0;
	int rc = store_run_list(s->st, &runs, &n);
	if (rc < 0)
		return rc;
	if (n == 0)
		rc = tend_error_set(TEND_ENOTFOUND, "no run to resume in this workspace");
	else
		snprintf(out, cap, "%s", runs[n - 1].name);
	store_run_list_free(runs, n);
	return rc;
}

static int start_or_adopt(sup *s)
{
	memset(&s->next, 0, sizeof s->next);
	s->next.from_step = -1;
	if (s->adopted) {
		char msg[96];
		snprintf(msg, sizeof msg, "adopted the running trainer (pid %d)", (int)s->pid);
		sup__event(s, -1, "adopt", msg);
		s->state = SUP_RUNNING;
		return 0;
	}
	if (s->o->resume) {
		/* What the dead trainer wrote belongs to its attempt, not the next. */
		int rc = sup__ingest(s);
		if (rc < 0)
			return rc;
		if (s->pid > 0 || s->state != SUP_RUNNING)
			return 0; /* a policy already acted on what it read */
		strcpy(s->next.resume, "latest");
		strcpy(s->next.reason, "supervisor resumed: restart from the latest checkpoint");
	}
	return sup__start_trainer(s);
}

int sup_run(const sup_opts *o)
{
	sup s = {.o = o, .lock_fd = -1, .watch_fd = -1, .lr_scale = 1.0, .last_step = 0};
	int rc;
	snprintf(s.ws, sizeof s.ws, "%s", o->workspace);
	for (int k = 0; k < MON_KIND_COUNT; k++)
		s.acted_step[k] = -1;
	if (o->name)
		snprintf(s.name, sizeof s.name, "%s", o->name);
	else if (!o->resume)
		default_name(s.name, sizeof s.name);
	snprintf(s.run_dir, sizeof s.run_dir, "%s/runs/%s", s.ws, s.name);
	s.wall_start = tend_mono_s();
	if ((rc = setup(&s)) < 0)
		goto done;
	if ((rc = start_or_adopt(&s)) < 0)
		goto done;
	if (o->ready_fd > 0) {
		ssize_t w = write(o->ready_fd, "ok\n", 3);
		(void)w; /* the parent reads EOF as a failure either way */
	}
	rc = s.state < SUP_DONE ? ev_run(s.loop) : 0;
	sup__verify_cancel(&s); /* stopped while verifying checkpoints */
	sup__propose_finish(&s);
	sup__ingest(&s);
	sup__accounts(&s);
	sup__status_line(&s, true);
	if (rc == 0)
		rc = s.state == SUP_DONE ? 0 : 1;
done:
	if (rc < 0 && s.pid > 0 && !s.adopted)
		launch_signal(s.pid, SIGKILL);
	teardown(&s);
	return rc;
}

/* Resolves the run name for --resume without one. Opened and closed here so
 * sup_run stays one path. */
int sup_latest_run(const char *ws, char *out, size_t cap)
{
	sup s = {0};
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/tend.db", ws);
	int rc = store_open(&s.st, path, STORE_READONLY);
	if (rc == 0)
		rc = latest_run(&s, out, cap);
	store_close(s.st);
	return rc;
}
