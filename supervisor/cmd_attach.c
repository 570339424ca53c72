/*
 * cmd_attach.c - `tend attach [RUN]`: watch a live run from another
 * terminal. Prints its new log lines as they reach the store and a status
 * line every second, until the run ends or Ctrl-C; detaching leaves the
 * run alone. On a terminal the status line is redrawn in place under the
 * log lines; otherwise it is printed as a line of its own.
 */
#include "cli.h"
#include "clock.h"
#include "inspect.h"
#include "tend.h"

#include <getopt.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

extern const cli_cmd cli_attach_cmd;

#define POLL_MS 200
#define STATUS_MS 1000

typedef struct attach {
	store *s;
	int64_t run;
	int64_t last_log;
	bool tty;
	bool drawn;           /* a status line is on screen (tty) */
	char line[512];
	uint64_t next_status; /* monotonic ns */
	uint64_t every_ns;    /* grows when a summary is slow to compute */
} attach;

static void clear_status(attach *a)
{
	if (a->tty && a->drawn)
		fputs("\r\033[K", stdout);
	a->drawn = false;
}

static int print_log(const store_log *l, void *ud)
{
	attach *a = ud;
	clear_status(a);
	insp_print_log(stdout, l);
	a->last_log = l->id;
	return 0;
}

/* Computes the status line into a->line; *terminal says the run ended. */
static int refresh(attach *a, bool *terminal)
{
	store_run *r = NULL;
	insp_summary sum;
	uint64_t t0 = tend_mono_ns();
	int rc = store_run_get(a->s, &r, a->run);
	if (rc == 0 && (rc = insp_summary_of(a->s, r, tend_wall_s(), &sum)) == 0) {
		*terminal = insp_terminal(r->state);
		insp_status_line(a->line, sizeof a->line, r, &sum);
	}
	store_run_free(r);
	/* A long run's accounts take a while to add up: keep their cost
	 * under a tenth of the time. */
	uint64_t cost = tend_mono_ns() - t0;
	if (cost * 10 > a->every_ns)
		a->every_ns = cost * 10;
	a->next_status = tend_mono_ns() + a->every_ns;
	return rc;
}

static void show(attach *a, bool final)
{
	clear_status(a);
	fputs(a->line, stdout);
	if (a->tty && !final)
		a->drawn = true;
	else
		fputc('\n', stdout);
}

static int watch(attach *a)
{
	bool ended = false;
	int rc = 0;
	insp_catch_sigint();
	a->every_ns = (uint64_t)STATUS_MS * 1000000;
	while (!insp_interrupted()) {
		bool due = tend_mono_ns() >= a->next_status;
		/* The state before the lines: lines written before the run
		 * ended are all in the store by the time the state says so. */
		if ((due && (rc = refresh(a, &ended)) < 0) ||
		    (rc = store_logs_read(a->s, a->run, a->last_log, print_log, a)) < 0)
			return rc;
		if (ended)
			break;
		if (due || (a->tty && !a->drawn))
			show(a, false);
		fflush(stdout);
		insp_sleep_ms(POLL_MS);
	}
	show(a, true);
	return 0;
}

static int cmd_attach(int argc, char **argv)
{
	static const struct option lo[] = {{0, 0, 0, 0}};
	char ws[PATH_MAX];
	store_run *r = NULL;
	attach a = {.tty = isatty(1) == 1};
	int c, rc;
	optind = 1;
	if ((c = getopt_long(argc, argv, "", lo, NULL)) != -1 || optind + 1 < argc)
		return insp_usage(cli_attach_cmd.help);
	if ((rc = insp_open(&a.s, ws, sizeof ws)) < 0)
		return cli_fail(rc == TEND_ENOTFOUND ? CLI_USAGE : CLI_FAIL, "attach");
	rc = optind < argc ? insp_run(a.s, argv[optind], &r)
		: insp_default_run(a.s, ws, &r);
	if (rc == 0) {
		a.run = r->id;
		if (!a.tty)
			printf("attached to run %s (%s)\n", r->name, r->state);
		rc = watch(&a);
	}
	store_run_free(r);
	store_close(a.s);
	fflush(stdout);
	return rc < 0 ? cli_fail(CLI_FAIL, "attach") : CLI_OK;
}

const cli_cmd cli_attach_cmd = {
	"attach", "follow a live run: its log lines and a status line",
	"usage: tend attach [RUN]\n\n"
	"Follows RUN (default: the supervised run, else the newest): prints its\n"
	"log lines as they reach the store, as `tend logs` does, and a status\n"
	"line every second (step, loss, tokens/s, ETA, ETT, steps lost, open\n"
	"incidents), until the run is finished, stopped or failed, or Ctrl-C,\n"
	"which detaches and leaves the run alone. A run that already ended is\n"
	"printed in full with its final status.\n",
	cmd_attach,
};
