/*
 * sup_watch.c - wakes the ingest when the trainer writes. inotify on the
 * directories holding the metrics and log files turns a write into a
 * wake-up at once, so an incident is found within a millisecond or two
 * instead of up to one polling period, and a supervisor whose trainer
 * writes a line a second wakes about once a second instead of fifty
 * times. After each wake the watch rests for SUP_WATCH_GAP_MS, so a
 * trainer printing thousands of lines a second is read in batches.
 *
 * Without inotify (or when it fails) the ingest timer polls every 20 ms,
 * as it always did; with it the timer commits open batches and catches
 * anything a watch could miss, and when it keeps finding lines no event
 * announced, polling takes over for good.
 */
#include "sup_int.h"
#include "tend.h"

#include <stdio.h>
#include <libgen.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define WATCH_MASK (IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF | \
		    IN_MOVE_SELF)

static void on_watch(ev_loop *l, int fd, int revents, void *ud);

/* Adds a watch on the directory holding path. */
static int watch_dir_of(int fd, const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	return inotify_add_watch(fd, dirname(dir), WATCH_MASK) < 0 ? -1 : 0;
}

int sup__watch_open(sup *s)
{
	s->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->watch_fd < 0)
		return 0; /* polling it is */
	const char *paths[] = {s->metrics_path, s->out_path, s->err_path};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		if (watch_dir_of(s->watch_fd, paths[i]) < 0) {
			sup__watch_close(s);
			return 0;
		}
	if (ev_io_add(s->loop, s->watch_fd, POLLIN, on_watch, s) < 0) {
		sup__watch_close(s);
		return 0;
	}
	return 0;
}

void sup__watch_close(sup *s)
{
	if (s->watch_fd < 0)
		return;
	if (s->loop)
		ev_io_del(s->loop, s->watch_fd);
	close(s->watch_fd);
	s->watch_fd = -1;
}

long sup__ingest_period_ms(const sup *s)
{
	return s->watch_fd >= 0 ? SUP_WATCH_POLL_MS : SUP_POLL_MS;
}

static long resume_watch(ev_loop *l, void *ud)
{
	sup *s = ud;
	s->watch_resting = false;
	if (s->watch_fd >= 0)
		ev_io_add(l, s->watch_fd, POLLIN, on_watch, s);
	return EV_TIMER_STOP;
}

static bool is_ours(const sup *s, const char *name)
{
	const char *paths[] = {s->metrics_path, s->out_path, s->err_path};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		const char *base = strrchr(paths[i], '/');
		if (strcmp(base ? base + 1 : paths[i], name) == 0)
			return true;
	}
	return false;
}

/* True when the events name one of our files, a directory itself, or
 * overflowed: the store's own files or a control file written beside the
 * metrics must not wake the ingest. */
static bool drain(sup *s, int fd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool ours = false;
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const struct inotify_event *)p;
			ours |= e->len == 0 || (e->mask & IN_Q_OVERFLOW) || is_ours(s, e->name);
			p += sizeof *e + e->len;
		}
	}
	return ours;
}

static void on_watch(ev_loop *l, int fd, int revents, void *ud)
{
	(void)revents;
	sup *s = ud;
	if (!drain(s, fd))
		return;
	s->watch_misses = 0; /* it does see the writer */
	ev_io_del(l, fd);
	s->watch_resting = true;
	ev_timer_add(l, SUP_WATCH_GAP_MS, resume_watch, s, NULL);
	sup__ingest_wake(s);
}

int sup__ingest_wake(sup *s)
{
	int n = sup__ingest_tick(s);
	if (n >= 0)
		return n;
	sup__event(s, s->last_step, "store_error", tend_error_last());
	fprintf(stderr, "tend: ingest failed: %s\n", tend_error_last());
	ev_stop(s->loop);
	return -1;
}

/* Bytes of events waiting on the watch. */
static int pending(int fd)
{
	int n = 0;
	return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

long sup__ingest_timer(sup *s)
{
	bool backlog = s->backlog;
	int n = sup__ingest_wake(s);
	if (n < 0)
		return EV_TIMER_STOP;
	/* New lines that no event announced, and no backlog of a capped read
	 * (a resumed run's files, a burst) to explain them: the watch cannot
	 * see the writer (a network filesystem written from another host, a
	 * hard link in another directory). A few in a row, and polling takes
	 * over. */
	if (n == 0 || backlog || s->watch_fd < 0 || s->watch_resting || pending(s->watch_fd) != 0)
		return sup__ingest_period_ms(s);
	if (++s->watch_misses >= SUP_WATCH_MISSES) {
		sup__watch_close(s);
		sup__event(s, s->last_step, "ingest", "writes to the run's files come without "
			   "inotify events: polling every 20 ms from now on");
	}
	return sup__ingest_period_ms(s);
}
