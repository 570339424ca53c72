/*
 * patch_read.c - reading the scaffold repository without changing it:
 * files at a revision, a revision written out as a directory (an
 * evaluation run's scaffold), diffs for review, history walks for the
 * model's history view and for `tend audit verify`, and trailers.
 */
#include "patch_int.h"
#include "tend.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define TREE_DEPTH_CAP 64

static int tree_of(git_tree **out, patch_repo *r, const char *rev)
{
	git_commit *c = NULL;
	int rc = patch__commit_of(&c, r, rev ? rev : "(null)");
	if (!rc && git_commit_tree(out, c) < 0)
		rc = patch__git_fail(TEND_ERROR, rev);
	git_commit_free(c);
	return rc;
}

int patch_read_blob(char **out, size_t *len, patch_repo *r, const char *rev,
		    const char *path)
{
	git_tree *tree = NULL;
	git_tree_entry *e = NULL;
	git_blob *blob = NULL;
	*out = NULL;
	int rc = tree_of(&tree, r, rev);
	if (rc)
		goto done;
	if (!path || git_tree_entry_bypath(&e, tree, path) < 0) {
		rc = tend_error_set(TEND_ENOTFOUND, "%s: no file %s", rev,
				    path ? path : "(null)");
		goto done;
	}
	git_filemode_t m = git_tree_entry_filemode(e);
	if (m != GIT_FILEMODE_BLOB && m != GIT_FILEMODE_BLOB_EXECUTABLE) {
		rc = tend_error_set(TEND_EINVAL, "%s:%s is not a regular file", rev, path);
		goto done;
	}
	if (git_blob_lookup(&blob, r->git, git_tree_entry_id(e)) < 0) {
		rc = patch__git_fail(TEND_ERROR, path);
		goto done;
	}
	size_t n = (size_t)git_blob_rawsize(blob);
	if (!(*out = malloc(n + 1))) {
		rc = tend_error_set(TEND_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(*out, git_blob_rawcontent(blob), n);
	(*out)[n] = '\0';
	if (len)
		*len = n;
done:
	git_blob_free(blob);
	git_tree_entry_free(e);
	git_tree_free(tree);
	return rc;
}

/* --- materialize ----------------------------------------------------------- */

static bool safe_name(const char *n)
{
	return *n && strcmp(n, ".") && strcmp(n, "..") && !strchr(n, '/') &&
	       strcasecmp(n, ".git") != 0;
}

static int write_blob(patch_repo *r, const git_tree_entry *e, const char *path)
{
	git_blob *blob = NULL;
	if (git_blob_lookup(&blob, r->git, git_tree_entry_id(e)) < 0)
		return patch__git_fail(TEND_ERROR, path);
	unsigned mode = git_tree_entry_filemode(e) == GIT_FILEMODE_BLOB_EXECUTABLE
			? 0755 : 0644;
	int rc = patch__write_file(path, git_blob_rawcontent(blob),
				   (size_t)git_blob_rawsize(blob), mode);
	git_blob_free(blob);
	return rc;
}

static int write_tree(patch_repo *r, const git_tree *tree, const char *dir,
		      int depth);

static int write_entry(patch_repo *r, const git_tree_entry *e, const char *dir,
		       int depth)
{
	char path[PATH_MAX];
	const char *name = git_tree_entry_name(e);
	if (!safe_name(name))
		return tend_error_set(TEND_EINVAL, "%s: unsafe entry name \"%s\"", dir, name);
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return tend_error_set(TEND_EINVAL, "%s/%s: path too long", dir, name);
	switch (git_tree_entry_filemode(e)) {
	case GIT_FILEMODE_BLOB:
	case GIT_FILEMODE_BLOB_EXECUTABLE:
		return write_blob(r, e, path);
	case GIT_FILEMODE_TREE: {
		git_tree *sub = NULL;
		if (mkdir(path, 0755) < 0)
			return tend_error_os("mkdir %s", path);
		if (git_tree_lookup(&sub, r->git, git_tree_entry_id(e)) < 0)
			return patch__git_fail(TEND_ERROR, path);
		int rc = write_tree(r, sub, path, depth + 1);
		git_tree_free(sub);
		return rc;
	}
	case GIT_FILEMODE_LINK:
		return tend_error_set(TEND_EINVAL, "%s: a symlink (regular files only)", path);
	default:
		return tend_error_set(TEND_EINVAL, "%s: a submodule or unknown entry (regular files only)", path);
	}
}

static int write_tree(patch_repo *r, const git_tree *tree, const char *dir,
		      int depth)
{
	if (depth > TREE_DEPTH_CAP)
		return tend_error_set(TEND_EINVAL, "%s: tree deeper than %d", dir, TREE_DEPTH_CAP);
	int rc = 0;
	for (size_t i = 0; !rc && i < git_tree_entrycount(tree); i++)
		rc = write_entry(r, git_tree_entry_byindex(tree, i), dir, depth);
	return rc;
}

/* out_dir must be absent (made here) or an empty directory. */
static int prepare_dir(const char *dir, bool *existed)
{
	DIR *d = opendir(dir);
	*existed = d != NULL;
	if (!d)
		return errno == ENOENT ? patch__mkdirs(dir, strlen(dir))
				       : tend_error_os("%s", dir);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n ? tend_error_set(TEND_EEXISTS, "%s exists and is not empty", dir) : 0;
}

int patch_materialize(patch_repo *r, const char *rev, const char *out_dir)
{
	git_tree *tree = NULL;
	bool existed = false;
	int rc = tree_of(&tree, r, rev);
	if (!rc)
		rc = prepare_dir(out_dir, &existed);
	if (rc)
		goto done;
	rc = write_tree(r, tree, out_dir, 0);
	if (rc) /* no half-written scaffold for a run to pick up */
		patch__rm_rf(out_dir, existed);
done:
	git_tree_free(tree);
	return rc;
}

/* --- diff ------------------------------------------------------------------- */

/* from_rev NULL: the first parent of to (NULL tree for the root). */
static int from_tree(git_tree **out, patch_repo *r, const char *from_rev,
		     const char *to_rev)
{
	git_commit *to = NULL, *parent = NULL;
	*out = NULL;
	if (from_rev)
		return tree_of(out, r, from_rev);
	int rc = patch__commit_of(&to, r, to_rev);
	if (!rc && git_commit_parentcount(to) > 0 &&
	    (git_commit_parent(&parent, to, 0) < 0 || git_commit_tree(out, parent) < 0))
		rc = patch__git_fail(TEND_ERROR, to_rev);
	git_commit_free(parent);
	git_commit_free(to);
	return rc;
}

int patch_diff_text(char **out, patch_repo *r, const char *from_rev,
		    const char *to_rev)
{
	git_tree *a = NULL, *b = NULL;
	git_diff *d = NULL;
	git_buf buf = GIT_BUF_INIT;
	*out = NULL;
	int rc = tree_of(&b, r, to_rev);
	if (!rc)
		rc = from_tree(&a, r, from_rev, to_rev);
	if (!rc && (git_diff_tree_to_tree(&d, r->git, a, b, NULL) < 0 ||
		    git_diff_find_similar(d, NULL) < 0 ||
		    git_diff_to_buf(&buf, d, GIT_DIFF_FORMAT_PATCH) < 0))
		rc = patch__git_fail(TEND_ERROR, "diff");
	if (!rc && !(*out = strndup(buf.ptr ? buf.ptr : "", buf.size)))
		rc = tend_error_set(TEND_ENOMEM, "out of memory");
	git_buf_dispose(&buf);
	git_diff_free(d);
	git_tree_free(a);
	git_tree_free(b);
	return rc;
}

/* --- history ---------------------------------------------------------------- */

/* Calls cb with c described as a patch_commit. */
static int report(git_commit *c, patch_commit_cb cb, void *ud)
{
	git_message_trailer_array arr = {0};
	const char *message = git_commit_message(c);
	size_t np = git_commit_parentcount(c);
	git_oid *parents = malloc((np + 1) * sizeof *parents);
	char *text = NULL;
	size_t tlen = 0;
	patch_trailer *tr = NULL;
	FILE *f = NULL;
	int rc = parents && git_message_trailers(&arr, message ? message : "") == 0
		 ? 0 : tend_error_set(TEND_ENOMEM, "out of memory");
	if (!rc && (!(tr = malloc((arr.count + 1) * sizeof *tr)) ||
		    !(f = open_memstream(&text, &tlen))))
		rc = tend_error_set(TEND_ENOMEM, "out of memory");
	if (rc)
		goto done;
	for (size_t i = 0; i < np; i++)
		git_oid_cpy(&parents[i], git_commit_parent_id(c, (unsigned)i));
	for (size_t i = 0; i < arr.count; i++) {
		tr[i] = (patch_trailer){arr.trailers[i].key, arr.trailers[i].value};
		fprintf(f, "%s: %s\n", tr[i].key, tr[i].value);
	}
	rc = fclose(f) ? tend_error_set(TEND_ENOMEM, "out of memory") : 0;
	f = NULL;
	if (rc)
		goto done;
	const char *summary = git_commit_summary(c);
	patch_commit pc = {git_commit_id(c), parents, np, summary ? summary : "",
			   message ? message : "", text, tr, arr.count,
			   (int64_t)git_commit_time(c)};
	rc = cb(&pc, ud);
done:
	if (f)
		fclose(f);
	free(text);
	free(tr);
	free(parents);
	git_message_trailer_array_free(&arr);
	return rc;
}

static int walk(patch_repo *r, const char *rev, int max, bool first_parent,
		patch_commit_cb cb, void *ud)
{
	git_revwalk *w = NULL;
	git_commit *start = NULL;
	git_oid id;
	int rc = patch__commit_of(&start, r, rev);
	if (rc)
		return rc;
	if (git_revwalk_new(&w, r->git) < 0 ||
	    git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME) < 0 ||
	    (first_parent && git_revwalk_simplify_first_parent(w) < 0) ||
	    git_revwalk_push(w, git_commit_id(start)) < 0) {
		rc = patch__git_fail(TEND_ERROR, rev);
		goto done;
	}
	for (int count = 0; !rc && (max <= 0 || count < max); count++) {
		git_commit *c = NULL;
		int grc = git_revwalk_next(&id, w);
		if (grc == GIT_ITEROVER)
			break;
		if (grc < 0 || git_commit_lookup(&c, r->git, &id) < 0) {
			rc = patch__git_fail(TEND_ERROR, rev);
			break;
		}
		rc = report(c, cb, ud);
		git_commit_free(c);
	}
done:
	git_revwalk_free(w);
	git_commit_free(start);
	return rc;
}

int patch_log(patch_repo *r, const char *rev, int max, patch_commit_cb cb,
	      void *ud)
{
	return walk(r, rev ? rev : "main", max, false, cb, ud);
}

int patch_main_history(patch_repo *r, patch_commit_cb cb, void *ud)
{
	return walk(r, PATCH__MAIN_REF, 0, true, cb, ud);
}

/* --- trailers ---------------------------------------------------------------- */

int patch_trailer_get(const char *message, const char *key, char *buf,
		      size_t cap)
{
	git_message_trailer_array arr = {0};
	const char *value = NULL;
	if (!message || !key || git_message_trailers(&arr, message) < 0)
		return tend_error_set(TEND_EINVAL, "cannot read trailers");
	for (size_t i = 0; i < arr.count; i++)
		if (strcasecmp(arr.trailers[i].key, key) == 0)
			value = arr.trailers[i].value;
	int rc = 0;
	if (!value)
		rc = tend_error_set(TEND_ENOTFOUND, "no %s trailer", key);
	else if (strlen(value) >= cap)
		rc = tend_error_set(TEND_EINVAL, "%s trailer longer than %zu bytes", key,
				    cap ? cap - 1 : 0);
	else
		memcpy(buf, value, strlen(value) + 1);
	git_message_trailer_array_free(&arr);
	return rc;
}
