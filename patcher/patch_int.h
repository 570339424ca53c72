/*
 * patch_int.h - what the patch_*.c files share and nobody else sees: the
 * repository object, the diff scanner's result, and small git helpers.
 */
#ifndef PATCH_INT_H
#define PATCH_INT_H

#include "patch.h"

#include <stdbool.h>

struct patch_repo {
	git_repository *git;
	char *name;  /* the signature of every commit we make */
	char *email;
};

#define PATCH__MAIN_REF "refs/heads/main"

/* One file section of a diff, as patch__scan_diff() read it. */
typedef struct patch__file {
	char *old_path; /* NULL for /dev/null */
	char *new_path; /* NULL for /dev/null */
	bool git;       /* had a "diff --git" header */
	size_t off;     /* where the section starts in the diff */
	size_t end;     /* where it ends */
} patch__file;

typedef struct patch__scan {
	patch__file *files;
	size_t nfiles, cap;
} patch__scan;

/* Scans diff strictly (see patch_validate_paths). allowed == NULL skips
 * the allowed-set rule (the built-in rules still hold); lim NULL: the
 * defaults. On success fills *out (patch__scan_free it, also on failure). */
int patch__scan_diff(patch__scan *out, const char *diff, size_t len,
		     const char *const *allowed, size_t n,
		     const char *const *denied, size_t nd,
		     const patch_limits *lim);
void patch__scan_free(patch__scan *s);

/* The built-in path rules alone; returns the broken rule or NULL. */
const char *patch__path_rule(const char *path);

/* Sets the tend error from libgit2's last error: "<what>: <git message>";
 * returns code. */
int patch__git_fail(int code, const char *what);

/* Resolves rev (id, branch, any revision) to a commit; TEND_ENOTFOUND. */
int patch__commit_of(git_commit **out, patch_repo *r, const char *rev);

/* Builds "message\n\nKey: value\n..." in *out (free()), refusing bad keys,
 * values or messages; extra (may be NULL) is appended after trailers. */
int patch__message(char **out, const char *message,
		   const patch_trailer *trailers, size_t n,
		   const patch_trailer *extra);

/* Commits tree with parents, signed by r, moving update_ref (may be NULL)
 * only if its tip is parents[0]. */
int patch__commit(git_oid *out, patch_repo *r, const char *update_ref,
		  const char *message, const git_tree *tree,
		  const git_commit **parents, size_t nparents);

/* Points HEAD at main and forces the index and working tree to main's
 * tree (files tracked before but not in main are removed). */
int patch__checkout_main(patch_repo *r);

/* Wraps an open repository (taken over on success). */
int patch__repo_new(patch_repo **out, git_repository *git, const char *name,
		    const char *email);

/* mkdir -p of path's first upto bytes. */
int patch__mkdirs(const char *path, size_t upto);

/* Creates path (O_EXCL, no symlink following) with data. */
int patch__write_file(const char *path, const void *data, size_t len,
		      unsigned mode);

/* Reads a whole (small) file into *out (free()), NUL-terminated. */
int patch__read_file(char **out, size_t *len, const char *path);

/* Removes dir and everything under it without following symlinks; with
 * keep_dir, leaves dir itself (empty). */
void patch__rm_rf(const char *dir, bool keep_dir);

/* libgit2 refcounted init, with our global settings. */
int patch__lib_init(void);

#endif
