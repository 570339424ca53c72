/*
 * cmd_audit.c - `tend audit` (the timeline), `tend audit verify`,
 * `tend audit accept-gates`, and `tend rollback COMMIT`.
 */
#include "audit.h"
#include "cli.h"
#include "config.h"
#include "patch.h"
#include "pipeline.h"
#include "store.h"
#include "tend.h"

#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct tl_ctx {
	bool json;
	int n;
} tl_ctx;

static int timeline_row(const store_audit_row *r, void *ud)
{
	tl_ctx *c = ud;
	char when[32];
	time_t t = (time_t)r->t;
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
	if (c->json) {
		printf("%s{\"seq\":%lld,\"t\":%.3f,\"actor\":", c->n ? "," : "", (long long)r->seq, r->t);
		cli_json_str(stdout, r->actor);
		fputs(",\"action\":", stdout);
		cli_json_str(stdout, r->action);
		fputs(",\"subject\":", stdout);
		cli_json_str(stdout, r->subject);
		printf(",\"detail\":%s,\"hash\":", r->detail && *r->detail ? r->detail : "null");
		cli_json_str(stdout, r->hash);
		fputc('}', stdout);
	} else {
		printf("%5lld  %s  %-10s %-20s %-16.16s %s\n", (long long)r->seq, when, r->actor,
		       r->action, r->subject ? r->subject : "", r->detail ? r->detail : "");
	}
	c->n++;
	return 0;
}

static void on_problem(const char *what, void *ud)
{
	(void)ud;
	printf("  FAIL %s\n", what);
}

static int verify(const char *ws)
{
	char path[PATH_MAX + 16];
	store *st = NULL;
	cfg *c = NULL;
	patch_repo *repo = NULL;
	int rc;
	snprintf(path, sizeof path, "%s/tend.yaml", ws);
	if ((rc = cfg_load(&c, path)) < 0)
		goto done;
	snprintf(path, sizeof path, "%s/tend.db", ws);
	if ((rc = store_open(&st, path, STORE_READONLY)) < 0)
		goto done;
	snprintf(path, sizeof path, "%s/scaffold", ws);
	if ((rc = patch_repo_open(&repo, path)) < 0)
		goto done;
	printf("verifying %s: audit chain, every commit on main, the gates\n", ws);
	rc = audit_verify(st, repo, c, on_problem, NULL);
done:
	if (rc == 0)
		printf("audit verify: ok\n");
	else
		fprintf(stderr, "tend audit verify: %s\n", tend_error_last());
	patch_repo_free(repo);
	store_close(st);
	cfg_free(c);
	return rc == 0 ? CLI_OK : CLI_FAIL;
}

static int cmd_audit(int argc, char **argv)
{
	char ws[PATH_MAX], path[PATH_MAX + 16];
	if (cli_workspace(ws, sizeof ws) < 0)
		return cli_fail(CLI_USAGE, "audit");
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return argc == 2 ? verify(ws) : CLI_USAGE;
	if (argc >= 2 && !strcmp(argv[1], "accept-gates")) {
		if (argc != 4 || strcmp(argv[2], "--reason") != 0) {
			fprintf(stderr, "usage: tend audit accept-gates --reason TEXT\n");
			return CLI_USAGE;
		}
		pipe_opts o = {.ws = ws};
		const char *who = getenv("USER");
		if (pipe_accept_gates(&o, who && *who ? who : "human", argv[3]) < 0)
			return cli_fail(CLI_FAIL, "audit accept-gates");
		printf("recorded the current gates as a deliberate change\n");
		return CLI_OK;
	}
	tl_ctx c = {.json = argc >= 2 && !strcmp(argv[1], "--json")};
	if (argc > 2 || (argc == 2 && !c.json)) {
		fprintf(stderr, "usage: tend audit [--json] | verify | accept-gates --reason TEXT\n");
		return CLI_USAGE;
	}
	store *st = NULL;
	snprintf(path, sizeof path, "%s/tend.db", ws);
	if (store_open(&st, path, STORE_READONLY) < 0)
		return cli_fail(CLI_FAIL, "audit");
	if (c.json)
		fputc('[', stdout);
	int rc = store_audit_list(st, 0, timeline_row, &c);
	if (c.json)
		puts("]");
	store_close(st);
	return rc < 0 ? cli_fail(CLI_FAIL, "audit") : CLI_OK;
}

const cli_cmd cli_audit_cmd = {
	"audit", "the audit timeline; verify that main came through the gates",
	"usage: tend audit [--json]\n"
	"       tend audit verify\n"
	"       tend audit accept-gates --reason TEXT\n\n"
	"Without arguments: the hash-chained timeline incident -> proposal ->\n"
	"branch -> evaluation -> promotion, with commits. verify fails, naming\n"
	"what, if any commit on the scaffold's main did not come through a\n"
	"passing recorded evaluation and promotion (or an audited rollback), if\n"
	"the gates in tend.yaml differ from the audited ones, or if an audit row\n"
	"was altered. accept-gates records a deliberate change of the gates.\n",
	cmd_audit,
};

static int cmd_rollback(int argc, char **argv)
{
	char ws[PATH_MAX], out[41];
	const char *reason = "manual rollback";
	if (argc == 4 && !strcmp(argv[2], "--reason"))
		reason = argv[3];
	else if (argc != 2) {
		fprintf(stderr, "usage: tend rollback COMMIT [--reason TEXT]\n");
		return CLI_USAGE;
	}
	if (cli_workspace(ws, sizeof ws) < 0)
		return cli_fail(CLI_USAGE, "rollback");
	pipe_opts o = {.ws = ws, .log = stderr};
	if (pipe_rollback(&o, argv[1], reason, out) < 0)
		return cli_fail(CLI_FAIL, "rollback");
	printf("reverted %s: main is %s\n", argv[1], out);
	return CLI_OK;
}

const cli_cmd cli_rollback_cmd = {
	"rollback", "revert a promotion on the scaffold's main (audited)",
	"usage: tend rollback COMMIT [--reason TEXT]\n\n"
	"Makes a commit on main that reverts COMMIT (a promotion), records it in\n"
	"the audit log, and tells a running supervisor to reload the scaffold.\n",
	cmd_rollback,
};
