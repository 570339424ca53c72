/*
 * patch_apply.c - turns a proposed diff into a commit on its own branch,
 * entirely in memory: the diff is applied to the base commit's tree
 * (git_apply_to_tree), never to the working tree, so proposals cannot
 * disturb the live scaffold or each other.
 */
#include "patch_int.h"
#include "tend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where git_apply_to_tree was when it failed, for the message. */
typedef struct apply_where {
	const char *path;
	size_t hunk;
	char header[96];
} apply_where;

static int on_delta(const git_diff_delta *d, void *payload)
{
	apply_where *w = payload;
	w->path = d->new_file.path ? d->new_file.path : d->old_file.path;
	w->hunk = 0;
	w->header[0] = '\0';
	return 0;
}

static int on_hunk(const git_diff_hunk *h, void *payload)
{
	apply_where *w = payload;
	size_t n = h->header_len;
	while (n && (h->header[n - 1] == '\n' || h->header[n - 1] == ' '))
		n--;
	w->hunk++;
	snprintf(w->header, sizeof w->header, "%.*s", (int)n, h->header);
	return 0;
}

static int check_branch(patch_repo *r, const char *branch)
{
	git_reference *ref = NULL;
	int valid = 0;
	if (!branch || git_branch_name_is_valid(&valid, branch) < 0 || !valid)
		return tend_error_set(TEND_EINVAL, "\"%s\" is not a valid branch name",
				      branch ? branch : "(null)");
	if (git_branch_lookup(&ref, r->git, branch, GIT_BRANCH_LOCAL) == 0) {
		git_reference_free(ref);
		return tend_error_set(TEND_EEXISTS, "branch %s already exists", branch);
	}
	return 0;
}

/* libgit2 reads only git-style diffs: give plain ---/+++ sections the
 * "diff --git" header git would have written, and drop any prose before
 * the first file. */
static int normalize(char **out, size_t *olen, const char *diff,
		     const patch__scan *sc)
{
	FILE *f = open_memstream(out, olen);
	if (!f)
		return tend_error_set(TEND_ENOMEM, "out of memory");
	for (size_t i = 0; i < sc->nfiles; i++) {
		const patch__file *p = &sc->files[i];
		if (!p->git) {
			const char *name = p->new_path ? p->new_path : p->old_path;
			fprintf(f, "diff --git a/%s b/%s\n", name, name);
			if (!p->old_path)
				fputs("new file mode 100644\n", f);
			if (!p->new_path)
				fputs("deleted file mode 100644\n", f);
		}
		fwrite(diff + p->off, 1, p->end - p->off, f);
	}
	const patch__file *last = &sc->files[sc->nfiles - 1];
	if (last->end > last->off && diff[last->end - 1] != '\n')
		fputc('\n', f);
	if (fclose(f) != 0) {
		free(*out);
		*out = NULL;
		return tend_error_set(TEND_ENOMEM, "out of memory");
	}
	return 0;
}

/* libgit2 must have read the same files as our scanner did. */
static int cross_check(git_diff *gd, const patch__scan *sc)
{
	size_t nd = git_diff_num_deltas(gd);
	if (nd != sc->nfiles)
		return tend_error_set(TEND_EINVAL,
				      "libgit2 read %zu files in the diff where tend read %zu",
				      nd, sc->nfiles);
	for (size_t i = 0; i < nd; i++) {
		const git_diff_delta *d = git_diff_get_delta(gd, i);
		const patch__file *f = &sc->files[i];
		const char *old = f->old_path ? f->old_path : f->new_path;
		const char *nw = f->new_path ? f->new_path : f->old_path;
		if (!d->old_file.path || !d->new_file.path ||
		    strcmp(d->old_file.path, old) || strcmp(d->new_file.path, nw))
			return tend_error_set(TEND_EINVAL,
					      "libgit2 read file %zu as \"%s\" where tend read \"%s\"",
					      i + 1, d->new_file.path ? d->new_file.path : "?", nw);
		if (d->flags & GIT_DIFF_FLAG_BINARY)
			return tend_error_set(TEND_EINVAL, "\"%s\": binary patch not allowed", nw);
		if (d->status != GIT_DELTA_DELETED && d->new_file.mode != 0 &&
		    d->new_file.mode != GIT_FILEMODE_BLOB)
			return tend_error_set(TEND_EINVAL, "\"%s\": mode %o not allowed (only 100644)",
					      nw, d->new_file.mode);
	}
	return 0;
}

static bool in_tree(git_tree *tree, const char *path)
{
	git_tree_entry *e = NULL;
	bool found = git_tree_entry_bypath(&e, tree, path) == 0;
	git_tree_entry_free(e);
	return found;
}

/* Matches the next n bytes of the blob at *pos. */
static bool eat(const char *data, size_t size, size_t *pos, const char *p, size_t n)
{
	if (n > size - *pos || memcmp(data + *pos, p, n) != 0)
		return false;
	*pos += n;
	return true;
}

/* Compares the old side of patch p (context and removed lines, in order)
 * with the whole of blob. A line's '\n' is owed until the next line shows
 * that no "\ No newline at end of file" marker took it away. */
static bool old_side_is(git_patch *p, git_blob *blob)
{
	const char *data = git_blob_rawcontent(blob);
	size_t size = (size_t)git_blob_rawsize(blob), pos = 0;
	bool owe_nl = false;
	for (size_t h = 0; h < git_patch_num_hunks(p); h++) {
		const git_diff_hunk *hunk = NULL;
		git_patch_get_hunk(&hunk, NULL, p, h);
		if (hunk->new_lines != 0 || (h == 0 && hunk->old_start > 1))
			return false;
		int nl = git_patch_num_lines_in_hunk(p, h);
		for (int i = 0; i < nl; i++) {
			const git_diff_line *l = NULL;
			if (git_patch_get_line_in_hunk(&l, p, h, (size_t)i) < 0)
				return false;
			if (l->origin == GIT_DIFF_LINE_DEL_EOFNL ||
			    l->origin == GIT_DIFF_LINE_CONTEXT_EOFNL)
				owe_nl = false;
			if (l->origin != GIT_DIFF_LINE_DELETION &&
			    l->origin != GIT_DIFF_LINE_CONTEXT)
				continue;
			if (owe_nl && !eat(data, size, &pos, "\n", 1))
				return false;
			size_t n = l->content_len;
			owe_nl = n && l->content[n - 1] == '\n';
			if (!eat(data, size, &pos, l->content, n - owe_nl))
				return false;
		}
	}
	if (owe_nl && !eat(data, size, &pos, "\n", 1))
		return false;
	return pos == size;
}

/* libgit2 applies "new file" over an existing file, and drops a deleted
 * file without comparing its content: a proposal could erase what it
 * never saw. Refuse both. */
static int check_targets(git_repository *repo, git_tree *base, git_diff *gd)
{
	int rc = 0;
	for (size_t i = 0; !rc && i < git_diff_num_deltas(gd); i++) {
		const git_diff_delta *d = git_diff_get_delta(gd, i);
		const char *path = d->new_file.path;
		if ((d->status == GIT_DELTA_ADDED || d->status == GIT_DELTA_RENAMED ||
		     d->status == GIT_DELTA_COPIED) && in_tree(base, path))
			rc = tend_error_set(TEND_EINVAL, "\"%s\" already exists in the base", path);
		if (rc || d->status != GIT_DELTA_DELETED)
			continue;
		git_patch *p = NULL;
		git_tree_entry *e = NULL;
		git_blob *blob = NULL;
		if (git_tree_entry_bypath(&e, base, d->old_file.path) < 0 ||
		    git_blob_lookup(&blob, repo, git_tree_entry_id(e)) < 0)
			rc = tend_error_set(TEND_EINVAL, "deleting \"%s\": no such file in the base",
					    d->old_file.path);
		else if (git_patch_from_diff(&p, gd, i) < 0 || !old_side_is(p, blob))
			rc = tend_error_set(TEND_EINVAL,
					    "deleting \"%s\": the diff's old content is not the file's",
					    d->old_file.path);
		git_patch_free(p);
		git_blob_free(blob);
		git_tree_entry_free(e);
	}
	return rc;
}

/* Every file the diff wrote must be a plain 100644 blob in the result. */
static int check_result(git_index *index, git_diff *gd)
{
	for (size_t i = 0; i < git_diff_num_deltas(gd); i++) {
		const git_diff_delta *d = git_diff_get_delta(gd, i);
		if (d->status == GIT_DELTA_DELETED)
			continue;
		const git_index_entry *e = git_index_get_bypath(index, d->new_file.path, 0);
		if (e && e->mode != GIT_FILEMODE_BLOB)
			return tend_error_set(TEND_EINVAL, "\"%s\": mode %o not allowed (only 100644)",
					      e->path, e->mode);
	}
	return 0;
}

static int apply(git_oid *tree_id, patch_repo *r, git_tree *base_tree,
		 git_diff *gd, const char *base)
{
	git_index *index = NULL;
	git_apply_options o;
	apply_where w = {0};
	git_apply_options_init(&o, GIT_APPLY_OPTIONS_VERSION);
	o.delta_cb = on_delta;
	o.hunk_cb = on_hunk;
	o.payload = &w;
	int rc = check_targets(r->git, base_tree, gd);
	if (rc)
		return tend_error_wrap(rc, "the diff does not apply to %s", base);
	if (git_apply_to_tree(&index, r->git, base_tree, gd, &o) < 0) {
		const git_error *e = git_error_last();
		char hunk[128] = "";
		if (w.hunk)
			snprintf(hunk, sizeof hunk, ", hunk %zu: %s", w.hunk, w.header);
		rc = tend_error_set(TEND_EINVAL,
				    "the diff does not apply to %s: %s (file \"%s\"%s)",
				    base, e && e->message ? e->message : "unknown error",
				    w.path ? w.path : "?", hunk);
		goto done;
	}
	rc = check_result(index, gd);
	if (!rc && git_index_write_tree_to(tree_id, index, r->git) < 0)
		rc = patch__git_fail(TEND_ERROR, "writing the proposal's tree");
	if (!rc && git_oid_equal(tree_id, git_tree_id(base_tree)))
		rc = tend_error_set(TEND_EINVAL, "the diff changes nothing in %s", base);
done:
	git_index_free(index);
	return rc;
}

/* Reads diff into a git_diff once our scanner has passed it. */
static int parse(git_diff **gd, const char *diff, size_t len)
{
	patch__scan sc;
	char *norm = NULL;
	size_t nlen = 0;
	int rc = patch__scan_diff(&sc, diff, len, NULL, 0, NULL, 0, NULL);
	if (!rc)
		rc = normalize(&norm, &nlen, diff, &sc);
	if (!rc && git_diff_from_buffer(gd, norm, nlen) < 0)
		rc = patch__git_fail(TEND_EINVAL, "diff");
	if (!rc)
		rc = cross_check(*gd, &sc);
	free(norm);
	patch__scan_free(&sc);
	return rc;
}

int patch_apply_to_branch(git_oid *out_commit, patch_repo *r,
			  const char *base_commit_or_branch,
			  const char *diff, size_t len, const char *branch,
			  const char *message, const patch_trailer *trailers,
			  size_t n)
{
	const char *base = base_commit_or_branch ? base_commit_or_branch : "main";
	git_diff *gd = NULL;
	git_commit *basec = NULL, *commit = NULL;
	git_tree *base_tree = NULL, *tree = NULL;
	git_reference *ref = NULL;
	git_oid tree_id;
	char *msg = NULL;
	int rc = check_branch(r, branch);
	if (!rc)
		rc = patch__message(&msg, message, trailers, n, NULL);
	if (!rc)
		rc = parse(&gd, diff, len);
	if (!rc)
		rc = patch__commit_of(&basec, r, base);
	if (!rc && git_commit_tree(&base_tree, basec) < 0)
		rc = patch__git_fail(TEND_ERROR, base);
	if (!rc)
		rc = apply(&tree_id, r, base_tree, gd, base);
	if (!rc && git_tree_lookup(&tree, r->git, &tree_id) < 0)
		rc = patch__git_fail(TEND_ERROR, "tree");
	if (!rc)
		rc = patch__commit(out_commit, r, NULL, msg, tree,
				   (const git_commit **)&basec, 1);
	if (!rc && git_commit_lookup(&commit, r->git, out_commit) < 0)
		rc = patch__git_fail(TEND_ERROR, "commit");
	if (!rc) {
		int grc = git_branch_create(&ref, r->git, branch, commit, 0);
		if (grc < 0) /* someone made the branch since check_branch() */
			rc = patch__git_fail(grc == GIT_EEXISTS ? TEND_EEXISTS : TEND_ERROR,
					     branch);
	}
	git_reference_free(ref);
	git_commit_free(commit);
	git_tree_free(tree);
	git_tree_free(base_tree);
	git_commit_free(basec);
	git_diff_free(gd);
	free(msg);
	return rc;
}
