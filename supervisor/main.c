/*
 * main.c - the `tend` entry point: global options, dispatch to a command,
 * and the process exit status (0 success, 1 failure, 2 usage or config).
 */
#include "cli.h"
#include "tend.h"

#include <string.h>

int main(int argc, char **argv)
{
	if (cli_take_workspace(&argc, argv) < 0)
		return CLI_USAGE;
	if (argc < 2) {
		cli_usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		cli_usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0)
		argv[1] = "version";
	const cli_cmd *c = cli_find(argv[1]);
	if (!c) {
		fprintf(stderr, "tend: '%s' is not a tend command; see `tend help`\n", argv[1]);
		return CLI_USAGE;
	}
	if (cli_wants_help(argc - 1, argv + 1)) {
		cli_print_help(stdout, c);
		return CLI_OK;
	}
	return c->fn(argc - 1, argv + 1);
}
