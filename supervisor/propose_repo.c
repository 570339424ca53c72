/*
 * propose_repo.c - the scaffold part of a proposal's context, read from the
 * scaffold repository: the full text of each allowed file at the revision
 * (the base the diff must apply to) and the revision's recent history with
 * its trailers, so a proposer sees what was already tried and promoted.
 */
#include "propose_int.h"
#include "tend.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FILE_SHOW_MAX (256 * 1024) /* bytes of one file shown */
#define FILES_SHOW_MAX (1024 * 1024) /* bytes of all files shown */
#define FILES_MAX 64

/* ---- history ------------------------------------------------------------- */

typedef struct hist {
	jbuf b;
	prop__text t;
} hist;

static int hist_cb(const patch_commit *c, void *ud)
{
	hist *h = ud;
	char id[GIT_OID_HEXSZ + 1], date[32];
	struct tm tm;
	time_t when = (time_t)c->time;
	git_oid_tostr(id, sizeof id, c->id);
	id[12] = '\0';
	gmtime_r(&when, &tm);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
	jbuf_obj_open(&h->b);
	jbuf_key(&h->b, "commit");
	jbuf_str(&h->b, id);
	jbuf_key(&h->b, "time");
	jbuf_str(&h->b, date);
	jbuf_key(&h->b, "summary");
	jbuf_str(&h->b, c->summary);
	jbuf_key(&h->b, "trailers");
	jbuf_obj_open(&h->b);
	for (size_t i = 0; i < c->ntrailers; i++) {
		jbuf_key(&h->b, c->trailer[i].key);
		jbuf_str(&h->b, c->trailer[i].value);
	}
	jbuf_obj_close(&h->b);
	jbuf_obj_close(&h->b);
	prop__tprintf(&h->t, "%s %s %s\n", id, date, c->summary);
	for (size_t i = 0; i < c->ntrailers; i++)
		prop__tprintf(&h->t, "    %s: %s\n", c->trailer[i].key, c->trailer[i].value);
	return 0;
}

static int history_part(prop_ctx *c, patch_repo *repo, const prop_ctx_opts *o)
{
	hist h = {0};
	jbuf_init(&h.b);
	jbuf_arr_open(&h.b);
	int rc = patch_log(repo, o->rev, o->history, hist_cb, &h);
	jbuf_arr_close(&h.b);
	if (rc == 0 && (rc = prop__take(&c->history_json, &h.b)) == 0)
		rc = prop__ttake(&c->history_text, &h.t);
	jbuf_free(&h.b);
	free(h.t.s);
	return rc;
}

/* ---- files ----------------------------------------------------------------- */

typedef struct walk {
	const prop_ctx_opts *o;
	char **paths;
	size_t n;
	int err;
} walk;

static bool allowed(const prop_ctx_opts *o, const char *path)
{
	for (size_t i = 0; i < o->n_allowed; i++)
		if (fnmatch(o->allowed[i], path, FNM_PATHNAME | FNM_PERIOD) == 0)
			return true;
	return false;
}

static int walk_cb(const char *root, const git_tree_entry *e, void *ud)
{
	walk *w = ud;
	char path[1024];
	if (git_tree_entry_filemode(e) != GIT_FILEMODE_BLOB)
		return 0; /* trees are walked into; links and executables are not shown */
	snprintf(path, sizeof path, "%s%s", root, git_tree_entry_name(e));
	if (!allowed(w->o, path) || w->n == FILES_MAX)
		return 0;
	if (!(w->paths[w->n] = strdup(path))) {
		w->err = TEND_ENOMEM;
		return -1;
	}
	w->n++;
	return 0;
}

static int list_files(walk *w, patch_repo *repo, const char *rev)
{
	git_object *obj = NULL;
	char spec[512];
	int rc = 0;
	snprintf(spec, sizeof spec, "%s^{tree}", rev);
	if (git_revparse_single(&obj, patch_repo_git(repo), spec) < 0)
		return tend_error_set(TEND_ENOTFOUND, "scaffold revision '%s' not found", rev);
	if (git_tree_walk((git_tree *)obj, GIT_TREEWALK_PRE, walk_cb, w) < 0)
		rc = w->err ? tend_error_set(w->err, "proposal context: out of memory")
			    : tend_error_set(TEND_EIO, "walking the tree of '%s': %s", rev,
					     git_error_last() ? git_error_last()->message : "?");
	git_object_free(obj);
	return rc;
}

/* Reads one file into f, cut to what is left of the total. */
static int read_one(prop__file *f, patch_repo *repo, const char *rev, const char *path,
		    size_t *left)
{
	char *text = NULL;
	size_t len = 0;
	int rc = patch_read_blob(&text, &len, repo, rev, path);
	if (rc < 0)
		return rc;
	size_t show = len;
	if (show > FILE_SHOW_MAX)
		show = FILE_SHOW_MAX;
	if (show > *left)
		show = *left;
	if (memchr(text, '\0', len))
		show = 0; /* binary: the model gets a note, not bytes */
	if (!(f->path = strdup(path))) {
		free(text);
		return tend_error_set(TEND_ENOMEM, "proposal context: out of memory");
	}
	f->cut = show < len;
	f->len = show;
	text[show] = '\0';
	f->text = text;
	*left -= show;
	return 0;
}

static int files_render(prop_ctx *c)
{
	jbuf b;
	prop__text t = {0};
	jbuf_init(&b);
	jbuf_obj_open(&b);
	for (size_t i = 0; i < c->nfiles; i++) {
		const prop__file *f = &c->files[i];
		size_t lines = 0;
		for (size_t k = 0; k < f->len; k++)
			lines += f->text[k] == '\n';
		jbuf_key(&b, f->path);
		jbuf_strn(&b, f->text, f->len);
		prop__tprintf(&t, "=== file: %s (%zu lines%s) ===\n", f->path, lines,
			      f->cut ? ", shown cut: too large or binary" : "");
		prop__tadd(&t, f->text, f->len);
		if (f->len && f->text[f->len - 1] != '\n')
			prop__tputs(&t, "\n");
		prop__tprintf(&t, "=== end of %s ===\n\n", f->path);
	}
	jbuf_obj_close(&b);
	int rc = prop__take(&c->files_json, &b);
	if (rc == 0)
		rc = prop__ttake(&c->files_text, &t);
	free(t.s);
	return rc;
}

static int files_part(prop_ctx *c, patch_repo *repo, const prop_ctx_opts *o)
{
	walk w = {.o = o};
	size_t left = FILES_SHOW_MAX;
	int rc;
	w.paths = calloc(FILES_MAX, sizeof *w.paths);
	c->files = calloc(FILES_MAX, sizeof *c->files);
	if (!w.paths || !c->files) {
		rc = tend_error_set(TEND_ENOMEM, "proposal context: out of memory");
		goto done;
	}
	if ((rc = list_files(&w, repo, o->rev)) < 0)
		goto done;
	for (size_t i = 0; i < w.n && rc == 0; i++) {
		rc = read_one(&c->files[i], repo, o->rev, w.paths[i], &left);
		if (rc == 0)
			c->nfiles++;
	}
	if (rc == 0)
		rc = files_render(c);
done:
	for (size_t i = 0; w.paths && i < w.n; i++)
		free(w.paths[i]);
	free(w.paths);
	return rc;
}

int prop__ctx_repo(prop_ctx *c, patch_repo *repo, const prop_ctx_opts *o)
{
	int rc = files_part(c, repo, o);
	if (rc == 0)
		rc = history_part(c, repo, o);
	return rc;
}
