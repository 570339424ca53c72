/*
 * patch_init.c - creating the scaffold repository from a seed directory
 * (the default Lua scaffold), and the few file-system helpers that this
 * and patch_materialize() share.
 */
#include "patch_int.h"
#include "sha256.h"
#include "tend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEED_FILE_CAP (16u << 20) /* a scaffold file is text, not data */

int patch__mkdirs(const char *path, size_t upto)
{
	char buf[PATH_MAX];
	if (upto >= sizeof buf)
		return tend_error_set(TEND_EINVAL, "%s: path too long", path);
	memcpy(buf, path, upto);
	buf[upto] = '\0';
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return tend_error_os("mkdir %s", buf);
		if (c == '\0')
			return 0;
		*p = c;
	}
}

int patch__write_file(const char *path, const void *data, size_t len,
		      unsigned mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		      mode);
	if (fd < 0)
		return tend_error_os("create %s", path);
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int rc = tend_error_os("write %s", path);
			close(fd);
			return rc;
		}
		p += w;
		len -= (size_t)w;
	}
	if (close(fd) < 0)
		return tend_error_os("close %s", path);
	return 0;
}

int patch__read_file(char **out, size_t *len, const char *path)
{
	char *buf = NULL;
	int rc = 0;
	FILE *f = fopen(path, "rb");
	*out = NULL;
	if (!f)
		return tend_error_os("open %s", path);
	struct stat st;
	if (fstat(fileno(f), &st) < 0 || st.st_size > (off_t)SEED_FILE_CAP) {
		rc = tend_error_set(TEND_EINVAL, "%s: unreadable or over %u bytes",
				    path, SEED_FILE_CAP);
		goto done;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = tend_error_set(TEND_ENOMEM, "out of memory");
		goto done;
	}
	*len = fread(buf, 1, (size_t)st.st_size, f);
	if (ferror(f)) {
		rc = tend_error_os("read %s", path);
		goto done;
	}
	buf[*len] = '\0';
	*out = buf;
	buf = NULL;
done:
	free(buf);
	fclose(f);
	return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

void patch__rm_rf(const char *dir, bool keep_dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (keep_dir)
		mkdir(dir, 0755);
}

/* --- the seed ------------------------------------------------------------ */

typedef struct seedlist {
	char **paths; /* relative to the seed dir */
	size_t n, cap;
} seedlist;

static void seed_free(seedlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
}

static int seed_push(seedlist *l, const char *rel)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **p = realloc(l->paths, cap * sizeof *p);
		if (!p)
			return tend_error_set(TEND_ENOMEM, "out of memory");
		l->paths = p;
		l->cap = cap;
	}
	if (!(l->paths[l->n] = strdup(rel)))
		return tend_error_set(TEND_ENOMEM, "out of memory");
	l->n++;
	return 0;
}

/* Collects the regular files under root/rel; symlinks are not followed. */
static int seed_walk(seedlist *l, const char *root, const char *rel)
{
	char dir[PATH_MAX], sub[PATH_MAX], full[PATH_MAX];
	snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
	DIR *d = opendir(dir);
	if (!d)
		return tend_error_os("seed %s", dir);
	int rc = 0;
	struct dirent *e;
	while (!rc && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		snprintf(full, sizeof full, "%s/%s", root, sub);
		struct stat st;
		if (lstat(full, &st) < 0)
			rc = tend_error_os("seed %s", full);
		else if (S_ISDIR(st.st_mode))
			rc = seed_walk(l, root, sub);
		else if (S_ISREG(st.st_mode))
			rc = seed_push(l, sub);
	}
	closedir(d);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collects, sorts (bytewise, as LC_ALL=C sort) and checks the seed files:
 * the repository should only hold paths a proposal could name. */
static int seed_list(seedlist *l, const char *seed_dir)
{
	int rc = seed_walk(l, seed_dir, "");
	if (rc)
		return rc;
	if (l->n == 0)
		return tend_error_set(TEND_EINVAL, "seed %s: no regular files", seed_dir);
	qsort(l->paths, l->n, sizeof *l->paths, cmp_str);
	for (size_t i = 0; i < l->n; i++) {
		const char *rule = patch__path_rule(l->paths[i]);
		if (rule)
			return tend_error_set(TEND_EINVAL, "seed %s: \"%s\": %s",
					      seed_dir, l->paths[i], rule);
	}
	return 0;
}

/* --- init ----------------------------------------------------------------- */

/* "Name <email>" or "Name" into name/email. */
static int parse_author(const char *author, char *name, size_t ncap,
			char *email, size_t ecap)
{
	if (!author)
		author = "tend <tend@localhost>";
	const char *lt = strchr(author, '<'), *gt = strrchr(author, '>');
	size_t nlen = lt ? (size_t)(lt - author) : strlen(author);
	while (nlen && author[nlen - 1] == ' ')
		nlen--;
	if (nlen == 0 || nlen >= ncap || (lt && (!gt || gt < lt || gt[1])) ||
	    strpbrk(author, "\r\n"))
		return tend_error_set(TEND_EINVAL, "author \"%s\": want \"Name <email>\"", author);
	snprintf(name, ncap, "%.*s", (int)nlen, author);
	if (lt)
		snprintf(email, ecap, "%.*s", (int)(gt - lt - 1), lt + 1);
	else
		snprintf(email, ecap, "tend@localhost");
	return 0;
}

/* Refuses a dir that holds anything; *existed says whether it was there. */
static int check_target(const char *dir, bool *existed)
{
	char dotgit[PATH_MAX];
	struct stat st;
	*existed = stat(dir, &st) == 0;
	if (!*existed)
		return errno == ENOENT ? 0 : tend_error_os("%s", dir);
	snprintf(dotgit, sizeof dotgit, "%s/.git", dir);
	if (access(dotgit, F_OK) == 0)
		return tend_error_set(TEND_EEXISTS, "%s already holds a git repository", dir);
	DIR *d = S_ISDIR(st.st_mode) ? opendir(dir) : NULL;
	if (!d)
		return tend_error_set(TEND_EEXISTS, "%s exists and is not a readable directory", dir);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	if (n)
		return tend_error_set(TEND_EEXISTS, "%s exists and is not empty", dir);
	return 0;
}

/* Writes one seed file into the work tree and the index; adds its line to
 * the manifest ("<sha256>  <path>\n", as sha256sum prints it). */
static int add_seed_file(git_index *index, const char *seed_dir,
			 const char *dir, const char *rel, FILE *manifest)
{
	char src[PATH_MAX], dst[PATH_MAX], hex[65];
	char *data = NULL;
	size_t len = 0;
	snprintf(src, sizeof src, "%s/%s", seed_dir, rel);
	snprintf(dst, sizeof dst, "%s/%s", dir, rel);
	int rc = patch__read_file(&data, &len, src);
	if (!rc)
		rc = patch__mkdirs(dst, (size_t)(strrchr(dst, '/') - dst));
	if (!rc)
		rc = patch__write_file(dst, data, len, 0644);
	if (!rc && git_index_add_bypath(index, rel) < 0)
		rc = patch__git_fail(TEND_ERROR, rel);
	if (!rc) {
		sha256_hex(data, len, hex);
		fprintf(manifest, "%s  %s\n", hex, rel);
	}
	free(data);
	return rc;
}

static int seed_commit(patch_repo *r, const char *seed_dir, const char *dir,
		       const seedlist *l)
{
	git_index *index = NULL;
	git_tree *tree = NULL;
	git_oid tree_id, commit_id;
	char *mtext = NULL, *msg = NULL, hex[65], nfiles[24];
	size_t mlen = 0;
	FILE *manifest = open_memstream(&mtext, &mlen);
	int rc = manifest ? 0 : tend_error_set(TEND_ENOMEM, "out of memory");
	if (!rc && git_repository_index(&index, r->git) < 0)
		rc = patch__git_fail(TEND_ERROR, "index");
	for (size_t i = 0; !rc && i < l->n; i++)
		rc = add_seed_file(index, seed_dir, dir, l->paths[i], manifest);
	if (manifest && fclose(manifest) != 0 && !rc)
		rc = tend_error_set(TEND_ENOMEM, "out of memory");
	if (!rc && (git_index_write(index) < 0 ||
		    git_index_write_tree(&tree_id, index) < 0 ||
		    git_tree_lookup(&tree, r->git, &tree_id) < 0))
		rc = patch__git_fail(TEND_ERROR, "writing the initial tree");
	if (rc)
		goto done;
	sha256_hex(mtext, mlen, hex);
	snprintf(nfiles, sizeof nfiles, "%zu", l->n);
	const patch_trailer t[] = {{"Tend-Version", TEND_VERSION},
				   {"Seed-Files", nfiles}, {"Seed-SHA256", hex}};
	rc = patch__message(&msg, "scaffold: initial import", t, 3, NULL);
	if (!rc)
		rc = patch__commit(&commit_id, r, "HEAD", msg, tree, NULL, 0);
done:
	free(msg);
	free(mtext);
	git_tree_free(tree);
	git_index_free(index);
	return rc;
}

static int init_repo(patch_repo **out, const char *dir, const char *name,
		     const char *email)
{
	git_repository *git = NULL;
	git_config *cfg = NULL;
	git_repository_init_options o;
	git_repository_init_options_init(&o, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	o.flags = GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
	o.initial_head = "main";
	int rc = 0;
	if (git_repository_init_ext(&git, dir, &o) < 0 ||
	    git_repository_config(&cfg, git) < 0 ||
	    git_config_set_string(cfg, "user.name", name) < 0 ||
	    git_config_set_string(cfg, "user.email", email) < 0)
		rc = patch__git_fail(TEND_ERROR, dir);
	git_config_free(cfg);
	if (!rc)
		rc = patch__repo_new(out, git, name, email);
	if (rc)
		git_repository_free(git);
	return rc;
}

int patch_repo_init(patch_repo **out, const char *dir, const char *seed_dir,
		    const char *author)
{
	patch_repo *r = NULL;
	seedlist l = {0};
	char name[256], email[256];
	bool existed = false, made = false;
	*out = NULL;
	int rc = patch__lib_init();
	if (rc)
		return rc;
	rc = parse_author(author, name, sizeof name, email, sizeof email);
	if (!rc)
		rc = check_target(dir, &existed);
	if (!rc)
		rc = seed_list(&l, seed_dir);
	if (!rc) {
		made = true;
		rc = init_repo(&r, dir, name, email);
	}
	if (!rc)
		rc = seed_commit(r, seed_dir, dir, &l);
	seed_free(&l);
	if (!rc) {
		*out = r;
		return 0;
	}
	if (r)
		patch_repo_free(r); /* which also balances patch__lib_init() */
	else
		git_libgit2_shutdown();
	if (made) /* leave dir as we found it */
		patch__rm_rf(dir, existed);
	return rc;
}
