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
#include <lua.h>
#include <sqlite3.h>
#include <string.h>
#include <yaml.h>

#if TEND_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

static void cuda_version(char *buf, size_t cap)
{
#if TEND_HAVE_CUDA
	int rt = 0, drv = 0;
	cudaRuntimeGetVersion(&rt);
	if (cudaDriverGetVersion(&drv) != cudaSuccess || drv == 0)
		snprintf(buf, cap, "runtime %d.%d (no driver)", rt / 1000, rt % 1000 / 10);
	else
		snprintf(buf, cap, "runtime %d.%d, driver %d.%d", rt / 1000,
			 rt % 1000 / 10, drv / 1000, drv % 1000 / 10);
#else
	snprintf(buf, cap, "not built");
#endif
}

static int cmd_version(int argc, char **argv)
{
	bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
	int gmaj, gmin, grev;
	char cuda[96];
	git_libgit2_version(&gmaj, &gmin, &grev);
	cuda_version(cuda, sizeof cuda);
	char git[32];
	snprintf(git, sizeof git, "%d.%d.%d", gmaj, gmin, grev);
	const char *names[] = {"tend", "sqlite", "libgit2", "libyaml", "libcurl", "lua", "cuda"};
	const char *vals[] = {TEND_VERSION_STR, sqlite3_libversion(), git,
		yaml_get_version_string(), curl_version_info(CURLVERSION_NOW)->version,
		LUA_RELEASE + 4, cuda};
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
	"its version: SQLite, libgit2, libyaml, libcurl, Lua, and CUDA when built.\n",
	cmd_version,
};
