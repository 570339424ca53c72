/*
 * test_patch.c - the scaffold repository on real git repositories in a
 * temp dir: init from a seed, proposals as branch commits, the diff
 * checker's refusals (each with its message), promotion (fast and 3-way,
 * conflicts), revert, reading, and that no branch ever disappears.
 */
#include "patch.h"
#include "sha256.h"
#include "tend.h"
#include "tt.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256];
static int seq;

static const char *const ALLOWED[] = {"*.lua", "prompts/*.md", "monitors/*.lua"};
static const char *const DENIED[] = {"gates*", "tend.yaml", ".git"};

static const char POLICIES[] =
	"-- policies.lua: what to do about incidents\n"
	"local M = {}\n"
	"M.lr_drop = 0.5\n"
	"M.max_retries = 3\n"
	"M.spike_sigma = 6\n"
	"return M\n";

static const char PROMPT[] = "You are tend's proposer.\nPropose one small diff.\n";

/* --- helpers ------------------------------------------------------------ */

static void write_text(const char *dir, const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static char *read_text(const char *dir, const char *rel)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 16);
	size_t n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static bool exists(const char *dir, const char *rel)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	return access(path, F_OK) == 0;
}

/* A fresh directory name under tmp. */
static const char *fresh(char *buf, size_t cap, const char *what)
{
	snprintf(buf, cap, "%s/%s%d", tmp, what, ++seq);
	return buf;
}

/* The seed every test starts from: a small scaffold we know line by line. */
static void make_seed(const char *dir)
{
	char scaffold[8192] = "";
	size_t used = 0;
	for (int i = 1; i <= 40; i++)
		used += (size_t)snprintf(scaffold + used, sizeof scaffold - used,
					 "local v%d = %d\n", i, i);
	mkdir(dir, 0755);
	write_text(dir, "scaffold.lua", scaffold);
	write_text(dir, "policies.lua", POLICIES);
	write_text(dir, "monitors.lua", "return {}\n");
	write_text(dir, "playbook.lua", "return { steps = {} }\n");
	write_text(dir, "prompts/propose.md", PROMPT);
	write_text(dir, "monitors/spike.lua", "return { sigma = 6 }\n");
}

static patch_repo *new_repo(char *dir, size_t cap)
{
	char seed[256];
	patch_repo *r = NULL;
	fresh(seed, sizeof seed, "seed");
	make_seed(seed);
	fresh(dir, cap, "ws");
	int rc = patch_repo_init(&r, dir, seed, "tend test <test@tend>");
	if (rc)
		fprintf(stderr, "init: %s\n", tend_error_last());
	return r;
}

static git_oid ref_oid(patch_repo *r, const char *name)
{
	git_oid id = {{0}};
	git_reference_name_to_id(&id, patch_repo_git(r), name);
	return id;
}

static char *message_of(patch_repo *r, const git_oid *id)
{
	git_commit *c = NULL;
	char *m = NULL;
	if (git_commit_lookup(&c, patch_repo_git(r), id) == 0)
		m = strdup(git_commit_message(c));
	git_commit_free(c);
	return m;
}

static unsigned parents_of(patch_repo *r, const git_oid *id, git_oid *p0, git_oid *p1)
{
	git_commit *c = NULL;
	unsigned n = 0;
	if (git_commit_lookup(&c, patch_repo_git(r), id) == 0) {
		n = git_commit_parentcount(c);
		if (n > 0 && p0)
			git_oid_cpy(p0, git_commit_parent_id(c, 0));
		if (n > 1 && p1)
			git_oid_cpy(p1, git_commit_parent_id(c, 1));
	}
	git_commit_free(c);
	return n;
}

static const patch_trailer PROPOSAL[] = {
	{"Incident", "12"}, {"Proposer", "builtin"}, {"Model", "none"},
	{"Prompt-SHA256", "0000000000000000000000000000000000000000000000000000000000000000"},
	{"Response-SHA256", "1111111111111111111111111111111111111111111111111111111111111111"},
};
static const patch_trailer PROMOTION[] = {
	{"Evaluation", "7"}, {"Promoted-By", "gates"}, {"Val-Loss", "2.31"},
};

static int propose(git_oid *out, patch_repo *r, const char *base, const char *diff,
		   const char *branch)
{
	return patch_apply_to_branch(out, r, base, diff, strlen(diff), branch,
				     "proposal for incident 12", PROPOSAL, 5);
}

static int promote(git_oid *out, patch_repo *r, const char *branch)
{
	return patch_promote(out, r, branch, "promote candidate", PROMOTION, 3);
}

static int validate(const char *diff)
{
	return patch_validate_paths(diff, strlen(diff), ALLOWED, 3, DENIED, 3);
}

/* `git fsck --strict` where git is installed: the repo is sound for git
 * itself, not just for libgit2. */
static void check_fsck(const char *dir)
{
	if (system("git --version >/dev/null 2>&1") != 0)
		return;
	char cmd[512];
	snprintf(cmd, sizeof cmd, "git -C '%s' fsck --strict --no-progress >/dev/null 2>&1", dir);
	TT_CHECK(system(cmd) == 0);
}

/* Diffs against the seed. */
static const char DIFF_LR[] =
	"diff --git a/policies.lua b/policies.lua\n"
	"--- a/policies.lua\n"
	"+++ b/policies.lua\n"
	"@@ -1,6 +1,6 @@\n"
	" -- policies.lua: what to do about incidents\n"
	" local M = {}\n"
	"-M.lr_drop = 0.5\n"
	"+M.lr_drop = 0.3\n"
	" M.max_retries = 3\n"
	" M.spike_sigma = 6\n"
	" return M\n";

static const char DIFF_SIGMA[] = /* plain, no diff --git header */
	"--- a/policies.lua\n"
	"+++ b/policies.lua\n"
	"@@ -3,4 +3,4 @@\n"
	" M.lr_drop = 0.5\n"
	" M.max_retries = 3\n"
	"-M.spike_sigma = 6\n"
	"+M.spike_sigma = 8\n"
	" return M\n";

static const char DIFF_LR_OTHER[] = /* conflicts with DIFF_LR */
	"--- a/policies.lua\n"
	"+++ b/policies.lua\n"
	"@@ -2,3 +2,3 @@\n"
	" local M = {}\n"
	"-M.lr_drop = 0.5\n"
	"+M.lr_drop = 0.1\n"
	" M.max_retries = 3\n";

/* --- init ------------------------------------------------------------------ */

static void test_init_seeds_main(void)
{
	char dir[256], seed[256], other[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_reference *head = NULL;
	TT_REQUIRE(git_reference_lookup(&head, patch_repo_git(r), "HEAD") == 0);
	TT_CHECK_STR(git_reference_symbolic_target(head), "refs/heads/main");
	git_reference_free(head);
	git_oid main = ref_oid(r, "refs/heads/main");
	char *msg = message_of(r, &main);
	TT_CHECK(msg && strncmp(msg, "scaffold: initial import\n\n", 26) == 0);
	char buf[80];
	TT_CHECK_RC(patch_trailer_get(msg, "Seed-Files", buf, sizeof buf), 0);
	TT_CHECK_STR(buf, "6");
	TT_CHECK_RC(patch_trailer_get(msg, "Tend-Version", buf, sizeof buf), 0);
	TT_CHECK_STR(buf, TEND_VERSION);

	/* Seed-SHA256 is sha256sum's output over the sorted files. */
	const char *names[] = {"monitors.lua", "monitors/spike.lua", "playbook.lua",
			       "policies.lua", "prompts/propose.md", "scaffold.lua"};
	char manifest[2048] = "", hex[65];
	size_t used = 0;
	for (int i = 0; i < 6; i++) {
		char *t = read_text(dir, names[i]);
		TT_REQUIRE(t);
		sha256_hex(t, strlen(t), hex);
		used += (size_t)snprintf(manifest + used, sizeof manifest - used,
					 "%s  %s\n", hex, names[i]);
		free(t);
	}
	sha256_hex(manifest, used, hex);
	TT_CHECK_RC(patch_trailer_get(msg, "Seed-SHA256", buf, sizeof buf), 0);
	TT_CHECK_STR(buf, hex);
	free(msg);

	char *pol = read_text(dir, "policies.lua");
	TT_CHECK_STR(pol, POLICIES);
	free(pol);
	check_fsck(dir);
	patch_repo_free(r);

	/* A second init on the same dir is refused; so is a non-empty dir. */
	fresh(seed, sizeof seed, "seed");
	make_seed(seed);
	TT_CHECK_RC(patch_repo_init(&r, dir, seed, NULL), TEND_EEXISTS);
	TT_CHECK_HAS(tend_error_last(), "already holds a git repository");
	TT_CHECK(r == NULL);
	TT_CHECK_RC(patch_repo_init(&r, seed, seed, NULL), TEND_EEXISTS);
	TT_CHECK_HAS(tend_error_last(), "exists and is not empty");

	/* An empty seed is refused and leaves nothing behind. */
	fresh(seed, sizeof seed, "empty");
	mkdir(seed, 0755);
	fresh(other, sizeof other, "ws");
	TT_CHECK_RC(patch_repo_init(&r, other, seed, NULL), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "no regular files");
	TT_CHECK(access(other, F_OK) != 0);

	/* A file where the repository should go; a bad author. */
	char file[300];
	snprintf(file, sizeof file, "%s/policies.lua", dir);
	TT_CHECK_RC(patch_repo_init(&r, file, seed, NULL), TEND_EEXISTS);
	TT_CHECK_HAS(tend_error_last(), "exists and is not a readable directory");
	TT_CHECK_RC(patch_repo_init(&r, fresh(other, sizeof other, "ws"), seed, "<x@y>"),
		    TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "author \"<x@y>\": want \"Name <email>\"");

	TT_CHECK_RC(patch_repo_open(&r, dir), 0);
	/* Materializing under a regular file fails with the OS's reason. */
	snprintf(file, sizeof file, "%s/policies.lua/out", dir);
	TT_CHECK_RC(patch_materialize(r, "main", file), TEND_EIO);
	TT_CHECK_HAS(tend_error_last(), "Not a directory");
	patch_repo_free(r);
	TT_CHECK_RC(patch_repo_open(&r, seed), TEND_ENOTFOUND);
}

/* The real default scaffold, when lua/ has been written. */
static void test_init_from_source_lua(void)
{
	const char *root = getenv("TEND_SOURCE_ROOT");
	char lua[512], dir[256], buf[32];
	snprintf(lua, sizeof lua, "%s/lua", root ? root : ".");
	DIR *d = opendir(lua);
	int files = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		files += e->d_name[0] != '.';
	if (d)
		closedir(d);
	if (files == 0) {
		fprintf(stderr, "  (lua/ is empty: the seed test above covers init)\n");
		return;
	}
	patch_repo *r = NULL;
	TT_CHECK_RC(patch_repo_init(&r, fresh(dir, sizeof dir, "ws"), lua, NULL), 0);
	TT_REQUIRE(r);
	git_oid main = ref_oid(r, "refs/heads/main");
	char *msg = message_of(r, &main);
	TT_CHECK_RC(patch_trailer_get(msg, "Seed-Files", buf, sizeof buf), 0);
	TT_CHECK(atoi(buf) >= files);
	free(msg);
	patch_repo_free(r);
}

/* --- proposals ---------------------------------------------------------------- */

static void test_good_diff_becomes_branch(void)
{
	char dir[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_oid main0 = ref_oid(r, "refs/heads/main"), c, p0;
	TT_CHECK_RC(validate(DIFF_LR), 0);
	TT_CHECK_RC(propose(&c, r, "main", DIFF_LR, "proposals/12-1"), 0);

	git_oid br = ref_oid(r, "refs/heads/proposals/12-1");
	TT_CHECK(git_oid_equal(&br, &c));
	TT_CHECK(parents_of(r, &c, &p0, NULL) == 1 && git_oid_equal(&p0, &main0));
	git_oid main1 = ref_oid(r, "refs/heads/main");
	TT_CHECK(git_oid_equal(&main0, &main1));
	char *wt = read_text(dir, "policies.lua");
	TT_CHECK_STR(wt, POLICIES); /* the working tree is untouched */
	free(wt);

	char *blob = NULL;
	size_t len = 0;
	TT_CHECK_RC(patch_read_blob(&blob, &len, r, "proposals/12-1", "policies.lua"), 0);
	TT_CHECK_HAS(blob, "M.lr_drop = 0.3\n");
	TT_CHECK(len == strlen(POLICIES));
	free(blob);

	char *msg = message_of(r, &c), buf[80];
	const char *head = "proposal for incident 12\n\nIncident: 12\nProposer: builtin\n";
	TT_CHECK(msg && strncmp(msg, head, strlen(head)) == 0);
	TT_CHECK_RC(patch_trailer_get(msg, "incident", buf, sizeof buf), 0);
	TT_CHECK_STR(buf, "12");
	TT_CHECK_RC(patch_trailer_get(msg, "Response-SHA256", buf, sizeof buf), 0);
	TT_CHECK_STR(buf, PROPOSAL[4].value);
	free(msg);

	/* A plain ---/+++ diff (no diff --git) works too, as does a new file. */
	TT_CHECK_RC(propose(&c, r, "main", DIFF_SIGMA, "proposals/12-2"), 0);
	const char *newfile = "--- /dev/null\n+++ b/prompts/review.md\n@@ -0,0 +1,2 @@\n"
			      "+Review the diff.\n+Say yes or no.\n";
	TT_CHECK_RC(validate(newfile), 0);
	TT_CHECK_RC(propose(&c, r, "proposals/12-2", newfile, "proposals/12-3"), 0);
	TT_CHECK_RC(patch_read_blob(&blob, NULL, r, "proposals/12-3", "prompts/review.md"), 0);
	TT_CHECK_STR(blob, "Review the diff.\nSay yes or no.\n");
	free(blob);
	TT_CHECK_RC(patch_read_blob(&blob, NULL, r, "proposals/12-3", "policies.lua"), 0);
	TT_CHECK_HAS(blob, "M.spike_sigma = 8\n");
	free(blob);

	/* Prose before the diff, as a model writes it, is dropped. */
	char prose[1024];
	snprintf(prose, sizeof prose, "I lower the learning-rate drop.\n\n%s", DIFF_LR);
	TT_CHECK_RC(propose(&c, r, "main", prose, "proposals/12-4"), 0);

	/* The branch exists: refused, and the first one is unchanged. */
	TT_CHECK_RC(propose(&c, r, "main", DIFF_SIGMA, "proposals/12-1"), TEND_EEXISTS);
	TT_CHECK_STR(tend_error_last(), "branch proposals/12-1 already exists");
	TT_CHECK_RC(propose(&c, r, "main", DIFF_SIGMA, "bad..name"), TEND_EINVAL);
	TT_CHECK_RC(propose(&c, r, "nosuch", DIFF_SIGMA, "proposals/12-9"), TEND_ENOTFOUND);
	TT_CHECK_STR(tend_error_last(), "revision \"nosuch\" not found");
	check_fsck(dir);
	patch_repo_free(r);
}

/* A removed Lua comment "-- x" shows as "--- x" inside a hunk: content,
 * not a file header. */
static void test_comment_lines_are_content(void)
{
	char dir[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	const char *d = "diff --git a/policies.lua b/policies.lua\n"
			"--- a/policies.lua\n+++ b/policies.lua\n"
			"@@ -1,2 +1,2 @@\n"
			"--- policies.lua: what to do about incidents\n"
			"+-- policies.lua: what to do (edited)\n"
			" local M = {}\n";
	TT_CHECK_RC(validate(d), 0);
	git_oid c;
	TT_CHECK_RC(propose(&c, r, NULL, d, "proposals/1-1"), 0);
	char *blob = NULL;
	TT_CHECK_RC(patch_read_blob(&blob, NULL, r, "proposals/1-1", "policies.lua"), 0);
	const char *first = "-- policies.lua: what to do (edited)\nlocal M = {}\n";
	TT_CHECK(blob && strncmp(blob, first, strlen(first)) == 0);
	free(blob);
	patch_repo_free(r);
}

static void test_diff_that_does_not_apply(void)
{
	char dir[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	const char *d = "diff --git a/policies.lua b/policies.lua\n"
			"--- a/policies.lua\n+++ b/policies.lua\n"
			"@@ -3,2 +3,2 @@\n"
			"-M.lr_drop = 0.9\n"
			"+M.lr_drop = 0.1\n"
			" M.max_retries = 3\n";
	git_oid c;
	TT_CHECK_RC(validate(d), 0); /* well-formed, just wrong */
	TT_CHECK_RC(propose(&c, r, "main", d, "proposals/3-1"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "the diff does not apply to main: ");
	TT_CHECK_HAS(tend_error_last(), "(file \"policies.lua\", hunk 1: @@ -3,2 +3,2 @@)");
	git_reference *ref = NULL;
	TT_CHECK(git_branch_lookup(&ref, patch_repo_git(r), "proposals/3-1",
				   GIT_BRANCH_LOCAL) == GIT_ENOTFOUND);

	/* A file that is not there, a diff that changes nothing, garbage. */
	const char *missing = "--- a/nothere.lua\n+++ b/nothere.lua\n@@ -1 +1 @@\n-a\n+b\n";
	TT_CHECK_RC(propose(&c, r, "main", missing, "proposals/3-2"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "nothere.lua");
	const char *noop = "--- a/policies.lua\n+++ b/policies.lua\n@@ -2 +2 @@\n"
			   "-local M = {}\n+local M = {}\n";
	TT_CHECK_RC(propose(&c, r, "main", noop, "proposals/3-3"), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "the diff changes nothing in main");
	TT_CHECK_RC(propose(&c, r, "main", "just some words\n", "proposals/3-4"), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "no file header found in the diff");

	/* libgit2 alone would let these erase content the proposer never saw. */
	const char *over = "--- /dev/null\n+++ b/policies.lua\n@@ -0,0 +1 @@\n+return {}\n";
	TT_CHECK_RC(propose(&c, r, "main", over, "proposals/3-5"), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(),
		     "the diff does not apply to main: \"policies.lua\" already exists in the base");
	const char *onto = "diff --git a/monitors.lua b/policies.lua\nsimilarity index 100%\n"
			   "rename from monitors.lua\nrename to policies.lua\n";
	TT_CHECK_RC(propose(&c, r, "main", onto, "proposals/3-6"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "\"policies.lua\" already exists in the base");
	const char *del = "--- a/policies.lua\n+++ /dev/null\n@@ -1,2 +0,0 @@\n"
			  "--- policies.lua: what to do about incidents\n-local M = {}\n";
	TT_CHECK_RC(propose(&c, r, "main", del, "proposals/3-7"), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "the diff does not apply to main: deleting "
		     "\"policies.lua\": the diff's old content is not the file's");
	const char *nonl = "--- a/monitors.lua\n+++ /dev/null\n@@ -1 +0,0 @@\n-return {}\n"
			   "\\ No newline at end of file\n";
	TT_CHECK_RC(propose(&c, r, "main", nonl, "proposals/3-8"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "the diff's old content is not the file's");
	patch_repo_free(r);
}

/* --- the checker's refusals ---------------------------------------------------- */

static void check_refused(const char *diff, const char *want)
{
	TT_CHECK_RC(validate(diff), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), want);
}

static void test_refuses_traversal_and_absolute(void)
{
	check_refused("--- a/../x.lua\n+++ b/../x.lua\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \"../x.lua\" (---): '..' component (path traversal)");
	check_refused("--- a/policies.lua\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 2: \"/etc/passwd\" (+++): absolute path");
	check_refused("diff --git a/a/../../x b/a/../../x\n--- a/a/../../x\n+++ b/a/../../x\n"
		      "@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \"a/../../x\" (diff --git): '..' component (path traversal)");
	check_refused("--- a/x.lua\n+++ b//etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 2: \"/etc/passwd\" (+++): absolute path");
	check_refused("--- a/./x.lua\n+++ b/./x.lua\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \"./x.lua\" (---): '.' component");
	check_refused("--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \".git/config\" (---): git metadata (.git*)");
	check_refused("--- a/.gitattributes\n+++ b/.gitattributes\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \".gitattributes\" (---): git metadata (.git*)");
	check_refused("diff --git \"a/x y.lua\" \"b/x y.lua\"\n",
		      "line 1: quoted path in diff --git: unusual characters");
	check_refused("--- x.lua\n+++ x.lua\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \"x.lua\" (---): missing the a/ prefix");
}

static void test_refuses_modes_and_binary(void)
{
	check_refused("diff --git a/link.lua b/link.lua\nnew file mode 120000\n"
		      "index 0000000..e69de29\n--- /dev/null\n+++ b/link.lua\n"
		      "@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n",
		      "line 2: \"link.lua\" (new file mode 120000): symlink mode not allowed (only 100644)");
	check_refused("diff --git a/policies.lua b/policies.lua\nold mode 100644\nnew mode 100755\n",
		      "line 3: \"policies.lua\" (new mode 100755): executable mode not allowed (only 100644)");
	check_refused("diff --git a/policies.lua b/policies.lua\nindex 1111111..2222222 120000\n",
		      "line 2: \"policies.lua\" (index 120000): symlink mode not allowed (only 100644)");
	check_refused("diff --git a/sub.lua b/sub.lua\nnew file mode 160000\n",
		      "line 2: \"sub.lua\" (new file mode 160000): submodule mode not allowed (only 100644)");
	check_refused("diff --git a/policies.lua b/policies.lua\nindex 1111111..2222222 100644\n"
		      "GIT binary patch\nliteral 5\nMcmZ?b00001\n\nliteral 0\nHcmV?d00001\n",
		      "line 3: \"policies.lua\": binary patch not allowed");
	check_refused("diff --git a/policies.lua b/policies.lua\nindex 1111111..2222222 100644\n"
		      "Binary files a/policies.lua and b/policies.lua differ\n",
		      "line 3: \"policies.lua\": binary patch not allowed");

	/* Even without a policy, applying refuses a symlink. */
	char dir[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_oid c;
	const char *sym = "diff --git a/link.lua b/link.lua\nnew file mode 120000\n"
			  "--- /dev/null\n+++ b/link.lua\n@@ -0,0 +1 @@\n+/etc/passwd\n";
	TT_CHECK_RC(propose(&c, r, "main", sym, "proposals/4-1"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "symlink mode not allowed");
	patch_repo_free(r);
}

static void test_refuses_denied_and_outside(void)
{
	check_refused("--- a/gates.yaml\n+++ b/gates.yaml\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \"gates.yaml\" (---): denied by \"gates*\"");
	check_refused("--- a/tend.yaml\n+++ b/tend.yaml\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \"tend.yaml\" (---): denied by \"tend.yaml\"");
	check_refused("--- a/monitors/Gates.lua\n+++ b/monitors/Gates.lua\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \"monitors/Gates.lua\" (---): denied by \"gates*\"");
	check_refused("--- a/run.sh\n+++ b/run.sh\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \"run.sh\" (---): not in the allowed set (*.lua, prompts/*.md, monitors/*.lua)");
	check_refused("--- a/lib/deep.lua\n+++ b/lib/deep.lua\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \"lib/deep.lua\" (---): not in the allowed set (*.lua, prompts/*.md, monitors/*.lua)");
	/* A rename out of the set, and one into a denied name. */
	check_refused("diff --git a/policies.lua b/policies.sh\nsimilarity index 100%\n"
		      "rename from policies.lua\nrename to policies.sh\n",
		      "line 1: \"policies.sh\" (diff --git): not in the allowed set (*.lua, prompts/*.md, monitors/*.lua)");
	check_refused("diff --git a/policies.lua b/prompts/x.md\nsimilarity index 100%\n"
		      "rename from policies.lua\nrename to gates.lua\n",
		      "line 4: \"gates.lua\" (rename to): denied by \"gates*\"");
	check_refused("diff --git a/tend.yaml b/x.lua\ncopy from tend.yaml\ncopy to x.lua\n",
		      "line 1: \"tend.yaml\" (diff --git): denied by \"tend.yaml\"");
	/* A rename inside the set passes. */
	TT_CHECK_RC(validate("diff --git a/policies.lua b/monitors/policies.lua\n"
			     "similarity index 100%\nrename from policies.lua\n"
			     "rename to monitors/policies.lua\n"), 0);
	/* n == 0 allows nothing. */
	const char *d = "--- a/x.lua\n+++ b/x.lua\n@@ -1 +1 @@\n-a\n+b\n";
	TT_CHECK_RC(patch_validate_paths(d, strlen(d), NULL, 0, NULL, 0), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "line 1: \"x.lua\" (---): not in the allowed set (empty)");
}

static void test_refuses_malformed_and_big(void)
{
	const char *one = "--- a/x.lua\n+++ b/x.lua\n@@ -1 +1 @@\n-a\n+b\n";
	char three[512];
	snprintf(three, sizeof three, "%s%s%s", one, one, one);
	patch_limits lim = {2, 4, 4096};
	TT_CHECK_RC(patch_validate_paths_ex(three, strlen(three), ALLOWED, 3, DENIED, 3, &lim),
		    TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "line 11: more than 2 files in one proposal");
	const char *big = "--- a/x.lua\n+++ b/x.lua\n@@ -1,3 +1,3 @@\n-a\n-b\n-c\n+d\n+e\n+f\n";
	TT_CHECK_RC(patch_validate_paths_ex(big, strlen(big), ALLOWED, 3, DENIED, 3, &lim),
		    TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "line 3: \"x.lua\": hunk of 6 lines over the bound of 4");
	lim.max_bytes = 10;
	TT_CHECK_RC(patch_validate_paths_ex(one, strlen(one), ALLOWED, 3, DENIED, 3, &lim),
		    TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "diff of 42 bytes over the bound of 10");

	check_refused("--- a/x.lua\r\n+++ b/x.lua\r\n", "line 1: CR line ending (the diff must use LF)");
	check_refused("--- a/x.lua\n+++ b/x.lua\n@@ -1,2 +1,2 @@\n-a\n+b\n",
		      "line 5: \"x.lua\": diff ends inside a hunk (1 old and 1 new lines missing)");
	check_refused("--- a/x.lua\n+++ b/x.lua\n@@ -1,2 +1,2 @@\n-a\n+b\n@@ -5 +5 @@\n",
		      "line 6: \"x.lua\": hunk ends early (1 old and 1 new lines missing)");
	check_refused("--- a/x.lua\n+++ b/x.lua\n@@ -1 +1 @@\n-a\n+b\nand now some prose\n",
		      "line 6: \"x.lua\": unexpected line outside a hunk: \"and now some prose\"");
	check_refused("--- a/x.lua\n+++ b/y.lua\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: --- and +++ name different files (\"x.lua\", \"y.lua\")");
	check_refused("diff --git a/x.lua b/x.lua\n--- a/x.lua\n+++ b/y.lua\n@@ -1 +1 @@\n-a\n+b\n",
		      "line 1: \"x.lua\": ---/+++ names disagree with diff --git (or a missing new/deleted file header)");
	check_refused("--- a/x.lua\n+++ b/x.lua\n", "line 1: \"x.lua\": ---/+++ without any hunk");
	check_refused("@@ -1 +1 @@\n-a\n+b\n", "line 1: hunk outside a file (no ---/+++ before it)");
	check_refused("", "no file header found in the diff");
	/* Prose before the first header is fine, as is a final newline marker. */
	TT_CHECK_RC(validate("Here is my change:\n\n--- a/x.lua\n+++ b/x.lua\n@@ -1 +1 @@\n"
			     "-a\n+b\n\\ No newline at end of file\n"), 0);
}

/* The diff is (pointer, length): nothing may read past the end. Each case
 * is copied into a buffer of exactly its length (ASan sees overreads). */
static void test_unterminated_buffers(void)
{
	const char *cases[] = {
		"--- a/x.lua\n+++ b/x.lua\n@@ -1",
		"--- a/x.lua\n+++ b/x.lua\n@@ -1 +1 @@\n-a\n+b",
		"--- a/x.lua",
		"diff --git a/x.lua b/x.lua\nindex 1111111..2222222",
		"diff --git a/x.lua b/x.lua\nnew file mode 10064",
		"--- a/x.lua\t2026-11-30\n+++ b/x.lua\t2026-11-30\n@@ -1 +1 @@\n-a\n+b\n",
		"diff --git a/x.lua",
		"@@",
	};
	const int want[] = {TEND_EINVAL, 0, TEND_EINVAL, TEND_EINVAL, TEND_EINVAL, 0,
			    TEND_EINVAL, TEND_EINVAL};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i]);
		char *exact = malloc(n);
		memcpy(exact, cases[i], n);
		TT_CHECK_RC(patch_validate_paths(exact, n, ALLOWED, 3, DENIED, 3), want[i]);
		free(exact);
	}
	TT_CHECK_RC(validate("diff --git a/x.lua b/x.lua\nnew file mode 10064\n"), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(),
		     "line 2: \"x.lua\" (new file mode 10064): mode not allowed (only 100644)");
}

/* --- promotion --------------------------------------------------------------- */

static void test_promote_fast_forward_base(void)
{
	char dir[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_oid main0 = ref_oid(r, "refs/heads/main"), cand, m, p0, p1;
	TT_REQUIRE(propose(&cand, r, "main", DIFF_LR, "proposals/12-1") == 0);
	TT_CHECK_RC(promote(&m, r, "proposals/12-1"), 0);

	git_oid main1 = ref_oid(r, "refs/heads/main");
	TT_CHECK(git_oid_equal(&main1, &m));
	TT_CHECK(!git_oid_equal(&m, &cand)); /* its own commit, not a fast-forward */
	TT_CHECK(parents_of(r, &m, &p0, &p1) == 2);
	TT_CHECK(git_oid_equal(&p0, &main0) && git_oid_equal(&p1, &cand));
	git_commit *mc = NULL, *cc = NULL;
	TT_REQUIRE(git_commit_lookup(&mc, patch_repo_git(r), &m) == 0);
	TT_REQUIRE(git_commit_lookup(&cc, patch_repo_git(r), &cand) == 0);
	TT_CHECK(git_oid_equal(git_commit_tree_id(mc), git_commit_tree_id(cc)));
	git_commit_free(mc);
	git_commit_free(cc);

	char *msg = message_of(r, &m), buf[32];
	TT_CHECK_RC(patch_trailer_get(msg, "Evaluation", buf, sizeof buf), 0);
	TT_CHECK_STR(buf, "7");
	TT_CHECK_RC(patch_trailer_get(msg, "Val-Loss", buf, sizeof buf), 0);
	TT_CHECK_STR(buf, "2.31");
	free(msg);

	/* The working tree and index follow main. */
	char *wt = read_text(dir, "policies.lua");
	TT_CHECK_HAS(wt, "M.lr_drop = 0.3\n");
	free(wt);
	git_status_list *st = NULL;
	TT_REQUIRE(git_status_list_new(&st, patch_repo_git(r), NULL) == 0);
	TT_CHECK(git_status_list_entrycount(st) == 0);
	git_status_list_free(st);

	TT_CHECK_RC(promote(&m, r, "proposals/12-1"), TEND_EEXISTS);
	TT_CHECK_STR(tend_error_last(), "proposals/12-1 is already merged into main");
	TT_CHECK_RC(promote(&m, r, "proposals/none"), TEND_ENOTFOUND);
	TT_CHECK_RC(patch_promote(&m, r, "proposals/12-1", "x", NULL, 0), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "a commit needs trailers");
	check_fsck(dir);
	patch_repo_free(r);
}

static void test_promote_after_main_moved(void)
{
	char dir[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_oid a, b, m, p0, p1;
	const char *prompt = "--- a/prompts/propose.md\n+++ b/prompts/propose.md\n@@ -2 +2 @@\n"
			     "-Propose one small diff.\n+Propose one small, safe diff.\n";
	TT_REQUIRE(propose(&a, r, "main", DIFF_LR, "proposals/20-1") == 0);
	TT_REQUIRE(propose(&b, r, "main", DIFF_SIGMA, "proposals/21-1") == 0);
	git_oid c;
	TT_REQUIRE(propose(&c, r, "main", prompt, "proposals/22-1") == 0);
	TT_CHECK_RC(promote(&m, r, "proposals/20-1"), 0);
	git_oid after_a = m;
	TT_CHECK_RC(promote(&m, r, "proposals/21-1"), 0); /* same file, other lines */
	TT_CHECK(parents_of(r, &m, &p0, &p1) == 2);
	TT_CHECK(git_oid_equal(&p0, &after_a) && git_oid_equal(&p1, &b));
	TT_CHECK_RC(promote(&m, r, "proposals/22-1"), 0); /* another file */
	char *wt = read_text(dir, "policies.lua");
	TT_CHECK_HAS(wt, "M.lr_drop = 0.3\n");
	TT_CHECK_HAS(wt, "M.spike_sigma = 8\n");
	free(wt);
	wt = read_text(dir, "prompts/propose.md");
	TT_CHECK_HAS(wt, "small, safe diff");
	free(wt);
	check_fsck(dir);
	patch_repo_free(r);
}

static void test_promote_conflict_refused(void)
{
	char dir[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_oid a, b, m;
	TT_REQUIRE(propose(&a, r, "main", DIFF_LR, "proposals/30-1") == 0);
	TT_REQUIRE(propose(&b, r, "main", DIFF_LR_OTHER, "proposals/30-2") == 0);
	TT_CHECK_RC(promote(&m, r, "proposals/30-1"), 0);
	git_oid before = ref_oid(r, "refs/heads/main");
	TT_CHECK_RC(promote(&m, r, "proposals/30-2"), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "proposals/30-2: conflict in 1 file: policies.lua");
	git_oid after = ref_oid(r, "refs/heads/main");
	TT_CHECK(git_oid_equal(&before, &after));
	char *wt = read_text(dir, "policies.lua");
	TT_CHECK_HAS(wt, "M.lr_drop = 0.3\n");
	free(wt);
	patch_repo_free(r);
}

/* Deleting a file removes it from the working tree; local edits to
 * tracked files are overwritten, untracked files stay. */
static void test_promote_updates_working_tree(void)
{
	char dir[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	const char *del = "diff --git a/monitors/spike.lua b/monitors/spike.lua\n"
			  "deleted file mode 100644\n"
			  "--- a/monitors/spike.lua\n+++ /dev/null\n@@ -1 +0,0 @@\n"
			  "-return { sigma = 6 }\n";
	git_oid c, m;
	TT_CHECK_RC(validate(del), 0);
	TT_REQUIRE(propose(&c, r, "main", del, "proposals/40-1") == 0);
	write_text(dir, "notes.txt", "mine\n");
	write_text(dir, "playbook.lua", "hand edit\n");
	/* Someone moved HEAD off main: promotion puts it back. */
	TT_REQUIRE(git_repository_set_head(patch_repo_git(r), "refs/heads/proposals/40-1") == 0);
	TT_CHECK_RC(promote(&m, r, "proposals/40-1"), 0);
	git_reference *head = NULL;
	TT_REQUIRE(git_reference_lookup(&head, patch_repo_git(r), "HEAD") == 0);
	TT_CHECK_STR(git_reference_symbolic_target(head), "refs/heads/main");
	git_reference_free(head);
	TT_CHECK(!exists(dir, "monitors/spike.lua"));
	TT_CHECK(exists(dir, "notes.txt"));
	char *wt = read_text(dir, "playbook.lua");
	TT_CHECK_STR(wt, "return { steps = {} }\n");
	free(wt);
	patch_repo_free(r);
}

static void test_revert(void)
{
	char dir[256], id[GIT_OID_HEXSZ + 1], buf[80];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_oid main0 = ref_oid(r, "refs/heads/main"), c, m, rv, p0;
	TT_REQUIRE(propose(&c, r, "main", DIFF_LR, "proposals/50-1") == 0);
	TT_REQUIRE(promote(&m, r, "proposals/50-1") == 0);
	const patch_trailer t[] = {{"Rollback-By", "user"}};
	git_oid_tostr(id, sizeof id, &m);
	TT_CHECK_RC(patch_revert(&rv, r, id, "rollback: evaluation 7", t, 1), 0);

	TT_CHECK(parents_of(r, &rv, &p0, NULL) == 1 && git_oid_equal(&p0, &m));
	git_commit *rc = NULL, *c0 = NULL;
	TT_REQUIRE(git_commit_lookup(&rc, patch_repo_git(r), &rv) == 0);
	TT_REQUIRE(git_commit_lookup(&c0, patch_repo_git(r), &main0) == 0);
	TT_CHECK(git_oid_equal(git_commit_tree_id(rc), git_commit_tree_id(c0)));
	TT_CHECK_RC(patch_trailer_get(git_commit_message(rc), "Reverts", buf, sizeof buf), 0);
	TT_CHECK_STR(buf, id);
	TT_CHECK_RC(patch_trailer_get(git_commit_message(rc), "Rollback-By", buf, sizeof buf), 0);
	git_commit_free(rc);
	git_commit_free(c0);
	char *wt = read_text(dir, "policies.lua");
	TT_CHECK_STR(wt, POLICIES);
	free(wt);

	TT_CHECK_RC(patch_revert(&rv, r, id, "again", t, 1), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "changes nothing (already reverted?)");
	git_oid_tostr(id, sizeof id, &main0);
	TT_CHECK_RC(patch_revert(&rv, r, id, "root", t, 1), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "is the initial import");
	TT_REQUIRE(propose(&c, r, "main", DIFF_SIGMA, "proposals/51-1") == 0);
	TT_CHECK_RC(patch_revert(&rv, r, "proposals/51-1", "not merged", t, 1), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "proposals/51-1 is not in main's history");
	check_fsck(dir);
	patch_repo_free(r);
}

/* --- reading ------------------------------------------------------------------ */

static void test_materialize_and_diff(void)
{
	char dir[256], out[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_oid c;
	TT_REQUIRE(propose(&c, r, "main", DIFF_LR, "proposals/60-1") == 0);
	fresh(out, sizeof out, "eval");
	TT_CHECK_RC(patch_materialize(r, "proposals/60-1", out), 0);
	char *t = read_text(out, "policies.lua");
	TT_CHECK_HAS(t, "M.lr_drop = 0.3\n");
	free(t);
	t = read_text(out, "prompts/propose.md");
	TT_CHECK_STR(t, PROMPT);
	free(t);
	TT_CHECK(!exists(out, ".git"));
	TT_CHECK_RC(patch_materialize(r, "main", out), TEND_EEXISTS);
	TT_CHECK_HAS(tend_error_last(), "exists and is not empty");

	char *d = NULL;
	TT_CHECK_RC(patch_diff_text(&d, r, "main", "proposals/60-1"), 0);
	TT_CHECK_HAS(d, "diff --git a/policies.lua b/policies.lua\n");
	TT_CHECK_HAS(d, "\n-M.lr_drop = 0.5\n+M.lr_drop = 0.3\n");
	free(d);
	TT_CHECK_RC(patch_diff_text(&d, r, NULL, "proposals/60-1"), 0); /* vs parent */
	TT_CHECK_HAS(d, "+M.lr_drop = 0.3\n");
	/* What we print, we can apply again (the history view round-trips). */
	git_oid again;
	TT_CHECK_RC(propose(&again, r, "main", d, "proposals/60-2"), 0);
	free(d);
	TT_CHECK_RC(patch_diff_text(&d, r, "main", "main"), 0);
	TT_CHECK_STR(d, "");
	free(d);
	char *blob = NULL;
	TT_CHECK_RC(patch_read_blob(&blob, NULL, r, "main", "nothere.lua"), TEND_ENOTFOUND);
	TT_CHECK_RC(patch_read_blob(&blob, NULL, r, "main", "prompts"), TEND_EINVAL);
	patch_repo_free(r);
}

/* A commit with a symlink, made with libgit2 behind the patcher's back:
 * reading and materializing refuse it. */
static void test_foreign_symlink_refused(void)
{
	char dir[256], out[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_repository *g = patch_repo_git(r);
	git_oid main = ref_oid(r, "refs/heads/main"), blob, tree_id, cid;
	git_commit *mc = NULL;
	git_tree *base = NULL, *tree = NULL;
	git_treebuilder *tb = NULL;
	git_signature *sig = NULL;
	TT_REQUIRE(git_commit_lookup(&mc, g, &main) == 0 && git_commit_tree(&base, mc) == 0);
	TT_REQUIRE(git_blob_create_from_buffer(&blob, g, "/etc/passwd", 11) == 0);
	TT_REQUIRE(git_treebuilder_new(&tb, g, base) == 0);
	TT_REQUIRE(git_treebuilder_insert(NULL, tb, "link.lua", &blob, GIT_FILEMODE_LINK) == 0);
	TT_REQUIRE(git_treebuilder_write(&tree_id, tb) == 0);
	TT_REQUIRE(git_tree_lookup(&tree, g, &tree_id) == 0);
	TT_REQUIRE(git_signature_now(&sig, "x", "x@x") == 0);
	const git_commit *parents[] = {mc};
	TT_REQUIRE(git_commit_create(&cid, g, "refs/heads/foreign", sig, sig, NULL, "x\n",
				     tree, 1, parents) == 0);
	char *b = NULL;
	TT_CHECK_RC(patch_read_blob(&b, NULL, r, "foreign", "link.lua"), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "foreign:link.lua is not a regular file");
	fresh(out, sizeof out, "eval");
	TT_CHECK_RC(patch_materialize(r, "foreign", out), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "/link.lua: a symlink (regular files only)");
	TT_CHECK(access(out, F_OK) != 0); /* nothing half-written left */
	git_signature_free(sig);
	git_treebuilder_free(tb);
	git_tree_free(tree);
	git_tree_free(base);
	git_commit_free(mc);
	patch_repo_free(r);

	/* Reopened, the repository still signs as the author given at init. */
	TT_REQUIRE(patch_repo_open(&r, dir) == 0);
	git_oid c;
	TT_REQUIRE(propose(&c, r, "main", DIFF_LR, "proposals/80-1") == 0);
	git_commit *pc = NULL;
	TT_REQUIRE(git_commit_lookup(&pc, patch_repo_git(r), &c) == 0);
	TT_CHECK_STR(git_commit_author(pc)->name, "tend test");
	TT_CHECK_STR(git_commit_author(pc)->email, "test@tend");
	git_commit_free(pc);
	patch_repo_free(r);
}

typedef struct seen {
	int n;
	char summaries[8][80];
	unsigned nparents[8];
	char evaluation[8][16];
} seen;

static int collect(const patch_commit *c, void *ud)
{
	seen *s = ud;
	if (s->n >= 8)
		return 1;
	snprintf(s->summaries[s->n], sizeof s->summaries[0], "%s", c->summary);
	s->nparents[s->n] = (unsigned)c->nparents;
	s->evaluation[s->n][0] = '\0';
	for (size_t i = 0; i < c->ntrailers; i++)
		if (!strcmp(c->trailer[i].key, "Evaluation"))
			snprintf(s->evaluation[s->n], 16, "%s", c->trailer[i].value);
	s->n++;
	return 0;
}

static void test_history_and_branches_kept(void)
{
	char dir[256], id[GIT_OID_HEXSZ + 1];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_oid c, m, rv;
	TT_REQUIRE(propose(&c, r, "main", DIFF_LR, "proposals/70-1") == 0);
	TT_REQUIRE(propose(&c, r, "main", DIFF_SIGMA, "proposals/70-2") == 0);
	TT_REQUIRE(promote(&m, r, "proposals/70-1") == 0);
	TT_REQUIRE(promote(&m, r, "proposals/70-2") == 0);
	git_oid_tostr(id, sizeof id, &m);
	const patch_trailer t[] = {{"Rollback-By", "user"}};
	TT_REQUIRE(patch_revert(&rv, r, id, "rollback", t, 1) == 0);

	seen s = {0};
	TT_CHECK_RC(patch_main_history(r, collect, &s), 0);
	TT_REQUIRE(s.n == 4);
	TT_CHECK_STR(s.summaries[0], "rollback");
	TT_CHECK_STR(s.summaries[1], "promote candidate");
	TT_CHECK_STR(s.summaries[3], "scaffold: initial import");
	TT_CHECK(s.nparents[0] == 1 && s.nparents[1] == 2 && s.nparents[3] == 0);
	TT_CHECK_STR(s.evaluation[1], "7");

	seen all = {0};
	TT_CHECK_RC(patch_log(r, "main", 0, collect, &all), 0);
	TT_CHECK(all.n == 6); /* + the two proposal commits */
	seen two = {0};
	TT_CHECK_RC(patch_log(r, "main", 2, collect, &two), 0);
	TT_CHECK(two.n == 2);

	/* No branch went away. */
	git_branch_iterator *it = NULL;
	git_reference *ref = NULL;
	git_branch_t type;
	int branches = 0;
	TT_REQUIRE(git_branch_iterator_new(&it, patch_repo_git(r), GIT_BRANCH_LOCAL) == 0);
	while (git_branch_next(&ref, &type, it) == 0) {
		branches++;
		git_reference_free(ref);
	}
	git_branch_iterator_free(it);
	TT_CHECK(branches == 3);
	patch_repo_free(r);
}

static void test_trailers(void)
{
	char buf[16];
	const char *msg = "subject\n\nbody: not a trailer\nmore\n\nIncident: 12\n"
			  "Model: none\nincident: 13\n";
	TT_CHECK_RC(patch_trailer_get(msg, "Incident", buf, sizeof buf), 0);
	TT_CHECK_STR(buf, "13"); /* the last one wins */
	TT_CHECK_RC(patch_trailer_get(msg, "body", buf, sizeof buf), TEND_ENOTFOUND);
	TT_CHECK_STR(tend_error_last(), "no body trailer");
	TT_CHECK_RC(patch_trailer_get(msg, "Model", buf, 4), TEND_EINVAL);
	TT_CHECK_RC(patch_trailer_get("no trailers", "Model", buf, sizeof buf), TEND_ENOTFOUND);

	/* Bad trailers are refused before anything is written. */
	char dir[256];
	patch_repo *r = new_repo(dir, sizeof dir);
	TT_REQUIRE(r);
	git_oid c;
	const patch_trailer bad_key[] = {{"Bad Key", "x"}};
	const patch_trailer bad_val[] = {{"Model", "a\nb"}};
	TT_CHECK_RC(patch_apply_to_branch(&c, r, "main", DIFF_LR, strlen(DIFF_LR), "p/1",
					  "m", bad_key, 1), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "trailer key \"Bad Key\": only [A-Za-z0-9-]");
	TT_CHECK_RC(patch_apply_to_branch(&c, r, "main", DIFF_LR, strlen(DIFF_LR), "p/1",
					  "m", bad_val, 1), TEND_EINVAL);
	TT_CHECK_RC(patch_apply_to_branch(&c, r, "main", DIFF_LR, strlen(DIFF_LR), "p/1",
					  "m\n---\nx", PROPOSAL, 5), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "would not read the trailers back");
	TT_CHECK_RC(patch_apply_to_branch(&c, r, "main", DIFF_LR, strlen(DIFF_LR), "p/1",
					  "  \n", PROPOSAL, 5), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "empty commit message");
	patch_repo_free(r);
}

static int rm_one(const char *p, const struct stat *st, int f, struct FTW *w)
{
	(void)st;
	(void)f;
	(void)w;
	return remove(p);
}

int main(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	TT_RUN(test_init_seeds_main);
	TT_RUN(test_init_from_source_lua);
	TT_RUN(test_good_diff_becomes_branch);
	TT_RUN(test_comment_lines_are_content);
	TT_RUN(test_diff_that_does_not_apply);
	TT_RUN(test_refuses_traversal_and_absolute);
	TT_RUN(test_refuses_modes_and_binary);
	TT_RUN(test_refuses_denied_and_outside);
	TT_RUN(test_refuses_malformed_and_big);
	TT_RUN(test_unterminated_buffers);
	TT_RUN(test_promote_fast_forward_base);
	TT_RUN(test_promote_after_main_moved);
	TT_RUN(test_promote_conflict_refused);
	TT_RUN(test_promote_updates_working_tree);
	TT_RUN(test_revert);
	TT_RUN(test_materialize_and_diff);
	TT_RUN(test_foreign_symlink_refused);
	TT_RUN(test_history_and_branches_kept);
	TT_RUN(test_trailers);
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return TT_DONE();
}
