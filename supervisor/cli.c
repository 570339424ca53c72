/*
 * cli.c - helpers shared by every `tend` command: workspace discovery in
 * the manner of git's search for .git, error printing, help, JSON strings.
 */
#include "cli.h"
#include "tend.h"
#include "tend_build.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cli_workspace_opt;

static bool has_config(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	if (snprintf(path, sizeof path, "%s/tend.yaml", dir) >= (int)sizeof path)
		return false;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int resolve_given(char *out, size_t cap, const char *dir, const char *from)
{
	char real[PATH_MAX];
	if (!realpath(dir, real))
		return tend_error_os("workspace %s (from %s)", dir, from);
	if (!has_config(real))
		return tend_error_set(TEND_ENOTFOUND,
			"%s (from %s) is not a tend workspace: no tend.yaml; "
			"create one with `tend init %s`", real, from, dir);
	if (strlen(real) >= cap)
		return tend_error_set(TEND_EINVAL, "workspace path too long");
	strcpy(out, real);
	return 0;
}

int cli_workspace(char *out, size_t cap)
{
	char dir[PATH_MAX];
	const char *env = getenv("TEND_WORKSPACE");

	if (cli_workspace_opt)
		return resolve_given(out, cap, cli_workspace_opt, "--workspace");
	if (env && *env)
		return resolve_given(out, cap, env, "TEND_WORKSPACE");
	if (!getcwd(dir, sizeof dir))
		return tend_error_os("getcwd");
	for (;;) {
		if (has_config(dir)) {
			if (strlen(dir) >= cap)
				return tend_error_set(TEND_EINVAL, "workspace path too long");
			strcpy(out, dir);
			return 0;
		}
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir) {
			if (strcmp(dir, "/") != 0) {
				strcpy(dir, "/");
				continue;
			}
			break;
		}
		*slash = '\0';
	}
	return tend_error_set(TEND_ENOTFOUND,
		"not inside a tend workspace (no tend.yaml here or in any parent); "
		"use --workspace DIR, set TEND_WORKSPACE, or run `tend init`");
}

/* Removes the global --workspace option wherever it appears before "--". */
int cli_take_workspace(int *argc, char **argv)
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

int cli_fail(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("tend: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", tend_error_last());
	return code;
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

void cli_print_help(FILE *f, const cli_cmd *cmd)
{
	fprintf(f, "tend %s - %s\n\n%s", cmd->name, cmd->summary, cmd->help);
}

void cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

const char *cli_lua_dir(void)
{
	const char *env = getenv("TEND_LUA_DIR");
	return env && *env ? env : TEND_SOURCE_ROOT "/lua";
}

int cli_self_exe(char *out, size_t cap)
{
	ssize_t n = readlink("/proc/self/exe", out, cap - 1);
	if (n < 0)
		return tend_error_os("/proc/self/exe");
	out[n] = '\0';
	return 0;
}

int cli_trainer_exe(char *out, size_t cap)
{
	char self[PATH_MAX];
	int rc = cli_self_exe(self, sizeof self);
	if (rc < 0)
		return rc;
	char *slash = strrchr(self, '/');
	if (slash)
		slash[1] = '\0';
	if (snprintf(out, cap, "%s%s", slash ? self : "", CLI_TRAINER) >= (int)cap)
		return tend_error_set(TEND_EINVAL, "%s: path too long", self);
	return 0;
}
