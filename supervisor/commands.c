/*
 * commands.c - the table of `tend` commands. Adding a command means writing
 * cmd_<name>.c with a `const cli_cmd cli_<name>_cmd` and listing it here,
 * one line in the extern block and one in the table, alphabetical.
 */
#include "cli.h"

#include <stddef.h>

extern const cli_cmd cli_config_cmd;
extern const cli_cmd cli_data_cmd;
extern const cli_cmd cli_help_cmd;
extern const cli_cmd cli_init_cmd;
extern const cli_cmd cli_train_cmd;
extern const cli_cmd cli_run_cmd;
extern const cli_cmd cli_stop_cmd;
extern const cli_cmd cli_version_cmd;

const cli_cmd *const cli_commands[] = {
	&cli_config_cmd,
	&cli_data_cmd,
	&cli_help_cmd,
	&cli_init_cmd,
	&cli_run_cmd,
	&cli_stop_cmd,
	&cli_train_cmd,
	&cli_version_cmd,
	NULL,
};
