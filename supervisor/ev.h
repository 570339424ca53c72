/*
 * ev.h - the supervisor's single wait point: one poll() over file
 * descriptors, timers on the monotonic clock, and signals through signalfd
 * (Redis's ae.c in spirit). Nothing else in the supervisor blocks.
 *
 * Callbacks run on the loop's thread; they may add or remove watchers and
 * timers, including their own.
 */
#ifndef EV_H
#define EV_H

#include <poll.h>
#include <stdint.h>

typedef struct ev_loop ev_loop;

/* Called when fd is ready; revents is poll()'s revents. */
typedef void (*ev_io_fn)(ev_loop *loop, int fd, int revents, void *ud);
/* Returns the next interval in milliseconds, or EV_TIMER_STOP to remove. */
typedef long (*ev_timer_fn)(ev_loop *loop, void *ud);
typedef void (*ev_signal_fn)(ev_loop *loop, int signo, void *ud);

#define EV_TIMER_STOP (-1L)

/* Creates a loop; the caller owns it and frees it with ev_free. */
int ev_new(ev_loop **out);
void ev_free(ev_loop *loop);

/* Watches fd for events (POLLIN, POLLOUT). One watcher per fd: adding an
 * fd twice replaces its callback and events. */
int ev_io_add(ev_loop *loop, int fd, short events, ev_io_fn fn, void *ud);
void ev_io_del(ev_loop *loop, int fd);

/* A timer firing after ms milliseconds; *out_id (may be NULL) names it. */
int ev_timer_add(ev_loop *loop, long ms, ev_timer_fn fn, void *ud, int64_t *out_id);
void ev_timer_del(ev_loop *loop, int64_t id);

/* Delivers signo through the loop. Blocks the signal for the process
 * (children must unblock it: see ev_child_sigmask_reset). */
int ev_signal_add(ev_loop *loop, int signo, ev_signal_fn fn, void *ud);

/* Restores the default signal mask; call in a forked child before exec. */
void ev_child_sigmask_reset(void);

/* Runs until ev_stop. Returns 0, or a negative code if poll fails. */
int ev_run(ev_loop *loop);
/* One iteration: waits at most max_ms (-1 = until something happens). */
int ev_run_once(ev_loop *loop, long max_ms);
void ev_stop(ev_loop *loop);

/* Monotonic seconds, refreshed once per iteration. */
double ev_now(ev_loop *loop);

#endif
