/*
 * patch_merge.c - the only writers of main after the initial import:
 * promotion (a candidate that passed the gates becomes a merge commit on
 * main) and revert (`tend rollback`). Both compute the new tree in memory,
 * commit with main's tip as the expected first parent, then force the
 * working tree of WS/scaffold to match.
 */
#include "patch_int.h"
#include "tend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Refuses an index with conflicts, naming their paths. */
static int check_conflicts(git_index *index, const char *what)
{
	git_index_conflict_iterator *it = NULL;
	const git_index_entry *anc, *ours, *theirs;
	char list[1024] = "";
	size_t used = 0, count = 0;
	if (!git_index_has_conflicts(index))
		return 0;
	if (git_index_conflict_iterator_new(&it, index) < 0)
		return patch__git_fail(TEND_ERROR, what);
	while (git_index_conflict_next(&anc, &ours, &theirs, it) == 0) {
		const git_index_entry *e = ours ? ours : theirs ? theirs : anc;
		if (used < sizeof list)
			used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
						 count ? ", " : "", e->path);
		count++;
	}
	git_index_conflict_iterator_free(it);
	return tend_error_set(TEND_EINVAL, "%s: conflict in %zu file%s: %s", what,
			      count, count == 1 ? "" : "s", list);
}

/* Commits tree_id on main (expecting main's tip to be parents[0]), then
 * forces the working tree to it. */
static int commit_on_main(git_oid *out, patch_repo *r, const char *msg,
			  const git_oid *tree_id, const git_commit **parents,
			  size_t np)
{
	git_tree *tree = NULL;
	if (git_tree_lookup(&tree, r->git, tree_id) < 0)
		return patch__git_fail(TEND_ERROR, "tree");
	int rc = patch__commit(out, r, PATCH__MAIN_REF, msg, tree, parents, np);
	git_tree_free(tree);
	if (rc)
		return rc;
	rc = patch__checkout_main(r);
	if (rc) {
		char id[GIT_OID_HEXSZ + 1];
		git_oid_tostr(id, sizeof id, out);
		return tend_error_wrap(rc, "main is now %s but the working tree was not updated", id);
	}
	return 0;
}

static int candidate_of(git_commit **out, patch_repo *r, const char *branch)
{
	git_reference *ref = NULL;
	*out = NULL;
	if (!branch || git_branch_lookup(&ref, r->git, branch, GIT_BRANCH_LOCAL) < 0)
		return tend_error_set(TEND_ENOTFOUND, "no branch %s",
				      branch ? branch : "(null)");
	int rc = git_reference_peel((git_object **)out, ref, GIT_OBJECT_COMMIT) < 0
		 ? patch__git_fail(TEND_ERROR, branch) : 0;
	git_reference_free(ref);
	return rc;
}

/* The tree main gets from cand: cand's own when main has not moved since
 * its base, else a 3-way merge. */
static int merged_tree(git_oid *tree_id, patch_repo *r, git_commit *main,
		       git_commit *cand, const char *branch)
{
	git_oid base;
	git_index *index = NULL;
	int grc = git_merge_base(&base, r->git, git_commit_id(main), git_commit_id(cand));
	if (grc == GIT_ENOTFOUND)
		return tend_error_set(TEND_EINVAL, "%s shares no history with main", branch);
	if (grc < 0)
		return patch__git_fail(TEND_ERROR, branch);
	if (git_oid_equal(&base, git_commit_id(cand)))
		return tend_error_set(TEND_EEXISTS, "%s is already merged into main", branch);
	if (git_oid_equal(&base, git_commit_id(main))) {
		git_oid_cpy(tree_id, git_commit_tree_id(cand));
		return 0;
	}
	int rc = 0;
	if (git_merge_commits(&index, r->git, main, cand, NULL) < 0)
		rc = patch__git_fail(TEND_ERROR, branch);
	if (!rc)
		rc = check_conflicts(index, branch);
	if (!rc && git_index_write_tree_to(tree_id, index, r->git) < 0)
		rc = patch__git_fail(TEND_ERROR, branch);
	git_index_free(index);
	return rc;
}

int patch_promote(git_oid *out_commit, patch_repo *r,
		  const char *candidate_branch, const char *message,
		  const patch_trailer *trailers, size_t n)
{
	git_commit *main = NULL, *cand = NULL;
	git_oid tree_id;
	char *msg = NULL;
	int rc = patch__message(&msg, message, trailers, n, NULL);
	if (!rc)
		rc = candidate_of(&cand, r, candidate_branch);
	if (!rc)
		rc = patch__commit_of(&main, r, PATCH__MAIN_REF);
	if (!rc)
		rc = merged_tree(&tree_id, r, main, cand, candidate_branch);
	if (!rc) {
		const git_commit *parents[] = {main, cand};
		rc = commit_on_main(out_commit, r, msg, &tree_id, parents, 2);
	}
	git_commit_free(cand);
	git_commit_free(main);
	free(msg);
	return rc;
}

/* The commit to revert must be in main's history and not the root. */
static int revertable(patch_repo *r, git_commit *c, git_commit *main,
		      const char *rev)
{
	unsigned np = git_commit_parentcount(c);
	if (np == 0)
		return tend_error_set(TEND_EINVAL, "%s is the initial import: nothing to revert to", rev);
	if (np > 2)
		return tend_error_set(TEND_EINVAL, "%s has %u parents", rev, np);
	if (git_oid_equal(git_commit_id(c), git_commit_id(main)))
		return 0;
	int d = git_graph_descendant_of(r->git, git_commit_id(main), git_commit_id(c));
	if (d < 0)
		return patch__git_fail(TEND_ERROR, rev);
	return d ? 0 : tend_error_set(TEND_EINVAL, "%s is not in main's history", rev);
}

static int reverted_tree(git_oid *tree_id, patch_repo *r, git_commit *c,
			 git_commit *main, const char *rev)
{
	git_index *index = NULL;
	/* A promotion is a merge: undo what it brought relative to main's
	 * previous tip, its first parent. */
	unsigned mainline = git_commit_parentcount(c) == 2 ? 1 : 0;
	int rc = 0;
	if (git_revert_commit(&index, r->git, c, main, mainline, NULL) < 0)
		rc = patch__git_fail(TEND_ERROR, rev);
	if (!rc)
		rc = check_conflicts(index, rev);
	if (!rc && git_index_write_tree_to(tree_id, index, r->git) < 0)
		rc = patch__git_fail(TEND_ERROR, rev);
	if (!rc && git_oid_equal(tree_id, git_commit_tree_id(main)))
		rc = tend_error_set(TEND_EINVAL, "reverting %s changes nothing (already reverted?)", rev);
	git_index_free(index);
	return rc;
}

int patch_revert(git_oid *out_commit, patch_repo *r, const char *commit,
		 const char *message, const patch_trailer *trailers, size_t n)
{
	git_commit *c = NULL, *main = NULL;
	git_oid tree_id;
	char *msg = NULL, id[GIT_OID_HEXSZ + 1];
	int rc = patch__commit_of(&c, r, commit ? commit : "(null)");
	if (!rc)
		rc = patch__commit_of(&main, r, PATCH__MAIN_REF);
	if (!rc)
		rc = revertable(r, c, main, commit);
	if (!rc) {
		git_oid_tostr(id, sizeof id, git_commit_id(c));
		const patch_trailer reverts = {"Reverts", id};
		rc = patch__message(&msg, message, trailers, n, &reverts);
	}
	if (!rc)
		rc = reverted_tree(&tree_id, r, c, main, commit);
	if (!rc) {
		const git_commit *parents[] = {main};
		rc = commit_on_main(out_commit, r, msg, &tree_id, parents, 1);
	}
	git_commit_free(main);
	git_commit_free(c);
	free(msg);
	return rc;
}
