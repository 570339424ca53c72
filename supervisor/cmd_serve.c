/*
 * cmd_serve.c - `tend serve`: runs the review dashboard (serve.h) over the
 * workspace until SIGINT or SIGTERM. Settings come from tend.yaml's serve
 * section; the command line overrides them.
 */
#include "cli.h"
#include "config.h"
#include "fsutil.h"
#include "serve.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct serve_args {
	const char *listen, *token_file;
	int read_only; /* -1: as tend.yaml says */
} serve_args;

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "tend serve: %s%s%s; see `tend serve --help`\n", what,
		arg ? ": " : "", arg ? arg : "");
	return CLI_USAGE;
}

static int parse_args(serve_args *a, int argc, char **argv)
{
	*a = (serve_args){NULL, NULL, -1};
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		if (!strcmp(o, "--read-only"))
			a->read_only = 1;
		else if (!strcmp(o, "--writable"))
			a->read_only = 0;
		else if (!strcmp(o, "--listen") || !strcmp(o, "--token-file")) {
			if (i + 1 >= argc)
				return usage_error("missing value after", o);
			*(!strcmp(o, "--listen") ? &a->listen : &a->token_file) = argv[++i];
		} else if (!strncmp(o, "--listen=", 9))
			a->listen = o + 9;
		else if (!strncmp(o, "--token-file=", 13))
			a->token_file = o + 13;
		else
			return usage_error("unknown option", o);
	}
	return 0;
}

/* The self-pipe a signal handler writes its signal number into. A
 * handler, not sigwait: threads that libraries start before main (an
 * OpenMP or BLAS pool) keep the default mask, and the kernel may hand
 * SIGTERM to one of them. */
static int stop_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	unsigned char c = (unsigned char)sig;
	ssize_t n = write(stop_pipe[1], &c, 1);
	(void)n;
}

static int wait_for_signal(void)
{
	unsigned char c = 0;
	while (read(stop_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return c;
}

/* Serves until SIGINT, SIGTERM or SIGHUP. The server's threads start with
 * those signals blocked, so the handler runs on the main thread (or one
 * of the libraries' threads), never inside a request. */
static int serve_until_signal(const srv_opts *o)
{
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	sigset_t set;
	srv *s = NULL;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (pipe2(stop_pipe, O_CLOEXEC) != 0)
		return cli_fail(CLI_FAIL, "serve: pipe");
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	int rc = srv_new(&s, o);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (rc < 0)
		return cli_fail(CLI_FAIL, "serve");
	printf("tend serve: %s (%s)\n", srv_url(s),
	       o->read_only ? "read-only" : "approve and reject enabled");
	if (srv_token_path(s))
		printf("tend serve: requests need 'Authorization: Bearer TOKEN', "
		       "the token is in %s\n", srv_token_path(s));
	fflush(stdout);
	int sig = wait_for_signal();
	srv_free(s);
	printf("tend serve: stopped (%s)\n", strsignal(sig));
	return CLI_OK;
}

static int cmd_serve(int argc, char **argv)
{
	serve_args a;
	char ws[PATH_MAX], path[PATH_MAX + 16];
	cfg *c = NULL;
	int rc = parse_args(&a, argc, argv);
	if (rc)
		return rc;
	if (cli_workspace(ws, sizeof ws) < 0) {
		fprintf(stderr, "tend: %s\n", tend_error_last());
		return CLI_USAGE;
	}
	snprintf(path, sizeof path, "%s/tend.yaml", ws);
	if (cfg_load(&c, path) < 0) {
		fprintf(stderr, "%s\n", tend_error_last());
		return CLI_USAGE;
	}
	snprintf(path, sizeof path, "%s/tend.db", ws);
	if (!fsu_exists(path)) {
		cfg_free(c);
		fprintf(stderr, "tend serve: %s has no store (tend.db); "
			"create the workspace with `tend init`\n", ws);
		return CLI_FAIL;
	}
	const char *token_file = a.token_file ? a.token_file : c->serve.token_file;
	srv_opts o = {
		.workspace = ws,
		.listen = a.listen ? a.listen : c->serve.listen,
		.read_only = a.read_only >= 0 ? a.read_only : c->serve.read_only,
		.token_file = token_file,
		.require_token = *token_file != '\0',
	};
	rc = serve_until_signal(&o);
	cfg_free(c);
	return rc;
}

const cli_cmd cli_serve_cmd = {
	"serve", "serve the review dashboard and its JSON API over HTTP",
	"usage: tend serve [--listen HOST:PORT] [--read-only | --writable]\n"
	"                  [--token-file FILE]\n\n"
	"Serves the review dashboard: runs with their curves, incidents,\n"
	"proposals (diff, gates, approve and reject), the audit timeline, and\n"
	"/metrics for Prometheus. Runs until SIGINT or SIGTERM.\n\n"
	"  --listen HOST:PORT  where to listen (serve.listen, 127.0.0.1:8765);\n"
	"                      port 0 picks a free port\n"
	"  --read-only         refuse approve and reject (serve.read_only)\n"
	"  --writable          allow approve and reject from the dashboard\n"
	"  --token-file FILE   the bearer token (serve.token_file); when set,\n"
	"                      every API request must carry it\n\n"
	"A loopback address needs no token unless one is configured. Any other\n"
	"address always needs one: it is read from the token file, or created\n"
	"there (mode 0600, default WS/serve.token). docs/serve.md has the API.\n",
	cmd_serve,
};
