/*
 * cmd_help.c - `tend help [COMMAND]`.
 */
#include "cli.h"

static int cmd_help(int argc, char **argv)
{
	if (argc < 2) {
		cli_usage(stdout);
		return CLI_OK;
	}
	const cli_cmd *c = cli_find(argv[1]);
	if (!c) {
		fprintf(stderr, "tend: no command '%s'\n", argv[1]);
		return CLI_USAGE;
	}
	cli_print_help(stdout, c);
	return CLI_OK;
}

const cli_cmd cli_help_cmd = {
	"help", "show help for tend or one command",
	"usage: tend help [COMMAND]\n", cmd_help,
};

