/*
 * commands.c - the table of `tend` commands. Adding a command means writing
 * cmd_<name>.c with a `const cli_cmd cli_<name>_cmd` and listing it here,
 * one line in the extern block and one in the table, alphabetical. The
 * table lives here, not in cli.c, so that tend-train can link cli.c
 * without every command (and the libraries they pull in).
 */
#include "cli.h"

#include <stddef.h>
#include <string.h>

extern const cli_cmd cli_attach_cmd;
extern const cli_cmd cli_config_cmd;
extern const cli_cmd cli_data_cmd;
extern const cli_cmd cli_help_cmd;
extern const cli_cmd cli_incident_cmd;
extern const cli_cmd cli_incidents_cmd;
extern const cli_cmd cli_init_cmd;
extern const cli_cmd cli_logs_cmd;
extern const cli_cmd cli_metrics_cmd;
extern const cli_cmd cli_replay_cmd;
extern const cli_cmd cli_report_cmd;
extern const cli_cmd cli_runs_cmd;
extern const cli_cmd cli_status_cmd;
extern const cli_cmd cli_train_cmd;
extern const cli_cmd cli_run_cmd;
extern const cli_cmd cli_audit_cmd;
extern const cli_cmd cli_demo_cmd;
extern const cli_cmd cli_propose_cmd;
extern const cli_cmd cli_proposal_cmd;
extern const cli_cmd cli_proposals_cmd;
extern const cli_cmd cli_rollback_cmd;
extern const cli_cmd cli_serve_cmd;
extern const cli_cmd cli_stop_cmd;
extern const cli_cmd cli_version_cmd;

const cli_cmd *const cli_commands[] = {
	&cli_audit_cmd,
	&cli_attach_cmd,
	&cli_config_cmd,
	&cli_data_cmd,
	&cli_demo_cmd,
	&cli_help_cmd,
	&cli_incident_cmd,
	&cli_incidents_cmd,
	&cli_init_cmd,
	&cli_logs_cmd,
	&cli_metrics_cmd,
	&cli_replay_cmd,
	&cli_report_cmd,
	&cli_propose_cmd,
	&cli_proposal_cmd,
	&cli_proposals_cmd,
	&cli_rollback_cmd,
	&cli_run_cmd,
	&cli_runs_cmd,
	&cli_status_cmd,
	&cli_serve_cmd,
	&cli_stop_cmd,
	&cli_train_cmd,
	&cli_version_cmd,
	NULL,
};

const cli_cmd *cli_find(const char *name)
{
	for (const cli_cmd *const *c = cli_commands; *c; c++)
		if (strcmp((*c)->name, name) == 0)
			return *c;
	return NULL;
}

void cli_usage(FILE *f)
{
	fputs("usage: tend [--workspace DIR] <command> [options]\n\n"
	      "Commands:\n", f);
	for (const cli_cmd *const *c = cli_commands; *c; c++)
		fprintf(f, "  %-12s %s\n", (*c)->name, (*c)->summary);
	fputs("\nRun `tend help <command>` or `tend <command> --help` for details.\n", f);
}
