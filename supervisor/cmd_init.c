/*
 * cmd_init.c - `tend init [DIR]`: a new workspace. Writes tend.yaml with
 * every default written out and commented, creates the scaffold git
 * repository (the default Lua scaffold as the first commit on main), the
 * store, and the runs folder. Refuses, changing nothing, where any of them
 * already exists; removes what it made when a later part fails.
 */
#include "audit.h"
#include "cli.h"
#include "config.h"
#include "gate.h"
#include "fsutil.h"
#include "patch.h"
#include "store.h"
#include "tend.h"

#include <git2.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const parts[] = {"tend.yaml", "scaffold", "tend.db", "runs"};

static int write_config(const char *path, const char *text)
{
	if (text)
		return fsu_write_atomic(path, text, strlen(text), 0644);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return tend_error_set(TEND_ENOMEM, "out of memory");
	int rc = cfg_write_default(f);
	fclose(f);
	if (rc == 0)
		rc = fsu_write_atomic(path, buf, len, 0644);
	free(buf);
	return rc;
}

static int root_cb(const patch_commit *c, void *ud)
{
	git_oid_tostr(ud, GIT_OID_HEXSZ + 1, c->id);
	return 0;
}

/* The store, with the audit log's first row: the scaffold's root commit and
 * the hash of the gates in force, which `tend audit verify` starts from. */
static int make_store(const char *path, const char *dir, patch_repo *repo)
{
	store *st = NULL;
	cfg *c = NULL;
	char root[GIT_OID_HEXSZ + 1] = "", gates[65], cfgpath[PATH_MAX + 16];
	int rc;
	snprintf(cfgpath, sizeof cfgpath, "%s/tend.yaml", dir);
	if ((rc = cfg_load(&c, cfgpath)) < 0 || (rc = gate_rules_hash(c, gates)) < 0 ||
	    (rc = patch_log(repo, "main", 1, root_cb, root)) < 0 ||
	    (rc = store_open(&st, path, STORE_CREATE)) < 0)
		goto done;
	rc = audit_log(st, "tend", "init", root, "workspace", dir, "gates_sha256", gates,
		       (char *)NULL);
done:
	store_close(st);
	cfg_free(c);
	return rc;
}

static void undo(const char *dir, int made)
{
	char p[PATH_MAX];
	for (int i = 0; i < made; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, parts[i]);
		fsu_rm_rf(p);
	}
}

/* Creates the workspace in dir; on failure removes what it made. */
static int create(const char *dir, const char *config_text)
{
	char p[PATH_MAX];
	patch_repo *repo = NULL;
	int made = 0, rc;
	snprintf(p, sizeof p, "%s/tend.yaml", dir);
	if ((rc = write_config(p, config_text)) < 0)
		goto fail;
	made++;
	snprintf(p, sizeof p, "%s/scaffold", dir);
	if ((rc = patch_repo_init(&repo, p, cli_lua_dir(), "tend")) < 0)
		goto fail;
	made++;
	snprintf(p, sizeof p, "%s/tend.db", dir);
	rc = make_store(p, dir, repo);
	patch_repo_free(repo);
	made++; /* a half-made store is removed too */
	if (rc < 0)
		goto fail;
	snprintf(p, sizeof p, "%s/runs", dir);
	if ((rc = fsu_mkdir_p(p, 0755)) < 0)
		goto fail;
	return 0;
fail:
	undo(dir, made);
	return rc;
}

int cli_init_workspace(const char *dir_arg, const char *config_text, char *abs_out, size_t cap)
{
	char dir[PATH_MAX], p[PATH_MAX];
	int rc;
	if ((rc = fsu_mkdir_p(dir_arg, 0755)) < 0)
		return rc;
	if (!realpath(dir_arg, dir))
		return tend_error_os("%s", dir_arg);
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, parts[i]);
		if (fsu_exists(p))
			return tend_error_set(TEND_EEXISTS, "%s already exists: %s is already a "
					      "workspace (or holds one's parts); nothing changed", p, dir);
	}
	if ((rc = create(dir, config_text)) < 0)
		return rc;
	if (abs_out)
		snprintf(abs_out, cap, "%s", dir);
	return 0;
}

static int cmd_init(int argc, char **argv)
{
	char dir[PATH_MAX];
	if (argc > 2) {
		fprintf(stderr, "usage: tend init [DIR]\n");
		return CLI_USAGE;
	}
	if (cli_init_workspace(argc == 2 ? argv[1] : ".", NULL, dir, sizeof dir) < 0) {
		fprintf(stderr, "tend init: %s\n", tend_error_last());
		return CLI_FAIL;
	}
	printf("Initialised a tend workspace in %s\n"
	       "  tend.yaml   the config, every default written out\n"
	       "  scaffold/   the Lua scaffold, a git repository (branch main)\n"
	       "  tend.db     the store\n"
	       "  runs/       one folder per run\n"
	       "Next: cd %s && tend config check && tend run\n", dir, dir);
	return CLI_OK;
}

const cli_cmd cli_init_cmd = {
	"init", "create a workspace: tend.yaml, scaffold repository, store",
	"usage: tend init [DIR]\n\n"
	"Creates a tend workspace in DIR (default: the current directory):\n"
	"tend.yaml with every default written out and commented, the scaffold\n"
	"repository (git, the default Lua scaffold as the first commit on main),\n"
	"the store (tend.db) and a runs/ folder. Refuses, changing nothing, if\n"
	"DIR already holds any of them.\n",
	cmd_init,
};
