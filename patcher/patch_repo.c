/*
 * patch_repo.c - the scaffold repository object: creating it from a seed
 * directory, opening it, and the git helpers the other patch_*.c files
 * share (messages with trailers, commits, forcing the working tree to main).
 */
#include "patch_int.h"
#include "tend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int patch__lib_init(void)
{
	if (git_libgit2_init() < 0)
		return patch__git_fail(TEND_ERROR, "libgit2 init");
	/* The scaffold repository must behave the same whatever the user's
	 * ~/.gitconfig or /etc/gitconfig say (autocrlf, filters, identity):
	 * read only the repository's own config. And it is the audit trail,
	 * so objects and refs reach the disk before we report success. */
	static const int levels[] = {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG,
				     GIT_CONFIG_LEVEL_GLOBAL,
				     GIT_CONFIG_LEVEL_PROGRAMDATA};
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
		git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, levels[i], "");
	git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
	return 0;
}

int patch__git_fail(int code, const char *what)
{
	const git_error *e = git_error_last();
	return tend_error_set(code, "%s: %s", what,
			      e && e->message ? e->message : "unknown libgit2 error");
}

int patch__commit_of(git_commit **out, patch_repo *r, const char *rev)
{
	git_object *obj = NULL;
	*out = NULL;
	int rc = git_revparse_single(&obj, r->git, rev);
	if (rc == GIT_ENOTFOUND || rc == GIT_EAMBIGUOUS || rc == GIT_EINVALIDSPEC)
		return tend_error_set(TEND_ENOTFOUND, "revision \"%s\" not found", rev);
	if (rc < 0)
		return patch__git_fail(TEND_ERROR, rev);
	rc = git_object_peel((git_object **)out, obj, GIT_OBJECT_COMMIT);
	git_object_free(obj);
	if (rc < 0)
		return tend_error_set(TEND_EINVAL, "revision \"%s\" is not a commit", rev);
	return 0;
}

static int check_trailer(const patch_trailer *t)
{
	if (!t->key || !*t->key || !t->value || !*t->value)
		return tend_error_set(TEND_EINVAL, "trailer with an empty key or value");
	for (const char *k = t->key; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9') || *k == '-'))
			return tend_error_set(TEND_EINVAL,
					      "trailer key \"%s\": only [A-Za-z0-9-]", t->key);
	if (strpbrk(t->value, "\r\n"))
		return tend_error_set(TEND_EINVAL, "trailer %s: value spans lines", t->key);
	return 0;
}

/* Parses msg back and checks that git finds exactly the trailers we wrote
 * (a "---" line or odd spacing in the message could hide them). */
static int roundtrip(const char *msg, const patch_trailer *t, size_t n,
		     const patch_trailer *extra)
{
	git_message_trailer_array arr = {0};
	size_t want = n + (extra ? 1 : 0);
	int rc = git_message_trailers(&arr, msg) < 0 ? -1 : 0;
	if (!rc && arr.count != want)
		rc = -1;
	for (size_t i = 0; !rc && i < want; i++) {
		const patch_trailer *w = i < n ? &t[i] : extra;
		if (strcmp(arr.trailers[i].key, w->key) ||
		    strcmp(arr.trailers[i].value, w->value))
			rc = -1;
	}
	git_message_trailer_array_free(&arr);
	if (rc)
		return tend_error_set(TEND_EINVAL,
				      "git would not read the trailers back from this message (a line starting with \"---\", or a value with outer spaces?)");
	return 0;
}

int patch__message(char **out, const char *message,
		   const patch_trailer *trailers, size_t n,
		   const patch_trailer *extra)
{
	*out = NULL;
	size_t mlen = message ? strlen(message) : 0;
	while (mlen && strchr(" \t\r\n", message[mlen - 1]))
		mlen--;
	if (mlen == 0)
		return tend_error_set(TEND_EINVAL, "empty commit message");
	if (n + (extra ? 1 : 0) == 0)
		return tend_error_set(TEND_EINVAL, "a commit needs trailers");
	size_t cap = mlen + 3;
	for (size_t i = 0; i < n + 1; i++) {
		const patch_trailer *t = i < n ? &trailers[i] : extra;
		if (!t)
			continue;
		int rc = check_trailer(t);
		if (rc)
			return rc;
		cap += strlen(t->key) + strlen(t->value) + 3;
	}
	char *msg = malloc(cap);
	if (!msg)
		return tend_error_set(TEND_ENOMEM, "out of memory");
	size_t used = (size_t)snprintf(msg, cap, "%.*s\n\n", (int)mlen, message);
	for (size_t i = 0; i < n + 1; i++) {
		const patch_trailer *t = i < n ? &trailers[i] : extra;
		if (t)
			used += (size_t)snprintf(msg + used, cap - used, "%s: %s\n",
						 t->key, t->value);
	}
	int rc = roundtrip(msg, trailers, n, extra);
	if (rc)
		free(msg);
	else
		*out = msg;
	return rc;
}

int patch__commit(git_oid *out, patch_repo *r, const char *update_ref,
		  const char *message, const git_tree *tree,
		  const git_commit **parents, size_t nparents)
{
	git_signature *sig = NULL;
	if (git_signature_now(&sig, r->name, r->email) < 0)
		return patch__git_fail(TEND_EINVAL, "signature");
	int rc = git_commit_create(out, r->git, update_ref, sig, sig, NULL, message,
				   tree, nparents, parents);
	git_signature_free(sig);
	if (rc == GIT_EMODIFIED)
		return patch__git_fail(TEND_EBUSY, "main moved while committing");
	if (rc < 0)
		return patch__git_fail(TEND_ERROR, "commit");
	return 0;
}

/* HEAD must name main (someone may have checked out another branch). */
static int head_to_main(patch_repo *r)
{
	git_reference *head = NULL;
	bool on_main = git_reference_lookup(&head, r->git, "HEAD") == 0 &&
		       git_reference_type(head) == GIT_REFERENCE_SYMBOLIC &&
		       strcmp(git_reference_symbolic_target(head), PATCH__MAIN_REF) == 0;
	git_reference_free(head);
	if (!on_main && git_repository_set_head(r->git, PATCH__MAIN_REF) < 0)
		return patch__git_fail(TEND_ERROR, "pointing HEAD at main");
	return 0;
}

int patch__checkout_main(patch_repo *r)
{
	git_commit *main = NULL;
	git_tree *tree = NULL;
	git_index *index = NULL;
	git_checkout_options co;
	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	int rc = patch__commit_of(&main, r, PATCH__MAIN_REF);
	if (!rc)
		rc = head_to_main(r);
	if (rc)
		goto done;
	if (git_commit_tree(&tree, main) < 0 ||
	    git_repository_index(&index, r->git) < 0) {
		rc = patch__git_fail(TEND_ERROR, "checkout of main");
		goto done;
	}
	/* The index is what was checked out: files in it but not in main are
	 * removed. The scaffold directory is tend's, so local edits to
	 * tracked files are overwritten; untracked files stay. */
	co.checkout_strategy = GIT_CHECKOUT_FORCE;
	co.baseline_index = index;
	if (git_checkout_tree(r->git, (const git_object *)tree, &co) < 0)
		rc = patch__git_fail(TEND_ERROR, "checkout of main");
done:
	git_index_free(index);
	git_tree_free(tree);
	git_commit_free(main);
	return rc;
}

/* --- opening --------------------------------------------------------------- */

int patch__repo_new(patch_repo **out, git_repository *git, const char *name,
		    const char *email)
{
	patch_repo *r = calloc(1, sizeof *r);
	if (r) {
		r->name = strdup(name);
		r->email = strdup(email);
	}
	if (!r || !r->name || !r->email) {
		if (r) {
			free(r->name);
			free(r->email);
		}
		free(r);
		return tend_error_set(TEND_ENOMEM, "out of memory");
	}
	r->git = git;
	*out = r;
	return 0;
}

int patch_repo_open(patch_repo **out, const char *dir)
{
	git_repository *git = NULL;
	git_signature *sig = NULL;
	*out = NULL;
	int rc = patch__lib_init();
	if (rc)
		return rc;
	int grc = git_repository_open_ext(&git, dir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (grc == GIT_ENOTFOUND) {
		rc = tend_error_set(TEND_ENOTFOUND, "%s: no git repository", dir);
		goto done;
	}
	if (grc < 0) {
		rc = patch__git_fail(TEND_ERROR, dir);
		goto done;
	}
	if (git_repository_is_bare(git)) {
		rc = tend_error_set(TEND_EINVAL, "%s: a bare repository (the scaffold needs a working tree)", dir);
		goto done;
	}
	int have = git_signature_default(&sig, git) == 0;
	rc = patch__repo_new(out, git, have ? sig->name : "tend",
		      have ? sig->email : "tend@localhost");
	if (!rc)
		git = NULL;
done:
	git_signature_free(sig);
	git_repository_free(git);
	if (rc)
		git_libgit2_shutdown();
	return rc;
}

void patch_repo_free(patch_repo *r)
{
	if (!r)
		return;
	git_repository_free(r->git);
	free(r->name);
	free(r->email);
	free(r);
	git_libgit2_shutdown();
}

git_repository *patch_repo_git(patch_repo *r)
{
	return r->git;
}
