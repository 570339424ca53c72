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
 * Only what the file's bytes say is remembered (a checksum or format
 * failure); a file that could not be read (EIO, EACCES, ENOMEM from mmap)
 * is skipped for this search only and read again by the next.
 *
 * The child answers one line per candidate, in order, as it goes: "bad I"
 * (corrupt), "unreadable I WHY" (could not be read), then "good I STEP" or
 * "none". So when it dies (SIGKILL from a user or the OOM killer, SIGBUS
 * from a checkpoint truncated while mapped) or answers garbage, the
 * candidate it was checking is the first one it had not answered for:
 * that one is skipped for this search (not remembered as corrupt) and a
 * new child takes the rest. Each failed child removes one candidate, so
 * a search starts at most one child per candidate.
 *
 * A child is killed only when it makes no progress: every
 * recovery.verify_timeout_s its CPU time (utime + stime) is read, and a
 * child that hashes accrues some whenever bytes arrive, however slowly,
 * while one hung in a read accrues none. A hung read means the storage
 * hangs, and the next child would hang on it too, so the search stops
 * there. A child in uninterruptible sleep cannot be reaped even after
 * SIGKILL, so the loop kills it, waits briefly at most, and leaves it to
 * be reaped whenever it ends.
 *
 * The search starts from scratch only when every candidate was proven
 * corrupt (or there was none). When none verified but some could not be
 * checked (unreadable, child died or hung), those may well be fine: the
 * run gives up, asking for the storage to be checked and the run resumed,
 * rather than throw its progress away.
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

/* Forgets the verdict on f (an answer that came with garbage after it). */
static void forget(sup_verify *v, const sup_vfile *f)
{
	for (size_t i = 0; i < v->n_cache; i++)
		if (same_file(&v->cache[i], f))
			v->cache[i].known = -1;
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

/* The child says it is done with candidate i: only ever the next one. */
static bool in_order(sup_verify *v, size_t i)
{
	if (i != v->next || i >= v->n_cand)
		return false;
	v->next++;
	return true;
}

static void unreadable(sup *s, size_t i, const char *why)
{
	sup_verify *v = &s->verify;
	char msg[PATH_MAX];
	v->cand[i].known = -2;
	if (v->unchecked++ == 0)
		snprintf(v->first, sizeof v->first, "%s could not be read (%.100s)",
			 v->cand[i].name, why);
	snprintf(msg, sizeof msg, "%s could not be read (%s): skipped for this search, not "
		 "marked corrupt", v->cand[i].name, why);
	sup__event(s, s->last_step, "verify", msg);
}

static bool on_line(sup *s, const char *line)
{
	sup_verify *v = &s->verify;
	size_t i;
	long step;
	int end = -1;
	if (sscanf(line, "bad %zu%n", &i, &end) == 1 && line[end] == '\0' && in_order(v, i)) {
		v->cand[i].known = 0;
		remember(v, &v->cand[i]);
		v->rejected++;
	} else if (sscanf(line, "unreadable %zu %n", &i, &end) == 1 && end > 0 &&
		   line[end - 1] == ' ' && line[end] != '\0' && in_order(v, i)) {
		unreadable(s, i, line + end);
	} else if (sscanf(line, "good %zu %ld%n", &i, &step, &end) == 2 && line[end] == '\0' &&
		   step >= 0 && in_order(v, i)) {
		v->cand[i].known = 1;
		v->cand[i].step = step;
		remember(v, &v->cand[i]);
		v->found = (long)i;
		v->step = step;
		v->answered = true;
	} else if (strcmp(line, "none") == 0 && v->next == v->n_cand) {
		v->answered = true;
	} else {
		return false;
	}
	return true;
}

/* Parses what the child wrote. The first thing that is not the next
 * expected line (or anything after the answer) ends the child: its later
 * lines could not be trusted either. */
static void feed(sup *s, const char *buf, size_t n)
{
	sup_verify *v = &s->verify;
	for (size_t k = 0; k < n && !v->garbage; k++) {
		if (buf[k] == '\n') {
			v->line[v->len] = '\0';
			v->garbage = v->answered || !on_line(s, v->line);
			v->len = 0;
		} else if (v->len + 1 < sizeof v->line) {
			v->line[v->len++] = buf[k];
		} else {
			v->garbage = true; /* a line longer than any answer */
		}
	}
	if (v->garbage && v->pid > 0 && !v->reaped)
		kill(v->pid, SIGKILL);
}

/* ---- the search (in the child, or in the loop when there is no child) --- */

/* Only ever in the child: a write that fails ends it, and the parent takes
 * the missing answer for a failed child. */
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

static void say(sup *s, int fd, const char *line)
{
	if (fd >= 0)
		write_all(fd, line, strlen(line));
	else
		feed(s, line, strlen(line));
}

/* The answer line for candidate i. Only a checksum or format failure
 * (TEND_EINVAL, TEND_EVERSION: the bytes say so) is "bad"; anything else
 * (I/O error, permission, out of memory, gone) is "unreadable" with the
 * reason, the path left out and the text kept to one short line. */
static void check(char *line, size_t cap, const sup_vfile *f, size_t i, const char *dir)
{
	char path[PATH_MAX + 48];
	ckpt *c = NULL;
	if (f->known == 1 || f->known == 0) {
		snprintf(line, cap, f->known ? "good %zu %ld\n" : "bad %zu\n", i, f->step);
		return;
	}
	snprintf(path, sizeof path, "%s/%s", dir, f->name);
	int rc = ckpt_open(&c, path);
	long step = rc == 0 ? ckpt_step(c) : -1;
	ckpt_free(c);
	if (rc == 0 && step >= 0) {
		snprintf(line, cap, "good %zu %ld\n", i, step);
	} else if (rc == 0 || rc == TEND_EINVAL || rc == TEND_EVERSION) {
		snprintf(line, cap, "bad %zu\n", i);
	} else {
		const char *why = tend_error_last();
		size_t n = strlen(path);
		if (strncmp(why, path, n) == 0 && strncmp(why + n, ": ", 2) == 0)
			why += n + 2;
		snprintf(line, cap, "unreadable %zu %.100s", i, *why ? why : "unknown error");
		for (char *p = line; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		strcat(line, "\n");
	}
}

/* Tries the candidates in order from v->next and tells each verdict as
 * it is reached: down the pipe fd (in the child), or straight to the
 * parser (fd < 0). */
static void search(sup *s, const char *dir, int fd)
{
	sup_verify *v = &s->verify;
	char line[160];
	for (size_t i = v->next; i < v->n_cand; i++) {
		check(line, sizeof line, &v->cand[i], i, dir);
		say(s, fd, line);
		if (strncmp(line, "good ", 5) == 0)
			return;
	}
	say(s, fd, "none\n");
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
	search(s, dir, p[1]);
	_exit(0);
}

/* ---- the search's end ----------------------------------------------------- */

static void report(sup *s, bool hashed)
{
	sup_verify *v = &s->verify;
	char msg[256], more[64] = "";
	double dt = tend_mono_s() - v->t0;
	if (v->n_cand == 0)
		return; /* nothing to check: the rollback or start says so */
	if (v->unchecked)
		snprintf(more, sizeof more, ", %zu could not be checked", v->unchecked);
	if (v->found >= 0 && hashed)
		snprintf(msg, sizeof msg, "%s (step %ld) verifies; %zu newer rejected%s; %.2f s",
			 v->cand[v->found].name, v->step, v->rejected, more, dt);
	else if (v->found >= 0)
		snprintf(msg, sizeof msg, "%s (step %ld) verified before and unchanged: not "
			 "hashed again", v->cand[v->found].name, v->step);
	else
		snprintf(msg, sizeof msg, "none of %zu checkpoints verifies; %.2f s", v->n_cand, dt);
	sup__event(s, s->last_step, "verify", msg);
}

/* Ends the search (no child left) and forgets its candidates. */
static void drop(sup_verify *v)
{
	v->busy = false;
	v->pid = 0;
	free(v->cand);
	v->cand = NULL;
	v->n_cand = 0;
}

/* No checkpoint verified, but `skipped` of them were never proven
 * corrupt: the give-up that ends the search, said in v->giveup for the
 * caller to carry out (sup__giveup). The candidates from v->next on were
 * not tried (the search stopped at a hung read). */
static void stuck(sup *s, size_t skipped)
{
	sup_verify *v = &s->verify;
	char more[96] = "";
	size_t untried = v->n_cand - v->next;
	if (untried)
		snprintf(more, sizeof more, ", %zu not tried after it", untried);
	else if (v->unchecked > 1)
		snprintf(more, sizeof more, ", and %zu more", v->unchecked - 1);
	snprintf(v->giveup, sizeof v->giveup, "no checkpoint could be verified (%zu of %zu could "
		 "not be checked: %s%s): not starting from scratch; check the storage, then "
		 "`tend run %.128s --resume`", skipped, v->n_cand, v->first, more, s->name);
	v->give_up = true;
	s->next.resume[0] = '\0';
	s->next.rollback = false;
	drop(v);
}

/* Puts the answer into s->next: the good checkpoint, or a fresh start
 * when every candidate is corrupt (or why says how the search failed);
 * a give-up (v->give_up) when some could not be checked. */
static void conclude(sup *s, const char *why, bool hashed)
{
	sup_verify *v = &s->verify;
	sup_restart *r = &s->next;
	bool good = !why && v->found >= 0;
	size_t skipped = v->unchecked + (v->n_cand - v->next);
	if (!good && skipped > 0) {
		stuck(s, skipped);
		return;
	}
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
	drop(v);
}

/* Searches in the loop, hashing only what no verdict is remembered for
 * (none left: no cost; fork failed: the old, blocking way). */
static void search_here(sup *s, const char *dir, bool hashed)
{
	search(s, dir, -1);
	conclude(s, s->verify.garbage ? "checkpoint verification in the loop gave no answer" :
		 NULL, hashed);
}

/* Nothing from v->next on needs hashing: the cached verdicts answer. */
static bool all_known(const sup_verify *v)
{
	for (size_t i = v->next; i < v->n_cand; i++)
		if (v->cand[i].known != 0)
			return v->cand[i].known == 1;
	return true;
}

/* Waits at most about 0.2 s for a child sent SIGKILL: one in
 * uninterruptible sleep (a hung read) cannot end before its read does,
 * and the loop must not hang on it. True when it was reaped. */
static bool reap_briefly(pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return r == pid || errno == ECHILD;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return false;
}

static int start_child(sup *s, const char *dir);

/* Goes on from candidate v->next: in the loop when the cached verdicts
 * answer (or fork fails), else in a new child. 1 while a child verifies,
 * 0 once s->next is resolved. */
static int go_on(sup *s, const char *dir)
{
	sup_verify *v = &s->verify;
	char msg[160];
	if (all_known(v)) {
		search_here(s, dir, v->children > 0);
		return 0;
	}
	if (start_child(s, dir) < 0) {
		snprintf(msg, sizeof msg, "%s: verifying in the loop", tend_error_last());
		sup__event(s, s->last_step, "verify_failed", msg);
		search_here(s, dir, true);
		return 0;
	}
	size_t n = v->n_cand - v->next;
	snprintf(msg, sizeof msg, "verifying up to %zu checkpoint%s, newest first, in a child "
		 "process (pid %d)", n, n == 1 ? "" : "s", (int)v->pid);
	sup__event(s, s->last_step, "verify", msg);
	return 1;
}

/* What went wrong with a child that gave no valid answer, naming the
 * candidate it was checking, which is skipped for this search. */
static void child_failed(sup *s)
{
	sup_verify *v = &s->verify;
	char why[96], msg[PATH_MAX];
	int pid = (int)v->pid;
	if (v->found >= 0) { /* its answer, then more: the answer is not trusted */
		forget(v, &v->cand[v->found]);
		v->next = (size_t)v->found;
		v->found = v->step = -1;
	}
	if (v->expired)
		snprintf(why, sizeof why, "made no progress (no CPU time) for %.1f s (killed)",
			 v->limit_s);
	else if (v->garbage)
		snprintf(why, sizeof why, "gave an invalid answer");
	else if (WIFSIGNALED(v->status))
		snprintf(why, sizeof why, "was killed by signal %d", WTERMSIG(v->status));
	else if (WEXITSTATUS(v->status) != 0)
		snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(v->status));
	else
		snprintf(why, sizeof why, "ended without an answer");
	if (v->next >= v->n_cand) {
		snprintf(msg, sizeof msg, "checkpoint verification (pid %d) %s after checking "
			 "every candidate", pid, why);
	} else {
		snprintf(msg, sizeof msg, "checkpoint verification (pid %d) %s while checking "
			 "%s: skipped for this search, not marked corrupt", pid, why,
			 v->cand[v->next].name);
		if (v->unchecked++ == 0)
			snprintf(v->first, sizeof v->first, "%s: its verifier %s",
				 v->cand[v->next].name, why);
		v->cand[v->next++].known = -2;
	}
	sup__event(s, s->last_step, "verify_failed", msg);
}

/* Once the child is done with (pipe closed, reaped or given up on):
 * judge, then start the trainer or a child for the candidates left (none
 * after a hung read: the search ends there), or give up, unless the run
 * ended meanwhile (it waits in backoff until then; a stop or give-up
 * moves it on). */
static void finish(sup *s)
{
	sup_verify *v = &s->verify;
	char dir[PATH_MAX + 16];
	if (!v->busy || v->pid <= 0 || v->reading || !v->reaped)
		return;
	if (v->timer)
		ev_timer_del(s->loop, v->timer);
	v->timer = 0;
	bool answered = v->answered && !v->garbage, hung = v->expired;
	if (!answered)
		child_failed(s);
	v->pid = 0;
	v->answered = v->garbage = false; /* what is left starts clean */
	v->len = 0;
	if (s->state != SUP_BACKOFF) {
		drop(v);
		return;
	}
	snprintf(dir, sizeof dir, "%s/checkpoints", s->run_dir);
	if (answered || hung)
		conclude(s, NULL, true);
	else if (go_on(s, dir) == 1)
		return;
	if (v->give_up) {
		v->give_up = false;
		sup__giveup(s, v->giveup);
	} else if (sup__start_trainer(s) < 0) {
		sup__giveup(s, tend_error_last());
	}
}

/* Reads what the child wrote so far; true at end of file. */
static bool drain(sup *s, int fd)
{
	char buf[512];
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		feed(s, buf, (size_t)n);
	return !(n < 0 && (errno == EAGAIN || errno == EINTR));
}

static void stop_reading(sup *s)
{
	sup_verify *v = &s->verify;
	if (!v->reading)
		return;
	ev_io_del(s->loop, v->fd);
	close(v->fd);
	v->reading = false;
	if (v->len)
		v->garbage = true; /* an unfinished line */
}

static void on_pipe(ev_loop *l, int fd, int revents, void *ud)
{
	sup *s = ud;
	(void)l;
	(void)revents;
	if (!drain(s, fd))
		return;
	stop_reading(s); /* EOF: the child is done or dead */
	finish(s);
}

/* The CPU time pid has used (utime + stime, clock ticks), -1 when it
 * cannot be read. The name field may hold spaces or parentheses, so the
 * fields are counted from its last ')'. */
static long long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* Every v->limit_s: a child still at work that used CPU since the last
 * check is making progress, however slowly, and gets another interval.
 * One that did not is killed and waited for briefly at most (it may be
 * stuck in a read): the candidate it was on is skipped and the search
 * ends. What it answered before counts. An exit not reaped here is reaped
 * by the loop's SIGCHLD handler whenever it comes. */
static long on_check(ev_loop *l, void *ud)
{
	sup *s = ud;
	sup_verify *v = &s->verify;
	(void)l;
	if (v->reading)
		drain(s, v->fd);
	bool working = !v->reaped && !v->answered && !v->garbage;
	long long cpu = working ? cpu_ticks(v->pid) : -1;
	if (cpu > v->cpu) {
		v->cpu = cpu;
		return (long)(v->limit_s * 1000) + 1;
	}
	v->timer = 0;
	if (!v->reaped) {
		kill(v->pid, SIGKILL);
		reap_briefly(v->pid); /* the run may end now: leave no zombie if we can */
		v->expired = working;
		v->reaped = true;
		v->status = 0;
	}
	stop_reading(s);
	finish(s);
	return EV_TIMER_STOP;
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
	v->limit_s = s->cfg->recovery.verify_timeout_s;
	if (v->limit_s > 1e8)
		v->limit_s = 1e8; /* three years: as good as none, and fits a long */
	v->cpu = 0; /* a forked child starts with none */
	rc = fcntl(p[0], F_SETFL, O_NONBLOCK) < 0 ? tend_error_os("checkpoint verification: pipe") :
	     ev_io_add(s->loop, p[0], POLLIN, on_pipe, s);
	if (rc == 0 && (rc = ev_timer_add(s->loop, (long)(v->limit_s * 1000) + 1, on_check, s,
					  &v->timer)) < 0)
		ev_io_del(s->loop, p[0]);
	if (rc < 0) {
		kill(pid, SIGKILL);
		reap_briefly(pid);
		close(p[0]);
		return rc;
	}
	v->busy = v->reading = true;
	v->reaped = v->expired = v->answered = v->garbage = false;
	v->len = 0;
	v->pid = pid;
	v->fd = p[0];
	v->children++;
	return 0;
}

/* ---- the supervisor's side ------------------------------------------------ */

static long giveup_fired(ev_loop *l, void *ud)
{
	sup *s = ud;
	sup_verify *v = &s->verify;
	(void)l;
	v->timer = 0;
	v->busy = v->give_up = false;
	if (s->state == SUP_BACKOFF)
		sup__giveup(s, v->giveup);
	return EV_TIMER_STOP;
}

/* A give-up decided before the trainer could be started (the search ran
 * in the loop): carried out from the loop a moment later, as the caller
 * is about to put the run in backoff (and the loop may not run yet).
 * Busy until then. */
static int defer_giveup(sup *s)
{
	sup_verify *v = &s->verify;
	v->busy = true;
	if (ev_timer_add(s->loop, 0, giveup_fired, s, &v->timer) < 0) {
		v->busy = v->give_up = false;
		sup__giveup(s, v->giveup); /* out of memory: at least say so */
	}
	return 1;
}

int sup__verify_resolve(sup *s)
{
	sup_verify *v = &s->verify;
	const sup_restart *r = &s->next;
	char dir[PATH_MAX + 16];
	if (v->busy)
		return 1; /* one search at a time: its answer starts the trainer */
	if (!r->rollback && strcmp(r->resume, "latest") != 0)
		return 0;
	long before[2] = {LONG_MAX, LONG_MIN};
	if (r->rollback)
		memcpy(before, r->before, sizeof before);
	snprintf(dir, sizeof dir, "%s/checkpoints", s->run_dir);
	v->found = v->step = -1;
	v->rejected = v->unchecked = v->next = v->len = 0;
	v->answered = v->garbage = v->reaped = v->expired = v->give_up = false;
	v->first[0] = '\0';
	v->children = 0;
	v->pid = 0;
	v->timer = 0;
	v->t0 = tend_mono_s();
	if (list_candidates(v, dir, before) < 0) {
		conclude(s, tend_error_last(), false);
		return 0;
	}
	v->busy = true; /* from here, conclude ends it */
	int rc = go_on(s, dir);
	return rc == 0 && v->give_up ? defer_giveup(s) : rc;
}

bool sup__verify_reaped(sup *s, pid_t pid, int status)
{
	sup_verify *v = &s->verify;
	if (!v->busy || v->reaped || v->pid <= 0 || pid != v->pid)
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
	if (v->pid > 0 && !v->reaped) {
		char msg[200];
		kill(v->pid, SIGKILL);
		bool gone = reap_briefly(v->pid);
		snprintf(msg, sizeof msg, "the run ended before checkpoint verification did: "
			 "killed its child (pid %d)%s", (int)v->pid, gone ? "" :
			 ", which has not ended yet: left behind");
		sup__event(s, s->last_step, "verify", msg);
	}
	if (v->reading) {
		ev_io_del(s->loop, v->fd);
		close(v->fd);
		v->reading = false;
	}
	if (v->timer)
		ev_timer_del(s->loop, v->timer);
	v->timer = 0;
	v->give_up = false;
	drop(v);
}
