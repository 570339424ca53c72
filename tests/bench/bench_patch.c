/*
 * bench_patch.c - what a proposal and a promotion cost on a real scaffold
 * repository on disk: validate + apply + commit + branch of a 10-line
 * change to a 200-line Lua file, and a promotion (merge commit + working
 * tree update), each 200 times, next to a bare git_commit_create of an
 * unchanged tree measured in the same run (the floor: one commit object
 * written and fsynced). Target: <= 50 ms per operation.
 */
#include "patch.h"
#include "tend.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define OPS 200
#define LINES 200
#define FIRST 96 /* the 10 changed lines start here (1-based) */
#define TARGET_MS 50.0

static const char *const ALLOWED[] = {"*.lua", "prompts/*.md", "monitors/*.lua"};
static const char *const DENIED[] = {"gates*", "tend.yaml", ".git"};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void line_of(char *buf, size_t cap, int line, int value)
{
	snprintf(buf, cap, "M.knob_%03d = %d -- tuned by policy\n", line, value);
}

/* A 3-line-context hunk turning lines FIRST..FIRST+9 from old to new. */
static size_t make_diff(char *out, size_t cap, const int *old, const int *nw)
{
	char l[96];
	size_t used = (size_t)snprintf(out, cap,
				       "diff --git a/policies.lua b/policies.lua\n"
				       "--- a/policies.lua\n+++ b/policies.lua\n"
				       "@@ -%d,16 +%d,16 @@\n", FIRST - 3, FIRST - 3);
	for (int i = FIRST - 3; i < FIRST; i++) {
		line_of(l, sizeof l, i, old[i]);
		used += (size_t)snprintf(out + used, cap - used, " %s", l);
	}
	for (int i = FIRST; i < FIRST + 10; i++) {
		line_of(l, sizeof l, i, old[i]);
		used += (size_t)snprintf(out + used, cap - used, "-%s", l);
	}
	for (int i = FIRST; i < FIRST + 10; i++) {
		line_of(l, sizeof l, i, nw[i]);
		used += (size_t)snprintf(out + used, cap - used, "+%s", l);
	}
	for (int i = FIRST + 10; i < FIRST + 13; i++) {
		line_of(l, sizeof l, i, old[i]);
		used += (size_t)snprintf(out + used, cap - used, " %s", l);
	}
	return used;
}

static int make_seed(const char *dir, const int *vals)
{
	char path[512], l[96];
	mkdir(dir, 0755);
	snprintf(path, sizeof path, "%s/policies.lua", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	for (int i = 1; i <= LINES; i++) {
		line_of(l, sizeof l, i, vals[i]);
		fputs(l, f);
	}
	fclose(f);
	snprintf(path, sizeof path, "%s/scaffold.lua", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs("return require('policies')\n", f);
	fclose(f);
	return 0;
}

static const patch_trailer PROPOSAL[] = {
	{"Incident", "1"}, {"Proposer", "builtin"}, {"Model", "none"},
	{"Prompt-SHA256", "0000000000000000000000000000000000000000000000000000000000000000"},
	{"Response-SHA256", "1111111111111111111111111111111111111111111111111111111111111111"},
};
static const patch_trailer PROMOTION[] = {
	{"Evaluation", "7"}, {"Promoted-By", "gates"}, {"Val-Loss", "2.31"},
};

/* The floor: a commit of main's unchanged tree, no ref moved. */
static double bench_bare(patch_repo *r)
{
	git_repository *g = patch_repo_git(r);
	git_commit *main = NULL;
	git_tree *tree = NULL;
	git_signature *sig = NULL;
	git_oid id, mid;
	git_reference_name_to_id(&mid, g, "refs/heads/main");
	git_commit_lookup(&main, g, &mid);
	git_commit_tree(&tree, main);
	git_signature_now(&sig, "bench", "bench@localhost");
	double t0 = now_ms();
	for (int i = 0; i < OPS; i++) {
		char msg[64];
		snprintf(msg, sizeof msg, "bare %d\n\nBench: %d\n", i, i);
		const git_commit *parents[] = {main};
		if (git_commit_create(&id, g, NULL, sig, sig, NULL, msg, tree, 1, parents) < 0)
			return -1;
	}
	double ms = (now_ms() - t0) / OPS;
	git_signature_free(sig);
	git_tree_free(tree);
	git_commit_free(main);
	return ms;
}

/* Proposals all against the same base, as several incidents would make. */
static double bench_propose(patch_repo *r, const int *base)
{
	static char diff[8192];
	int nw[LINES + 1];
	double total = 0;
	for (int i = 0; i < OPS; i++) {
		char branch[64];
		memcpy(nw, base, sizeof nw);
		for (int k = FIRST; k < FIRST + 10; k++)
			nw[k] = 1000 + i;
		size_t len = make_diff(diff, sizeof diff, base, nw);
		snprintf(branch, sizeof branch, "proposals/%d-1", i);
		git_oid c;
		double t0 = now_ms();
		if (patch_validate_paths(diff, len, ALLOWED, 3, DENIED, 3) ||
		    patch_apply_to_branch(&c, r, "main", diff, len, branch,
					  "bench proposal", PROPOSAL, 5))
			return -1;
		total += now_ms() - t0;
	}
	return total / OPS;
}

/* Each candidate made on the current main (untimed), then promoted. */
static double bench_promote(patch_repo *r, int *cur)
{
	static char diff[8192];
	int nw[LINES + 1];
	double total = 0;
	for (int i = 0; i < OPS; i++) {
		char branch[64];
		memcpy(nw, cur, sizeof nw);
		for (int k = FIRST; k < FIRST + 10; k++)
			nw[k] = 5000 + i;
		size_t len = make_diff(diff, sizeof diff, cur, nw);
		snprintf(branch, sizeof branch, "proposals/p%d-1", i);
		git_oid c, m;
		if (patch_apply_to_branch(&c, r, "main", diff, len, branch, "bench candidate",
					  PROPOSAL, 5))
			return -1;
		double t0 = now_ms();
		if (patch_promote(&m, r, branch, "bench promotion", PROMOTION, 3))
			return -1;
		total += now_ms() - t0;
		memcpy(cur, nw, sizeof nw);
	}
	return total / OPS;
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
	char tmp[] = "/tmp/tend-test-XXXXXX", seed[128], ws[128];
	int vals[LINES + 1];
	patch_repo *r = NULL;
	if (!mkdtemp(tmp))
		return 1;
	for (int i = 0; i <= LINES; i++)
		vals[i] = i;
	snprintf(seed, sizeof seed, "%s/seed", tmp);
	snprintf(ws, sizeof ws, "%s/scaffold", tmp);
	int rc = make_seed(seed, vals) ? TEND_EIO : patch_repo_init(&r, ws, seed, NULL);
	double bare = rc ? -1 : bench_bare(r);
	double prop = bare < 0 ? -1 : bench_propose(r, vals);
	double prom = prop < 0 ? -1 : bench_promote(r, vals);
	if (prom < 0) {
		fprintf(stderr, "bench_patch: %s\n", tend_error_last());
		rc = 1;
	} else {
		printf("bench_patch: %d ops each, repo on disk under /tmp, fsync on\n", OPS);
		printf("  bare git_commit_create, unchanged tree  %7.3f ms/op  (1.0x)\n", bare);
		printf("  propose: validate+apply+commit+branch   %7.3f ms/op  (%.1fx bare)  %s\n",
		       prop, prop / bare, prop <= TARGET_MS ? "<= 50 ms ok" : "OVER 50 ms");
		printf("  promote: merge commit+working tree      %7.3f ms/op  (%.1fx bare)  %s\n",
		       prom, prom / bare, prom <= TARGET_MS ? "<= 50 ms ok" : "OVER 50 ms");
	}
	patch_repo_free(r);
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc ? 1 : 0;
}
