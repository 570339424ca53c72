/*
 * cmd_proposal.c - `tend propose INCIDENT`, `tend proposals`, and
 * `tend proposal show|approve|reject N`: the review side of the
 * self-evolving scaffold.
 */
#include "cli.h"
#include "json.h"
#include "patch.h"
#include "pipeline.h"
#include "store.h"
#include "tend.h"

#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_id(const char *s, int64_t *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || v <= 0) {
		fprintf(stderr, "tend: '%s' is not a proposal or incident number\n", s);
		return -1;
	}
	*out = v;
	return 0;
}

static int cmd_propose(int argc, char **argv)
{
	static const struct option lo[] = {
		{"no-eval", 0, 0, 'n'}, {"no-promote", 0, 0, 'p'}, {"quiet", 0, 0, 'q'}, {0, 0, 0, 0},
	};
	char ws[PATH_MAX];
	pipe_opts o = {.evaluate = true, .promote = true, .log = stderr};
	int64_t incident, id;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'n')
			o.evaluate = false;
		else if (c == 'p')
			o.promote = false;
		else if (c == 'q')
			o.log = NULL;
		else
			return CLI_USAGE;
	}
	if (optind + 1 != argc || parse_id(argv[optind], &incident) < 0) {
		fprintf(stderr, "usage: tend propose INCIDENT [--no-eval] [--no-promote] [--quiet]\n");
		return CLI_USAGE;
	}
	if (cli_workspace(ws, sizeof ws) < 0)
		return cli_fail(CLI_USAGE, "propose");
	o.ws = ws;
	if (pipe_propose(&id, &o, incident) < 0)
		return cli_fail(CLI_FAIL, "propose");
	if (id)
		printf("proposal %lld\n", (long long)id);
	return CLI_OK;
}

const cli_cmd cli_propose_cmd = {
	"propose", "ask the proposer for a scaffold patch for an incident",
	"usage: tend propose INCIDENT [--no-eval] [--no-promote] [--quiet]\n\n"
	"Asks the configured proposer (builtin playbook, OpenAI- or Anthropic-\n"
	"compatible endpoint) for a diagnosis and a patch, validates it strictly,\n"
	"commits it on its own branch proposals/<incident>-<n>, checks it in the\n"
	"sandbox, evaluates it A/B against main from the same checkpoint, judges\n"
	"it by the gates in tend.yaml and, unless a human must approve, promotes\n"
	"it. Every step is recorded. The supervisor runs this for new incidents\n"
	"when proposer.auto is on.\n",
	cmd_propose,
};

/* ---- listing ---------------------------------------------------------------- */

typedef struct list_ctx {
	const char *state;
	bool json;
	int n;
} list_ctx;

static int list_one(const store_proposal *p, void *ud)
{
	list_ctx *l = ud;
	if (l->state && strcmp(l->state, p->state) != 0)
		return 0;
	if (l->json) {
		printf("%s{\"id\":%lld,\"incident\":%lld,\"state\":", l->n ? "," : "",
		       (long long)p->id, (long long)p->incident_id);
		cli_json_str(stdout, p->state);
		fputs(",\"proposer\":", stdout);
		cli_json_str(stdout, p->proposer);
		fputs(",\"diagnosis\":", stdout);
		cli_json_str(stdout, p->diagnosis);
		fputs(",\"branch\":", stdout);
		cli_json_str(stdout, p->branch);
		printf(",\"confidence\":%.3f}", p->confidence);
	} else {
		printf("%4lld  %-8lld %-18s %-9s %.60s\n", (long long)p->id,
		       (long long)p->incident_id, p->state, p->proposer, p->diagnosis);
	}
	l->n++;
	return 0;
}

static int open_store(store **st, char *ws, size_t cap)
{
	char path[PATH_MAX + 16];
	if (cli_workspace(ws, cap) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/tend.db", ws);
	return store_open(st, path, STORE_READONLY);
}

static int cmd_proposals(int argc, char **argv)
{
	static const struct option lo[] = {{"state", 1, 0, 's'}, {"json", 0, 0, 'j'}, {0, 0, 0, 0}};
	list_ctx l = {0};
	store *st = NULL;
	char ws[PATH_MAX];
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 's')
			l.state = optarg;
		else if (c == 'j')
			l.json = true;
		else
			return CLI_USAGE;
	}
	if (optind != argc)
		return CLI_USAGE;
	if (open_store(&st, ws, sizeof ws) < 0)
		return cli_fail(CLI_FAIL, "proposals");
	if (l.json)
		fputc('[', stdout);
	else
		printf("%4s  %-8s %-18s %-9s %s\n", "id", "incident", "state", "proposer", "diagnosis");
	int rc = store_proposal_list(st, 0, list_one, &l);
	if (l.json)
		puts("]");
	store_close(st);
	return rc < 0 ? cli_fail(CLI_FAIL, "proposals") : CLI_OK;
}

const cli_cmd cli_proposals_cmd = {
	"proposals", "list scaffold proposals and their states",
	"usage: tend proposals [--state S] [--json]\n\n"
	"States: proposed, duplicate, rejected, branched, evaluating, failed,\n"
	"passed, awaiting_approval, promoted.\n",
	cmd_proposals,
};

/* ---- show ------------------------------------------------------------------- */

static void print_diff(const char *diff, bool colour)
{
	for (const char *l = diff; l && *l;) {
		const char *nl = strchr(l, '\n');
		int len = nl ? (int)(nl - l) : (int)strlen(l);
		const char *c = !colour ? "" : !strncmp(l, "+++", 3) || !strncmp(l, "---", 3) ? "\033[1m"
			: *l == '+' ? "\033[32m" : *l == '-' ? "\033[31m" : *l == '@' ? "\033[36m" : "";
		printf("%s%.*s%s\n", c, len, l, *c ? "\033[0m" : "");
		l = nl ? nl + 1 : l + len;
	}
}

void cli_print_gate_table(const char *figures)
{
	json_doc *d = NULL;
	if (!figures || json_parse(&d, figures, strlen(figures), NULL) < 0)
		return;
	const json_val *rows = json_get(json_get(json_root(d), "verdict"), "rows");
	printf("\n  %-12s %-14s %-14s %-46s %s\n", "gate", "baseline", "candidate", "bound", "");
	for (size_t i = 0; rows && i < json_len(rows); i++) {
		const json_val *r = json_at(rows, i);
		const char *n = "", *b = "", *c = "", *bd = "";
		bool pass = false;
		json_get_str(r, "name", &n);
		json_get_str(r, "baseline", &b);
		json_get_str(r, "candidate", &c);
		json_get_str(r, "bound", &bd);
		json_get_bool(r, "pass", &pass);
		printf("  %-12s %-14s %-14s %-46s %s\n", n, b, c, bd, pass ? "pass" : "FAIL");
	}
	json_doc_free(d);
}

static int show_eval(const store_evaluation *e, void *ud)
{
	(void)ud;
	printf("\nevaluation %lld (%s): %s, verdict %s: %s\n", (long long)e->id, e->stage,
	       e->state, e->verdict ? e->verdict : "-", e->reason ? e->reason : "");
	cli_print_gate_table(e->figures);
	return 0;
}

static int cmd_proposal_show(store *st, int64_t id, bool json)
{
	store_proposal *p = NULL;
	if (store_proposal_get(st, &p, id) < 0)
		return cli_fail(CLI_FAIL, "proposal show");
	if (json) {
		printf("{\"id\":%lld,\"incident\":%lld,\"state\":", (long long)p->id,
		       (long long)p->incident_id);
		cli_json_str(stdout, p->state);
		const char *k[] = {"proposer", "model", "diagnosis", "rationale", "expected_effect",
				   "diff", "branch", "commit", "reject_reason"};
		const char *v[] = {p->proposer, p->model, p->diagnosis, p->rationale,
				   p->expected_effect, p->diff, p->branch, p->commit, p->reject_reason};
		for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
			printf(",\"%s\":", k[i]);
			cli_json_str(stdout, v[i]);
		}
		printf(",\"confidence\":%.3f}\n", p->confidence);
		store_proposal_free(p);
		return CLI_OK;
	}
	printf("proposal %lld for incident %lld: %s\n", (long long)p->id, (long long)p->incident_id,
	       p->state);
	printf("proposer:   %s (%s), confidence %.2f\n", p->proposer, p->model ? p->model : "-",
	       p->confidence);
	if (p->branch)
		printf("branch:     %s at %.12s\n", p->branch, p->commit ? p->commit : "-");
	if (p->reject_reason)
		printf("outcome:    %s\n", p->reject_reason);
	printf("\ndiagnosis:  %s\nrationale:  %s\nexpected:   %s\n\n", p->diagnosis,
	       p->rationale ? p->rationale : "", p->expected_effect ? p->expected_effect : "");
	print_diff(p->diff, isatty(1));
	store_evaluation_list(st, id, show_eval, NULL);
	store_proposal_free(p);
	return CLI_OK;
}

static const char *whoami(void)
{
	const char *u = getenv("USER");
	struct passwd *pw = getpwuid(getuid());
	return u && *u ? u : pw ? pw->pw_name : "human";
}

static int cmd_proposal(int argc, char **argv)
{
	char ws[PATH_MAX];
	int64_t id;
	if (argc < 3 || parse_id(argv[2], &id) < 0) {
		fprintf(stderr, "usage: tend proposal show|approve|reject N [--reason TEXT] [--json]\n");
		return CLI_USAGE;
	}
	const char *reason = "";
	bool json = false;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--reason") && i + 1 < argc)
			reason = argv[++i];
		else {
			fprintf(stderr, "tend proposal: unexpected '%s'\n", argv[i]);
			return CLI_USAGE;
		}
	}
	if (!strcmp(argv[1], "show")) {
		store *st = NULL;
		if (open_store(&st, ws, sizeof ws) < 0)
			return cli_fail(CLI_FAIL, "proposal show");
		int rc = cmd_proposal_show(st, id, json);
		store_close(st);
		return rc;
	}
	if (cli_workspace(ws, sizeof ws) < 0)
		return cli_fail(CLI_USAGE, "proposal");
	pipe_opts o = {.ws = ws, .log = stderr};
	if (!strcmp(argv[1], "approve")) {
		char merged[41];
		if (pipe_promote(&o, id, whoami(), merged) < 0)
			return cli_fail(CLI_FAIL, "proposal approve");
		printf("proposal %lld approved and promoted: main is %s\n", (long long)id, merged);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "reject")) {
		if (!*reason) {
			fprintf(stderr, "tend proposal reject: say why with --reason TEXT\n");
			return CLI_USAGE;
		}
		if (pipe_reject(&o, id, whoami(), reason) < 0)
			return cli_fail(CLI_FAIL, "proposal reject");
		printf("proposal %lld rejected\n", (long long)id);
		return CLI_OK;
	}
	fprintf(stderr, "tend proposal: unknown action '%s' (show, approve, reject)\n", argv[1]);
	return CLI_USAGE;
}

const cli_cmd cli_proposal_cmd = {
	"proposal", "show, approve or reject one proposal",
	"usage: tend proposal show N [--json]\n"
	"       tend proposal approve N\n"
	"       tend proposal reject N --reason TEXT\n\n"
	"show prints the diagnosis, the coloured diff and the gate table of its\n"
	"evaluations (baseline vs candidate). approve promotes a proposal whose\n"
	"evaluation passed (needed when gates.human_approval is on); the gates\n"
	"must be unchanged since it was evaluated. reject records a human no.\n",
	cmd_proposal,
};
