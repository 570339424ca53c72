/*
 * main.c - the `tend` entry point: global options, dispatch to a command,
 * and the process exit status (0 success, 1 failure, 2 usage or config).
 */
#include "cli.h"
#include "tend.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Removes the global --workspace option wherever it appears before "--". */
static int take_workspace(int *argc, char **argv)
{
	int out = 1;
	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--workspace") == 0 || strcmp(argv[i], "-W") == 0) {
			if (i + 1 >= *argc) {
				fprintf(stderr, "tend: %s needs a directory\n", argv[i]);
				return -1;
			}
			cli_workspace_opt = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "--workspace=", 12) == 0) {
			cli_workspace_opt = argv[i] + 12;
			continue;
		}
		argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

/* libgomp reads OMP_WAIT_POLICY once, as it loads. Its default lets idle
 * threads spin at barriers and take the core their partner needs: the CPU
 * trainer ran at 37% of peak instead of 59% on two cores. So `tend train`
 * re-executes itself with passive waiting, unless the user chose. */
static void passive_openmp(char **argv)
{
	if (getenv("OMP_WAIT_POLICY"))
		return;
	for (int i = 1; argv[i]; i++) {
		if (!strcmp(argv[i], "--workspace") || !strcmp(argv[i], "-W")) {
			i++;
			continue;
		}
		if (argv[i][0] == '-')
			continue;
		if (strcmp(argv[i], "train") != 0)
			return;
		setenv("OMP_WAIT_POLICY", "passive", 1);
		execv("/proc/self/exe", argv);
		return; /* exec failed: train with the default policy */
	}
}

int main(int argc, char **argv)
{
	passive_openmp(argv);
	if (take_workspace(&argc, argv) < 0)
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
