/*
 * patch.h - the scaffold repository, in git: proposals as branches, gated
 * promotion into main, reverts, and the history that the audit walks.
 *
 * WS/scaffold is a normal git repository with a working tree. Branch main
 * holds the live Lua scaffold; each proposal is one commit on its own branch
 * proposals/<incident>-<n> whose parent is the base it was made against;
 * a candidate that passed the gates is merged into main as a merge commit.
 * No function here deletes a branch. Every commit carries git trailers
 * ("Key: value" lines in the message's last paragraph).
 *
 * Proposals are applied to trees in memory (git_apply_to_tree): only
 * promotion and revert touch the working tree, and only to make it match
 * main. This layer is pure git; the store records what it did.
 *
 * All functions return 0 or a negative TEND_E* code with the message in
 * tend_error_last().
 */
#ifndef PATCH_H
#define PATCH_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

typedef struct patch_repo patch_repo;

/* One "Key: value" trailer. Keys are [A-Za-z0-9-]+, values one line. */
typedef struct patch_trailer {
	const char *key;
	const char *value;
} patch_trailer;

/* --- the repository --------------------------------------------------- */

/* Creates a repository at dir (made if missing; it must be empty or
 * absent: TEND_EEXISTS if it holds a repository or anything else), copies
 * every regular file under seed_dir (recursively; symlinks and other
 * non-regular files are skipped) into it, and commits them on main (HEAD ->
 * refs/heads/main) as "scaffold: initial import" with trailers Tend-Version,
 * Seed-Files and Seed-SHA256 (sha256 of the lines "<sha256 of file>  <path>"
 * sorted by path, as `sha256sum` prints them). author is "Name <email>" or
 * "Name" (NULL: "tend <tend@localhost>"); it is stored as user.name and
 * user.email in the repository's config and signs every later commit.
 * On failure a dir this call created is removed again. Free with
 * patch_repo_free(). */
int patch_repo_init(patch_repo **out, const char *dir, const char *seed_dir,
		    const char *author);

/* Opens the repository at dir (no search upwards). TEND_ENOTFOUND when dir
 * holds none. */
int patch_repo_open(patch_repo **out, const char *dir);

/* Accepts NULL. */
void patch_repo_free(patch_repo *r);

/* The underlying repository, owned by r (for read-only callers). */
git_repository *patch_repo_git(patch_repo *r);

/* --- checking a proposed diff ------------------------------------------ */

/* Bounds on one proposal; patch_validate_paths() uses the defaults. */
typedef struct patch_limits {
	size_t max_files;      /* file sections in the diff */
	size_t max_hunk_lines; /* old + new line counts of one hunk */
	size_t max_bytes;      /* the whole diff */
} patch_limits;

#define PATCH_MAX_FILES 16
#define PATCH_MAX_HUNK_LINES 400
#define PATCH_MAX_BYTES (1024 * 1024)

/* Parses the file headers of a unified diff (git style or plain ---/+++)
 * strictly and checks every path it names (diff --git, ---, +++, rename and
 * copy from/to) against the rules, in this order: no empty, absolute,
 * '.'/'..' or empty component; only [A-Za-z0-9._+-/]; no component that
 * starts with ".git" (any case); not matched by a denied pattern; matched
 * by an allowed glob. Also refused: modes other than 100644 (symlinks,
 * executables, submodules), binary patches, headers that disagree, text
 * outside a hunk after the first file header, CR line endings, more files
 * or bigger hunks than the limits.
 *
 * allowed: fnmatch globs where '*' stays inside one directory and a leading
 * '.' must be explicit: "*.lua" allows top-level Lua files only, a folder's
 * files need their own glob (the folder, a '/', then "*.md"); n == 0 allows
 * nothing. denied: patterns matched case-insensitively against the
 * whole path, each leading directory and each component ("gates*",
 * "tend.yaml", ".git"), with '*' crossing '/'.
 *
 * Returns 0, or TEND_EINVAL with a message that names the line, the path
 * and the rule, e.g. `line 4: "/etc/passwd" (+++): absolute path`. */
int patch_validate_paths(const char *diff, size_t len,
			 const char *const *allowed_globs, size_t n,
			 const char *const *denied, size_t nd);

/* The same with explicit limits (NULL: the defaults). */
int patch_validate_paths_ex(const char *diff, size_t len,
			    const char *const *allowed_globs, size_t n,
			    const char *const *denied, size_t nd,
			    const patch_limits *lim);

/* --- proposals ----------------------------------------------------------- */

/* Applies diff to the tree of base (a commit id, branch or any revision;
 * NULL: "main") in memory, commits the result with parent base and message
 * + trailers (n >= 1), and creates branch (e.g. "proposals/12-1") at it.
 * The working tree and main are not touched. The diff passes the built-in
 * rules of patch_validate_paths() (not an allowed/denied set: check that
 * first) and may be plain ---/+++ or git style, with prose before the
 * first file header (dropped). Beyond what libgit2 checks, a new file (or a
 * rename/copy target) must not exist in base and a deletion must remove
 * exactly the file's content. Returns TEND_EEXISTS if the branch exists,
 * TEND_ENOTFOUND if base does not resolve, TEND_EINVAL if the diff is
 * malformed, changes nothing, or does not apply (the message has libgit2's
 * reason and the file and hunk). */
int patch_apply_to_branch(git_oid *out_commit, patch_repo *r,
			  const char *base_commit_or_branch,
			  const char *diff, size_t len, const char *branch,
			  const char *message, const patch_trailer *trailers,
			  size_t n);

/* --- promotion and rollback ---------------------------------------------- */

/* Merges candidate_branch into main as a new commit with parents (main,
 * candidate) and message + trailers (n >= 1). If main is an ancestor of the
 * candidate the merge takes the candidate's tree; otherwise it is a 3-way
 * merge in memory, refused with TEND_EINVAL naming the conflicting paths.
 * TEND_EEXISTS if the candidate is already merged, TEND_EBUSY if main
 * moved while the merge was being made. Then the working tree
 * (and index) is forced to main; untracked files are left alone. If only
 * that last step fails, main has moved, *out_commit is set, and the error
 * says so. */
int patch_promote(git_oid *out_commit, patch_repo *r,
		  const char *candidate_branch, const char *message,
		  const patch_trailer *trailers, size_t n);

/* Commits on main the reverse of commit (a revision reachable from main:
 * for a merge, relative to its first parent), with message + trailers and
 * a "Reverts: <full id>" trailer appended, then forces the working tree to
 * main. TEND_EINVAL on conflict, when commit is not on main, is the root,
 * or its revert changes nothing. */
int patch_revert(git_oid *out_commit, patch_repo *r, const char *commit,
		 const char *message, const patch_trailer *trailers, size_t n);

/* --- reading ------------------------------------------------------------- */

/* The file at path in the tree of rev, NUL-terminated, in *out (free()),
 * its size in *len (may be NULL). TEND_ENOTFOUND for a missing rev or
 * path, TEND_EINVAL if path is not a regular file. */
int patch_read_blob(char **out, size_t *len, patch_repo *r, const char *rev,
		    const char *path);

/* Writes the tree of rev into out_dir (created if missing, else it must be
 * empty: TEND_EEXISTS), regular files only: TEND_EINVAL on a symlink,
 * submodule or unsafe entry name. */
int patch_materialize(patch_repo *r, const char *rev, const char *out_dir);

/* The unified diff (git style) from from_rev's tree to to_rev's, in *out
 * (free()); "" when equal. from_rev NULL: to_rev's first parent (the empty
 * tree for the root), i.e. what that commit changed. */
int patch_diff_text(char **out, patch_repo *r, const char *from_rev,
		    const char *to_rev);

/* One commit as the walkers report it; valid during the callback only. */
typedef struct patch_commit {
	const git_oid *id;
	const git_oid *parents; /* nparents ids, first parent first */
	size_t nparents;
	const char *summary;          /* first line of the message */
	const char *message;          /* the whole message */
	const char *trailers;         /* "Key: value\n" lines, "" if none */
	const patch_trailer *trailer; /* the same, parsed */
	size_t ntrailers;
	int64_t time; /* committer time, seconds since the epoch */
} patch_commit;

/* A walk callback: non-zero stops the walk, and the walker returns it. */
typedef int (*patch_commit_cb)(const patch_commit *c, void *ud);

/* Calls cb for up to max commits (max <= 0: all) reachable from rev,
 * newest first, as `git log` lists them. */
int patch_log(patch_repo *r, const char *rev, int max, patch_commit_cb cb,
	      void *ud);

/* Calls cb for each commit of main's first-parent history, newest first:
 * the initial import, promotions and reverts (for `tend audit verify`). */
int patch_main_history(patch_repo *r, patch_commit_cb cb, void *ud);

/* --- trailers ------------------------------------------------------------ */

/* Copies the value of the last trailer named key (case-insensitive) in
 * message into buf (cap bytes, NUL-terminated). TEND_ENOTFOUND when
 * absent, TEND_EINVAL when it does not fit. */
int patch_trailer_get(const char *message, const char *key, char *buf,
		      size_t cap);

#endif
