/*
 * cmd_config.c - `tend config`: check tend.yaml and show the settings in
 * effect (`check`), or print the commented default file (`default`).
 *
 * A config error prints the loader's message alone on stderr, in the
 * compiler's file:line:col form that editors jump to, and exits 2.
 */
#include "cli.h"
#include "config.h"
#include "tend.h"

#include <limits.h>
#include <string.h>

static int usage_error(const char *what)
{
	fprintf(stderr, "tend config: %s; see `tend config --help`\n", what);
	return CLI_USAGE;
}

static int config_check(int argc, char **argv)
{
	const char *file = NULL;
	bool json = false;
	char path[PATH_MAX];
	cfg *c = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--config") && i + 1 < argc)
			file = argv[++i];
		else if (!strncmp(argv[i], "--config=", 9))
			file = argv[i] + 9;
		else
			return usage_error(strcmp(argv[i], "--config") ?
				"unknown option" : "--config needs a file");
	}
	if (!file) {
		char ws[PATH_MAX];
		if (cli_workspace(ws, sizeof ws) < 0) {
			fprintf(stderr, "tend: %s\n", tend_error_last());
			return CLI_USAGE;
		}
		snprintf(path, sizeof path, "%s/tend.yaml", ws);
		file = path;
	}
	if (cfg_load(&c, file) < 0) {
		fprintf(stderr, "%s\n", tend_error_last());
		return CLI_USAGE;
	}
	if (!json)
		printf("# %s: ok; the settings in effect:\n", file);
	int rc = cfg_print(stdout, c, json);
	cfg_free(c);
	if (rc < 0)
		return cli_fail(CLI_FAIL, "config check");
	return CLI_OK;
}

static int cmd_config(int argc, char **argv)
{
	if (argc < 2)
		return usage_error("missing subcommand");
	if (!strcmp(argv[1], "check"))
		return config_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "default")) {
		if (argc > 2)
			return usage_error("`default` takes no options");
		return cfg_write_default(stdout) < 0 ? cli_fail(CLI_FAIL, "config default") :
						       CLI_OK;
	}
	return usage_error("unknown subcommand");
}

const cli_cmd cli_config_cmd = {
	"config", "check tend.yaml and show the settings in effect",
	"usage: tend config check [--config FILE] [--json]\n"
	"       tend config default\n\n"
	"check    Reads the workspace's tend.yaml (or FILE), and prints every\n"
	"         setting in effect, defaults included, as YAML or as JSON.\n"
	"         On any error prints FILE:LINE:COL: KEY: what was expected,\n"
	"         and exits 2.\n"
	"default  Prints the commented default tend.yaml (what `tend init` writes).\n\n"
	"Reference: docs/config.md.\n",
	cmd_config,
};
