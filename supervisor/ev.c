/*
 * ev.c - poll()-based event loop with monotonic timers and signalfd.
 *
 * The loop is small on purpose: a supervisor watches a handful of fds
 * (signals, curl sockets, a control socket) and a handful of timers, so
 * linear scans beat any clever structure here.
 */
#include "ev.h"
#include "clock.h"
#include "tend.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	int fd;
	short events;
	ev_io_fn fn;
	void *ud;
} io_watch;

typedef struct {
	int64_t id;
	double due;
	ev_timer_fn fn;
	void *ud;
	uint64_t pass; /* the run_timers pass that last fired it */
} timer;

typedef struct {
	int signo;
	ev_signal_fn fn;
	void *ud;
} sig_watch;

struct ev_loop {
	io_watch *io;
	size_t n_io, cap_io;
	timer *timers;
	size_t n_timers, cap_timers;
	int64_t next_timer_id;
	sig_watch sigs[16];
	size_t n_sigs;
	int sigfd;
	sigset_t sigmask;
	struct pollfd *pfd;
	size_t cap_pfd;
	double now;
	uint64_t pass;
	bool stop;
};

int ev_new(ev_loop **out)
{
	ev_loop *l = calloc(1, sizeof *l);
	if (!l)
		return tend_error_set(TEND_ENOMEM, "event loop: out of memory");
	l->sigfd = -1;
	l->next_timer_id = 1;
	sigemptyset(&l->sigmask);
	l->now = tend_mono_s();
	*out = l;
	return 0;
}

void ev_free(ev_loop *l)
{
	if (!l)
		return;
	if (l->sigfd >= 0) {
		/* A signal that came after the last turn has no loop left to act
		 * on it: drop it, or unblocking would deliver it with its default
		 * action (SIGHUP, SIGTERM: death) to a process that is finishing. */
		struct timespec zero = {0, 0};
		while (sigtimedwait(&l->sigmask, NULL, &zero) > 0)
			;
		close(l->sigfd);
		sigprocmask(SIG_UNBLOCK, &l->sigmask, NULL);
	}
	free(l->io);
	free(l->timers);
	free(l->pfd);
	free(l);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 8;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return tend_error_set(TEND_ENOMEM, "event loop: out of memory");
	*p = q;
	*cap = n;
	return 0;
}

int ev_io_add(ev_loop *l, int fd, short events, ev_io_fn fn, void *ud)
{
	for (size_t i = 0; i < l->n_io; i++) {
		if (l->io[i].fd == fd) {
			l->io[i] = (io_watch){fd, events, fn, ud};
			return 0;
		}
	}
	if (grow((void **)&l->io, &l->cap_io, l->n_io + 1, sizeof *l->io) < 0)
		return TEND_ENOMEM;
	l->io[l->n_io++] = (io_watch){fd, events, fn, ud};
	return 0;
}

void ev_io_del(ev_loop *l, int fd)
{
	for (size_t i = 0; i < l->n_io; i++) {
		if (l->io[i].fd == fd) {
			l->io[i] = l->io[--l->n_io];
			return;
		}
	}
}

int ev_timer_add(ev_loop *l, long ms, ev_timer_fn fn, void *ud, int64_t *out_id)
{
	if (grow((void **)&l->timers, &l->cap_timers, l->n_timers + 1,
		 sizeof *l->timers) < 0)
		return TEND_ENOMEM;
	int64_t id = l->next_timer_id++;
	l->timers[l->n_timers++] = (timer){id, tend_mono_s() + (double)ms / 1000.0, fn, ud, 0};
	if (out_id)
		*out_id = id;
	return 0;
}

void ev_timer_del(ev_loop *l, int64_t id)
{
	for (size_t i = 0; i < l->n_timers; i++) {
		if (l->timers[i].id == id) {
			l->timers[i] = l->timers[--l->n_timers];
			return;
		}
	}
}

int ev_signal_add(ev_loop *l, int signo, ev_signal_fn fn, void *ud)
{
	if (l->n_sigs == sizeof l->sigs / sizeof l->sigs[0])
		return tend_error_set(TEND_EINVAL, "event loop: too many signals");
	sigaddset(&l->sigmask, signo);
	if (sigprocmask(SIG_BLOCK, &l->sigmask, NULL) < 0)
		return tend_error_os("sigprocmask");
	int fd = signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return tend_error_os("signalfd");
	l->sigfd = fd;
	l->sigs[l->n_sigs++] = (sig_watch){signo, fn, ud};
	return 0;
}

void ev_child_sigmask_reset(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

void ev_stop(ev_loop *l)
{
	l->stop = true;
}

double ev_now(ev_loop *l)
{
	return l->now;
}

/* Milliseconds until the earliest timer, capped by max_ms (-1 = none). */
static int poll_timeout(ev_loop *l, long max_ms)
{
	long best = max_ms;
	for (size_t i = 0; i < l->n_timers; i++) {
		double d = (l->timers[i].due - l->now) * 1000.0;
		long ms = d <= 0 ? 0 : (long)d + 1;
		if (best < 0 || ms < best)
			best = ms;
	}
	return best > 1000000 ? 1000000 : (int)best;
}

static void run_signals(ev_loop *l)
{
	struct signalfd_siginfo si;
	while (read(l->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		for (size_t i = 0; i < l->n_sigs; i++)
			if ((int)si.ssi_signo == l->sigs[i].signo)
				l->sigs[i].fn(l, l->sigs[i].signo, l->sigs[i].ud);
	}
}

/* The earliest due timer not yet fired in this pass; NULL when none. By
 * deadline, not by position: after a late wake-up several are due at once
 * and must still fire in the order they fell due. */
static timer *next_due(ev_loop *l)
{
	timer *best = NULL;
	for (size_t i = 0; i < l->n_timers; i++) {
		timer *t = &l->timers[i];
		if (t->due <= l->now && t->pass != l->pass && (!best || t->due < best->due))
			best = t;
	}
	return best;
}

/* Fires due timers, each at most once a pass. A callback may add or delete
 * timers (the array moves), so the timer is looked up again by id after. */
static void run_timers(ev_loop *l)
{
	timer *t;
	l->pass++;
	while ((t = next_due(l))) {
		t->pass = l->pass;
		int64_t id = t->id;
		long next = t->fn(l, t->ud);
		size_t j;
		for (j = 0; j < l->n_timers && l->timers[j].id != id; j++)
			;
		if (j == l->n_timers)
			continue; /* the callback removed it */
		if (next < 0)
			l->timers[j] = l->timers[--l->n_timers];
		else
			l->timers[j].due = tend_mono_s() + (double)next / 1000.0;
	}
}

int ev_run_once(ev_loop *l, long max_ms)
{
	size_t n = l->n_io + (l->sigfd >= 0);
	if (grow((void **)&l->pfd, &l->cap_pfd, n ? n : 1, sizeof *l->pfd) < 0)
		return TEND_ENOMEM;
	for (size_t i = 0; i < l->n_io; i++)
		l->pfd[i] = (struct pollfd){l->io[i].fd, l->io[i].events, 0};
	if (l->sigfd >= 0)
		l->pfd[l->n_io] = (struct pollfd){l->sigfd, POLLIN, 0};
	l->now = tend_mono_s();
	int rc = poll(l->pfd, n, poll_timeout(l, max_ms));
	l->now = tend_mono_s();
	if (rc < 0 && errno != EINTR)
		return tend_error_os("poll");
	if (rc > 0) {
		if (l->sigfd >= 0 && l->pfd[n - 1].revents)
			run_signals(l);
		/* Dispatch by fd: watchers may change while we iterate. */
		for (size_t i = 0; i < n - (l->sigfd >= 0); i++) {
			if (!l->pfd[i].revents)
				continue;
			for (size_t k = 0; k < l->n_io; k++) {
				if (l->io[k].fd == l->pfd[i].fd) {
					l->io[k].fn(l, l->pfd[i].fd, l->pfd[i].revents, l->io[k].ud);
					break;
				}
			}
		}
	}
	run_timers(l);
	return 0;
}

int ev_run(ev_loop *l)
{
	l->stop = false;
	while (!l->stop) {
		int rc = ev_run_once(l, -1);
		if (rc < 0)
			return rc;
	}
	return 0;
}
