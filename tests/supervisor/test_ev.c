/* test_ev.c - the event loop: timers in order and repeating, fd readiness,
 * signals through signalfd, callbacks that change the loop under it. */
#include "ev.h"
#include "tend.h"
#include "tt.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	int fired[8];
	int n;
	int repeat_left;
} order_t;

static long fire_a(ev_loop *l, void *ud) { (void)l; order_t *o = ud; o->fired[o->n++] = 1; return EV_TIMER_STOP; }
static long fire_b(ev_loop *l, void *ud) { (void)l; order_t *o = ud; o->fired[o->n++] = 2; return EV_TIMER_STOP; }
static long fire_rep(ev_loop *l, void *ud)
{
	order_t *o = ud;
	o->fired[o->n++] = 3;
	if (--o->repeat_left == 0) {
		ev_stop(l);
		return EV_TIMER_STOP;
	}
	return 5;
}

static void test_timers_fire_in_order(void)
{
	ev_loop *l;
	order_t o = {.repeat_left = 3};
	TT_REQUIRE(ev_new(&l) == 0);
	ev_timer_add(l, 20, fire_b, &o, NULL);
	ev_timer_add(l, 5, fire_a, &o, NULL);
	ev_timer_add(l, 40, fire_rep, &o, NULL);
	double t0 = ev_now(l);
	TT_CHECK(ev_run(l) == 0);
	TT_CHECK(o.n == 5);
	TT_CHECK(o.fired[0] == 1 && o.fired[1] == 2 && o.fired[2] == 3);
	TT_CHECK(ev_now(l) - t0 >= 0.049);
	ev_free(l);
}

/* A loop that wakes late finds several timers due at once: they still
 * fire by deadline, not in the order they were added. */
static void test_late_wake_fires_by_deadline(void)
{
	ev_loop *l;
	order_t o = {.repeat_left = 0};
	TT_REQUIRE(ev_new(&l) == 0);
	ev_timer_add(l, 20, fire_b, &o, NULL);
	ev_timer_add(l, 5, fire_a, &o, NULL);
	struct timespec ts = {0, 60 * 1000 * 1000};
	nanosleep(&ts, NULL);
	TT_CHECK(ev_run_once(l, 0) == 0);
	TT_CHECK(o.n == 2);
	TT_CHECK(o.fired[0] == 1 && o.fired[1] == 2);
	ev_free(l);
}

static long never(ev_loop *l, void *ud) { (void)l; (*(int *)ud)++; return EV_TIMER_STOP; }
static long deleter(ev_loop *l, void *ud) { ev_timer_del(l, *(int64_t *)ud); ev_stop(l); return EV_TIMER_STOP; }

static void test_timer_deleted_by_callback(void)
{
	ev_loop *l;
	int count = 0;
	int64_t victim;
	TT_REQUIRE(ev_new(&l) == 0);
	ev_timer_add(l, 30, never, &count, &victim);
	ev_timer_add(l, 1, deleter, &victim, NULL);
	ev_run(l);
	ev_run_once(l, 50);
	TT_CHECK(count == 0);
	ev_free(l);
}

static void on_read(ev_loop *l, int fd, int revents, void *ud)
{
	char buf[16];
	TT_CHECK(revents & POLLIN);
	*(ssize_t *)ud = read(fd, buf, sizeof buf);
	ev_io_del(l, fd);
	ev_stop(l);
}

static void test_io_readiness(void)
{
	ev_loop *l;
	int p[2];
	ssize_t got = -1;
	TT_REQUIRE(pipe(p) == 0);
	TT_REQUIRE(ev_new(&l) == 0);
	ev_io_add(l, p[0], POLLIN, on_read, &got);
	TT_CHECK(write(p[1], "hello", 5) == 5);
	ev_run(l);
	TT_CHECK(got == 5);
	ev_free(l);
	close(p[0]);
	close(p[1]);
}

static void on_sig(ev_loop *l, int signo, void *ud)
{
	*(int *)ud = signo;
	ev_stop(l);
}

static void test_signal_delivered(void)
{
	ev_loop *l;
	int got = 0;
	TT_REQUIRE(ev_new(&l) == 0);
	TT_REQUIRE(ev_signal_add(l, SIGUSR1, on_sig, &got) == 0);
	kill(getpid(), SIGUSR1);
	ev_run(l);
	TT_CHECK(got == SIGUSR1);
	ev_free(l);
}

int main(void)
{
	TT_RUN(test_timers_fire_in_order);
	TT_RUN(test_late_wake_fires_by_deadline);
	TT_RUN(test_timer_deleted_by_callback);
	TT_RUN(test_io_readiness);
	TT_RUN(test_signal_delivered);
	return TT_DONE();
}
