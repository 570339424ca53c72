/*
 * main.c - the `tend` entry point: global options, dispatch to a command,
 * and the process exit status (0 success, 1 failure, 2 usage or config).
 */
#include "cli.h"
#include "tend.h"

#include <stdbool.h>
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

/* Thread settings are read once, as the libraries load, so they are set by
 * re-executing. OpenBLAS starts a pool of threads at load with the default
 * signal mask: one of them can then take the SIGTERM meant for the
 * supervisor's signalfd and kill it; the trainer splits matmuls over its
 * own OpenMP threads anyway, so the pool has one thread. libgomp's default
 * lets idle threads spin at barriers and take the core their partner
 * needs (the CPU trainer ran at 37% of peak instead of 59% on two cores),
 * so `tend train` waits passively, unless the user chose. */
static void tune_threads(char **argv)
{
	bool train = false, changed = false;
	for (int i = 1; argv[i]; i++) {
		if (!strcmp(argv[i], "--workspace") || !strcmp(argv[i], "-W")) {
			i++;
			continue;
		}
		if (argv[i][0] != '-') {
			train = !strcmp(argv[i], "train");
			break;
		}
	}
	if (!getenv("OPENBLAS_NUM_THREADS")) {
		setenv("OPENBLAS_NUM_THREADS", "1", 1);
		changed = true;
	}
	if (train && !getenv("OMP_WAIT_POLICY")) {
		setenv("OMP_WAIT_POLICY", "passive", 1);
		changed = true;
	}
	if (changed)
		execv("/proc/self/exe", argv); /* on failure: go on as we are */
}

int main(int argc, char **argv)
{
	tune_threads(argv);
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
