/*
 * cmd_version.c - `tend version`: tend's version and those of every linked
 * library, read at run time where the library can say (what is loaded is
 * what matters when a user reports a bug).
 */
#include "cli.h"
#include "tend.h"
#include "tend_build.h"

#include <curl/curl.h>
#include <git2.h>
#include <limits.h>
#include <lua.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

/* BLAS and CUDA are linked by tend-train alone: ask it. Missing or
 * failing, each says so rather than failing the command. */
static void trainer_versions(char *blas, char *cuda, size_t cap)
{
	char exe[PATH_MAX], out[1024];
	int status = 0;
	snprintf(blas, cap, "unknown (no %s)", CLI_TRAINER);
	snprintf(cuda, cap, "unknown (no %s)", CLI_TRAINER);
	if (cli_trainer_exe(exe, sizeof exe) < 0 || access(exe, X_OK) != 0 ||
	    cli_run_child((char *const[]){exe, "--versions", NULL}, 10, out, sizeof out,
			  &status) < 0)
		return;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char *tab = strchr(line, '\t');
		if (!tab)
			continue;
		*tab++ = '\0';
		if (strcmp(line, "blas") == 0)
			snprintf(blas, cap, "%s", tab);
		else if (strcmp(line, "cuda") == 0)
			snprintf(cuda, cap, "%s", tab);
	}
}

static int cmd_version(int argc, char **argv)
{
	bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
	int gmaj, gmin, grev;
	char blas[160], cuda[160];
	git_libgit2_version(&gmaj, &gmin, &grev);
	trainer_versions(blas, cuda, sizeof blas);
	char git[32];
	snprintf(git, sizeof git, "%d.%d.%d", gmaj, gmin, grev);
	const char *names[] = {"tend", "sqlite", "libgit2", "libyaml", "libcurl", "lua", "blas", "cuda"};
	const char *vals[] = {TEND_VERSION_STR, sqlite3_libversion(), git,
		yaml_get_version_string(), curl_version_info(CURLVERSION_NOW)->version,
		LUA_RELEASE + 4, blas, cuda};
	size_t n = sizeof names / sizeof names[0];
	if (json) {
		fputc('{', stdout);
		for (size_t i = 0; i < n; i++) {
			printf("%s\"%s\":", i ? "," : "", names[i]);
			cli_json_str(stdout, vals[i]);
		}
		puts("}");
		return CLI_OK;
	}
	printf("tend %s\n", vals[0]);
	for (size_t i = 1; i < n; i++)
		printf("  %-8s %s\n", names[i], vals[i]);
	return CLI_OK;
}

const cli_cmd cli_version_cmd = {
	"version", "print tend's version and the versions of linked libraries",
	"usage: tend version [--json]\n\n"
	"Prints tend's version and, for each library as loaded at run time,\n"
	"its version: SQLite, libgit2, libyaml, libcurl, Lua, and, as the trainer\n"
	"(tend-train) loads them, OpenBLAS and CUDA.\n",
	cmd_version,
};
