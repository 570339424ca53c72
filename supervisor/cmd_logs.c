/*
 * cmd_logs.c - `tend logs RUN`: a run's captured output (the trainer's
 * stdout and stderr, the lines tend wrote itself, and the metrics lines
 * that did not parse), optionally following the store as the run goes on.
 */
#include "cli.h"
#include "inspect.h"
#include "render.h"
#include "tend.h"

#include <getopt.h>
#include <limits.h>
#include <string.h>

extern const cli_cmd cli_logs_cmd;

#define POLL_MS 200

static const char *const streams[] = {
	[STORE_STDOUT] = "stdout", [STORE_STDERR] = "stderr",
	[STORE_EVENT] = "event", [STORE_MALFORMED] = "malformed",
};

typedef struct logs {
	int stream;       /* -1: every stream */
	bool json;
	int64_t last_id;
} logs;

static int print_json(const store_log *l)
{
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "id");
	jbuf_int(&b, l->id);
	jbuf_key(&b, "attempt");
	jbuf_int(&b, l->attempt);
	jbuf_key(&b, "t");
	rnd_json_num(&b, l->t);
	jbuf_key(&b, "stream");
	jbuf_str(&b, streams[l->stream]);
	jbuf_key(&b, "line");
	jbuf_strn(&b, l->line, l->len);
	jbuf_obj_close(&b);
	int rc = rnd_json_out(stdout, &b);
	jbuf_free(&b);
	return rc;
}

static int print_log(const store_log *l, void *ud)
{
	logs *g = ud;
	g->last_id = l->id;
	if (g->stream >= 0 && (int)l->stream != g->stream)
		return 0;
	if (g->json)
		return print_json(l);
	insp_print_log(stdout, l);
	return 0;
}

/* Prints what is new; *terminal says whether the run had ended before
 * the read, so that nothing it wrote can come later. */
static int poll_once(store *s, int64_t run, logs *g, bool *terminal)
{
	store_run *r = NULL;
	int rc = store_run_get(s, &r, run);
	if (rc == 0)
		*terminal = insp_terminal(r->state);
	store_run_free(r);
	if (rc == 0)
		rc = store_logs_read(s, run, g->last_id, print_log, g);
	fflush(stdout);
	return rc;
}

static int follow(store *s, int64_t run, logs *g)
{
	bool done = false;
	int rc = 0;
	insp_catch_sigint();
	while (!insp_interrupted() && (rc = poll_once(s, run, g, &done)) == 0 && !done)
		insp_sleep_ms(POLL_MS);
	return rc;
}

static int parse(int argc, char **argv, logs *g, bool *fol)
{
	static const struct option lo[] = {
		{"follow", 0, 0, 'f'}, {"stream", 1, 0, 's'}, {"json", 0, 0, 'j'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'f': *fol = true; break;
		case 'j': g->json = true; break;
		case 's':
			for (g->stream = 0; g->stream <= STORE_MALFORMED; g->stream++)
				if (strcmp(optarg, streams[g->stream]) == 0)
					break;
			if (g->stream > STORE_MALFORMED) {
				fprintf(stderr, "tend logs: --stream: expected stdout, stderr, "
					"event or malformed, got '%s'\n", optarg);
				return CLI_USAGE;
			}
			break;
		default: return insp_usage(cli_logs_cmd.help);
		}
	}
	return optind + 1 == argc ? 0 : insp_usage(cli_logs_cmd.help);
}

static int cmd_logs(int argc, char **argv)
{
	char ws[PATH_MAX];
	logs g = {.stream = -1};
	bool fol = false, done;
	store *s = NULL;
	store_run *r = NULL;
	int rc = parse(argc, argv, &g, &fol);
	if (rc)
		return rc;
	if ((rc = insp_open(&s, ws, sizeof ws)) < 0)
		return cli_fail(rc == TEND_ENOTFOUND ? CLI_USAGE : CLI_FAIL, "logs");
	if ((rc = insp_run(s, argv[optind], &r)) == 0)
		rc = fol ? follow(s, r->id, &g) : poll_once(s, r->id, &g, &done);
	store_run_free(r);
	store_close(s);
	return rc < 0 ? cli_fail(CLI_FAIL, "logs") : CLI_OK;
}

const cli_cmd cli_logs_cmd = {
	"logs", "print a run's captured output and tend's own lines",
	"usage: tend logs RUN [--stream stdout|stderr|event|malformed] [--follow]\n"
	"                     [--json]\n\n"
	"Prints RUN's log lines, oldest first, each with its time and stream:\n"
	"stdout and stderr of the trainer, event (lines tend wrote itself), and\n"
	"malformed (metrics lines that did not parse, with the reason).\n\n"
	"  --stream S  only that stream\n"
	"  --follow    keep polling the store (every 200 ms) for new lines until\n"
	"              the run is finished, stopped or failed, or Ctrl-C\n"
	"  --json      JSON lines {\"id\",\"attempt\",\"t\",\"stream\",\"line\"}\n",
	cmd_logs,
};
