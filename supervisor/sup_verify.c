/*
 * sup_verify.c - the checkpoint a restart or rollback resumes from, found
 * without blocking the loop. Verifying a checkpoint reads and hashes all of
 * it (gigabytes for a real model), so the search runs in a forked child
 * that answers through a pipe the loop watches; the run waits in backoff
 * meanwhile and the answer starts the trainer. One search at a time.
 *
 * Verdicts are remembered by file identity (device, inode, size, mtime): a
 * checkpoint verified once is not hashed again while it is unchanged (the
 * trainer replaces a checkpoint by rename, never rewrites it in place).
 *
 * The child answers one line per verdict: "bad I" for each candidate that
 * fails, then "good I STEP" or "none". Anything else, or a child that dies,
 * counts as no good checkpoint: a fresh start, with a "verify_failed" event
 * saying why.
 */
#include "sup_int.h"
#include "ckpt.h"
#include "clock.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- candidates and remembered verdicts ---------------------------------- */

static bool same_file(const sup_vfile *a, const sup_vfile *b)
{
	return strcmp(a->name, b->name) == 0 && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void remember(sup_verify *v, const sup_vfile *f)
{
	size_t i = 0;
	while (i < v->n_cache && strcmp(v->cache[i].name, f->name) != 0)
		i++;
	if (i == SUP_VCACHE) { /* full: replace the oldest */
		i = v->next_slot;
		v->next_slot = (v->next_slot + 1) % SUP_VCACHE;
	} else if (i == v->n_cache) {
		v->n_cache++;
	}
	v->cache[i] = *f;
}

/* Fills f from the file; false when it is gone. An unchanged file whose
 * verdict is remembered takes it. */
static bool identify(sup_verify *v, sup_vfile *f, const char *dir, const ckpt_entry *e)
{
	char path[PATH_MAX + 48];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, e->name);
	if (stat(path, &st) < 0)
		return false;
	*f = (sup_vfile){.step = e->step, .dev = st.st_dev, .ino = st.st_ino,
		.size = st.st_size, .mtime = st.st_mtim, .known = -1};
	snprintf(f->name, sizeof f->name, "%s", e->name);
	for (size_t i = 0; i < v->n_cache; i++) {
		if (same_file(&v->cache[i], f)) {
			f->known = v->cache[i].known;
			f->step = v->cache[i].step;
		}
	}
	return true;
}

/* The candidates in the order they are tried: newest first below
 * before[0], then newest first from there up to before[1] (a rollback's
 * fallback). */
static int list_candidates(sup_verify *v, const char *dir, const long before[2])
{
	ckpt_entry *e = NULL;
	size_t n = 0;
	int rc = ckpt_list(dir, &e, &n);
	if (rc < 0)
		return rc;
	v->cand = calloc(n ? n : 1, sizeof *v->cand);
	if (!v->cand) {
		free(e);
		return tend_error_set(TEND_ENOMEM, "checkpoint search: out of memory");
	}
	for (size_t i = 0; i < n; i++)
		if (e[i].step < before[0] && identify(v, &v->cand[v->n_cand], dir, &e[i]))
			v->n_cand++;
	for (size_t i = 0; i < n; i++)
		if (e[i].step >= before[0] && e[i].step < before[1] &&
		    identify(v, &v->cand[v->n_cand], dir, &e[i]))
			v->n_cand++;
	free(e);
	return 0;
}

/* ---- the answer ---------------------------------------------------------- */

static void on_line(sup_verify *v, const char *line)
{
	size_t i;
	long step;
	int end = -1;
	if (v->answered) {
		v->garbage = true; /* nothing follows the answer */
	} else if (sscanf(line, "bad %zu%n", &i, &end) == 1 && line[end] == '\0' &&
		   i < v->n_cand) {
		v->cand[i].known = 0;
		remember(v, &v->cand[i]);
		v->rejected++;
	} else if (sscanf(line, "good %zu %ld%n", &i, &step, &end) == 2 && line[end] == '\0' &&
		   i < v->n_cand && step >= 0) {
		v->cand[i].known = 1;
		v->cand[i].step = step;
		remember(v, &v->cand[i]);
		v->found = (long)i;
		v->step = step;
		v->answered = true;
	} else if (strcmp(line, "none") == 0) {
		v->answered = true;
	} else {
		v->garbage = true;
	}
}

static void feed(sup_verify *v, const char *buf, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (buf[k] == '\n') {
			v->line[v->len] = '\0';
			on_line(v, v->line);
			v->len = 0;
		} else if (v->len + 1 < sizeof v->line) {
			v->line[v->len++] = buf[k];
		} else {
			v->garbage = true; /* a line longer than any answer */
		}
	}
}

/* ---- the search (in the child, or in the loop when there is no child) --- */

/* Only ever in the child: a write that fails ends it, and the parent takes
 * the missing answer for a failed search. */
static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(4);
		p += w;
		n -= (size_t)w;
	}
}

static void say(sup_verify *v, int fd, const char *line)
{
	if (fd >= 0)
		write_all(fd, line, strlen(line));
	else
		feed(v, line, strlen(line));
}

/* The candidate's step when it verifies (or is remembered good), else -1. */
static long check(const sup_vfile *f, const char *dir)
{
	char path[PATH_MAX + 48];
	ckpt *c = NULL;
	long step = -1;
	if (f->known >= 0)
		return f->known ? f->step : -1;
	snprintf(path, sizeof path, "%s/%s", dir, f->name);
	if (ckpt_open(&c, path) == 0)
		step = ckpt_step(c);
	ckpt_free(c);
	return step < 0 ? -1 : step;
}

/* Tries the candidates in order and tells each verdict: down the pipe fd
 * (in the child), or straight to the parser (fd < 0). */
static void search(sup_verify *v, const char *dir, int fd)
{
	char line[64];
	for (size_t i = 0; i < v->n_cand; i++) {
		long step = check(&v->cand[i], dir);
		if (step >= 0)
			snprintf(line, sizeof line, "good %zu %ld\n", i, step);
		else
			snprintf(line, sizeof line, "bad %zu\n", i);
		say(v, fd, line);
		if (step >= 0)
			return;
	}
	say(v, fd, "none\n");
}

/* The forked child: dies with the supervisor (no orphan hashing on, no
 * inherited workspace lock kept), holds no descriptor but its pipe, and
 * ends with _exit (the parent's atexit handlers and stdio are not its). */
static _Noreturn void child_main(sup *s, const int p[2], pid_t parent, const char *dir)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(3);
	prctl(PR_SET_NAME, "tend-verify");
	close(p[0]);
	close_range((unsigned)p[1] + 1, ~0U, 0);
	if (p[1] > 3)
		close_range(3, (unsigned)p[1] - 1, 0);
	search(&s->verify, dir, p[1]);
	_exit(0);
}

/* ---- the search's end ----------------------------------------------------- */

static void report(sup *s, bool hashed)
{
	sup_verify *v = &s->verify;
	char msg[256];
	double dt = tend_mono_ns() / 1e9 - v->t0;
	if (v->n_cand == 0)
		return; /* nothing to check: the rollback or start says so */
	if (v->found >= 0 && hashed)
		snprintf(msg, sizeof msg, "%s (step %ld) verifies; %zu newer rejected; %.2f s",
			 v->cand[v->found].name, v->step, v->rejected, dt);
	else if (v->found >= 0)
		snprintf(msg, sizeof msg, "%s (step %ld) verified before and unchanged: not "
			 "hashed again", v->cand[v->found].name, v->step);
	else
		snprintf(msg, sizeof msg, "none of %zu checkpoints verifies; %.2f s", v->n_cand, dt);
	sup__event(s, s->last_step, "verify", msg);
}

/* Puts the answer into s->next: the good checkpoint, or a fresh start
 * (none found, or why says how the search failed). */
static void conclude(sup *s, const char *why, bool hashed)
{
	sup_verify *v = &s->verify;
	sup_restart *r = &s->next;
	bool good = !why && v->found >= 0;
	if (why) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s: no good checkpoint: fresh start", why);
		sup__event(s, s->last_step, "verify_failed", msg);
	} else {
		report(s, hashed);
	}
	r->resume[0] = '\0';
	if (good)
		snprintf(r->resume, sizeof r->resume, "%s/checkpoints/%s", s->run_dir,
			 v->cand[v->found].name);
	r->from_step = good ? v->step : 0;
	if (r->rollback)
		sup__rollback_event(s);
	r->rollback = false;
	free(v->cand);
	v->cand = NULL;
	v->n_cand = 0;
}

/* Once the pipe is closed and the child reaped: judge, then start the
 * trainer, unless the run ended meanwhile (it waits in backoff until
 * then; a stop or give-up moves it on). */
static void finish(sup *s)
{
	sup_verify *v = &s->verify;
	char why[160] = "";
	if (!v->busy || v->reading || !v->reaped)
		return;
	v->busy = false;
	if (WIFSIGNALED(v->status))
		snprintf(why, sizeof why, "checkpoint verification (pid %d) was killed by signal %d",
			 (int)v->pid, WTERMSIG(v->status));
	else if (!WIFEXITED(v->status) || WEXITSTATUS(v->status) != 0)
		snprintf(why, sizeof why, "checkpoint verification (pid %d) exited with status %d",
			 (int)v->pid, WEXITSTATUS(v->status));
	else if (!v->answered || v->garbage)
		snprintf(why, sizeof why, "checkpoint verification (pid %d) gave no valid answer",
			 (int)v->pid);
	if (s->state != SUP_BACKOFF) {
		free(v->cand);
		v->cand = NULL;
		v->n_cand = 0;
		return;
	}
	conclude(s, why[0] ? why : NULL, true);
	if (sup__start_trainer(s) < 0)
		sup__giveup(s, tend_error_last());
}

static void on_pipe(ev_loop *l, int fd, int revents, void *ud)
{
	sup *s = ud;
	sup_verify *v = &s->verify;
	char buf[512];
	ssize_t n;
	(void)revents;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		feed(v, buf, (size_t)n);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	ev_io_del(l, fd); /* EOF: the child is done or dead */
	close(fd);
	v->reading = false;
	if (v->len)
		v->garbage = true; /* an unfinished line */
	finish(s);
}

static int start_child(sup *s, const char *dir)
{
	sup_verify *v = &s->verify;
	int p[2], rc;
	pid_t parent = getpid();
	if (pipe2(p, O_CLOEXEC) < 0)
		return tend_error_os("checkpoint verification: pipe");
	pid_t pid = fork();
	if (pid == 0)
		child_main(s, p, parent, dir);
	close(p[1]);
	if (pid < 0) {
		rc = tend_error_os("checkpoint verification: fork");
		close(p[0]);
		return rc;
	}
	rc = fcntl(p[0], F_SETFL, O_NONBLOCK) < 0 ? tend_error_os("checkpoint verification: pipe") :
	     ev_io_add(s->loop, p[0], POLLIN, on_pipe, s);
	if (rc < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(p[0]);
		return rc;
	}
	v->busy = v->reading = true;
	v->pid = pid;
	v->fd = p[0];
	return 0;
}

/* ---- the supervisor's side ------------------------------------------------ */

/* Searches in the loop, hashing only what no verdict is remembered for
 * (none left: no cost; fork failed: the old, blocking way). */
static void search_here(sup *s, const char *dir, bool hashed)
{
	search(&s->verify, dir, -1);
	conclude(s, NULL, hashed);
}

static bool all_known(const sup_verify *v)
{
	for (size_t i = 0; i < v->n_cand; i++)
		if (v->cand[i].known != 0)
			return v->cand[i].known == 1;
	return true;
}

int sup__verify_resolve(sup *s)
{
	sup_verify *v = &s->verify;
	const sup_restart *r = &s->next;
	char dir[PATH_MAX + 16], msg[160];
	if (v->busy)
		return 1; /* one search at a time: its answer starts the trainer */
	if (!r->rollback && strcmp(r->resume, "latest") != 0)
		return 0;
	long before[2] = {LONG_MAX, LONG_MIN};
	if (r->rollback)
		memcpy(before, r->before, sizeof before);
	snprintf(dir, sizeof dir, "%s/checkpoints", s->run_dir);
	v->found = v->step = -1;
	v->rejected = v->len = 0;
	v->answered = v->garbage = v->reaped = false;
	v->t0 = tend_mono_ns() / 1e9;
	if (list_candidates(v, dir, before) < 0) {
		conclude(s, tend_error_last(), false);
		return 0;
	}
	if (all_known(v)) {
		search_here(s, dir, false);
		return 0;
	}
	if (start_child(s, dir) < 0) {
		snprintf(msg, sizeof msg, "%s: verifying in the loop", tend_error_last());
		sup__event(s, s->last_step, "verify_failed", msg);
		search_here(s, dir, true);
		return 0;
	}
	snprintf(msg, sizeof msg, "verifying up to %zu checkpoints, newest first, in a child "
		 "process (pid %d)", v->n_cand, (int)v->pid);
	sup__event(s, s->last_step, "verify", msg);
	return 1;
}

bool sup__verify_reaped(sup *s, pid_t pid, int status)
{
	sup_verify *v = &s->verify;
	if (!v->busy || v->reaped || pid != v->pid)
		return false;
	v->reaped = true;
	v->status = status;
	finish(s);
	return true;
}

void sup__verify_cancel(sup *s)
{
	sup_verify *v = &s->verify;
	if (!v->busy)
		return;
	if (!v->reaped) {
		char msg[160];
		kill(v->pid, SIGKILL);
		while (waitpid(v->pid, NULL, 0) < 0 && errno == EINTR)
			;
		snprintf(msg, sizeof msg, "the run ended before checkpoint verification did: "
			 "killed its child (pid %d)", (int)v->pid);
		sup__event(s, s->last_step, "verify", msg);
	}
	if (v->reading) {
		ev_io_del(s->loop, v->fd);
		close(v->fd);
	}
	v->busy = v->reading = false;
	free(v->cand);
	v->cand = NULL;
	v->n_cand = 0;
}
