/*
 * patch_check.c - reads the headers of a proposed unified diff strictly and
 * checks every path it names, before libgit2 ever sees the diff.
 *
 * The diff comes from a model, so it is hostile input. We do not trust a
 * lenient parser to agree with the one that applies it: we read every
 * header ourselves, count hunk lines exactly as git does (so a "--- x" line
 * inside a hunk is content, not a header), refuse anything we do not
 * understand after the first file header, and let patch_apply.c check
 * afterwards that libgit2 saw the same files.
 */
#include "patch_int.h"
#include "tend.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PATH_CAP 1024

enum { ST_PRE, ST_HDR, ST_MINUS, ST_BODY };

/* The section being read; folded into a patch__file when it ends. */
typedef struct section {
	bool open, git;
	char *a, *b;        /* diff --git names */
	char *minus, *plus; /* ---/+++ names, NULL for /dev/null */
	bool saw_minus, saw_plus;
	bool new_file, deleted, rename, copy, mode_change;
	char *from, *to; /* rename/copy */
	size_t nhunks, off;
	size_t lineno; /* where it starts: its errors point there */
} section;

typedef struct scanner {
	const char *buf;
	size_t len;
	const char *const *allowed;
	size_t n;
	const char *const *denied;
	size_t nd;
	patch_limits lim;
	patch__scan *out;
	const char *line; /* the current line, without its '\n' */
	size_t llen, off, lineno;
	int state;
	long old_left, new_left; /* lines the current hunk still owes */
	bool prev_hunk_line;
	section sec;
} scanner;

static bool starts(const scanner *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return s->llen >= n && memcmp(s->line, prefix, n) == 0;
}

/* The current section's best name, for messages. */
static const char *sec_name(const section *c)
{
	if (c->plus)
		return c->plus;
	if (c->b)
		return c->b;
	if (c->minus)
		return c->minus;
	return c->a ? c->a : "(no file)";
}

/* Sets "line N: <message>" and returns TEND_EINVAL. */
static int fail(const scanner *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(const scanner *s, const char *fmt, ...)
{
	char msg[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return tend_error_set(TEND_EINVAL, "line %zu: %s", s->lineno, msg);
}

static bool path_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
	       c == '+' || c == '/';
}

const char *patch__path_rule(const char *p)
{
	if (!*p)
		return "empty path";
	if (*p == '/')
		return "absolute path";
	if (strlen(p) >= PATH_CAP)
		return "path too long";
	for (const char *q = p; *q; q++)
		if (!path_char_ok((unsigned char)*q))
			return "character outside [A-Za-z0-9._+-/]";
	for (const char *c = p; c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL) {
		size_t n = strcspn(c, "/");
		if (n == 0)
			return "empty path component";
		if (n == 1 && c[0] == '.')
			return "'.' component";
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return "'..' component (path traversal)";
		if (n >= 4 && strncasecmp(c, ".git", 4) == 0)
			return "git metadata (.git*)";
	}
	return NULL;
}

/* Denied patterns hit the whole path, any leading directory, or any
 * component, case-insensitively: "gates*" denies gates.yaml, gates/x.lua
 * and sub/Gates.lua alike. */
static bool denied_match(const char *pat, const char *path)
{
	char buf[PATH_CAP];
	if (fnmatch(pat, path, FNM_CASEFOLD) == 0)
		return true;
	snprintf(buf, sizeof buf, "%s", path);
	for (char *slash = strchr(buf, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		bool hit = fnmatch(pat, buf, FNM_CASEFOLD) == 0;
		*slash = '/';
		if (hit)
			return true;
	}
	for (const char *c = path; c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL) {
		size_t n = strcspn(c, "/");
		memcpy(buf, c, n);
		buf[n] = '\0';
		if (fnmatch(pat, buf, FNM_CASEFOLD) == 0)
			return true;
	}
	return false;
}

static int not_allowed(scanner *s, const char *path, const char *hdr)
{
	char list[512] = "";
	size_t used = 0;
	for (size_t i = 0; i < s->n && used < sizeof list; i++)
		used += snprintf(list + used, sizeof list - used, "%s%s",
				 i ? ", " : "", s->allowed[i]);
	return tend_error_set(TEND_EINVAL,
			      "line %zu: \"%s\" (%s): not in the allowed set (%s)",
			      s->lineno, path, hdr, s->n ? list : "empty");
}

static int check_path(scanner *s, const char *path, const char *hdr)
{
	const char *rule = patch__path_rule(path);
	if (rule)
		return tend_error_set(TEND_EINVAL, "line %zu: \"%s\" (%s): %s",
				      s->lineno, path, hdr, rule);
	for (size_t i = 0; i < s->nd; i++)
		if (denied_match(s->denied[i], path))
			return tend_error_set(TEND_EINVAL,
					      "line %zu: \"%s\" (%s): denied by \"%s\"",
					      s->lineno, path, hdr, s->denied[i]);
	if (!s->allowed)
		return 0;
	for (size_t i = 0; i < s->n; i++)
		if (fnmatch(s->allowed[i], path, FNM_PATHNAME | FNM_PERIOD) == 0)
			return 0;
	return not_allowed(s, path, hdr);
}

static char *dup_n(const char *p, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* Copies the rest of the line after prefix into *out and checks it as a
 * path named by header hdr. */
static int take_path(scanner *s, char **out, const char *p, size_t n,
		     const char *hdr)
{
	if (n && p[0] == '"')
		return fail(s, "quoted path in %s: unusual characters", hdr);
	*out = dup_n(p, n);
	if (!*out)
		return tend_error_set(TEND_ENOMEM, "out of memory");
	if (memchr(p, '\0', n))
		return fail(s, "NUL byte in a path (%s)", hdr);
	return check_path(s, *out, hdr);
}

static void sec_clear(section *c)
{
	free(c->a);
	free(c->b);
	free(c->minus);
	free(c->plus);
	free(c->from);
	free(c->to);
	memset(c, 0, sizeof *c);
}

static bool same(const char *x, const char *y)
{
	return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

/* The git section's names must agree with each other; sets old/new. */
static int git_names(scanner *s, section *c, const char **old, const char **nw)
{
	if (c->rename || c->copy) {
		if (!c->from || !c->to)
			return fail(s, "\"%s\": rename/copy without both from and to",
				    sec_name(c));
		if (strcmp(c->from, c->a) || strcmp(c->to, c->b))
			return fail(s, "\"%s\": rename/copy names disagree with diff --git \"%s\"",
				    c->to, c->b);
	} else if (strcmp(c->a, c->b) != 0) {
		return fail(s, "diff --git names two files (\"%s\", \"%s\") without a rename",
			    c->a, c->b);
	}
	if (c->new_file && c->deleted)
		return fail(s, "\"%s\": both new and deleted", c->b);
	*old = c->new_file ? NULL : c->a;
	*nw = c->deleted ? NULL : c->b;
	if (c->saw_minus && (!same(c->minus, *old) || !same(c->plus, *nw)))
		return fail(s, "\"%s\": ---/+++ names disagree with diff --git (or a missing new/deleted file header)",
			    c->b);
	if (!c->saw_minus && !c->rename && !c->copy && !c->mode_change &&
	    !c->new_file && !c->deleted)
		return fail(s, "\"%s\": file header without any change", c->b);
	return 0;
}

static int plain_names(scanner *s, section *c, const char **old, const char **nw)
{
	if (!c->minus && !c->plus)
		return fail(s, "--- and +++ are both /dev/null");
	if (c->minus && c->plus && strcmp(c->minus, c->plus) != 0)
		return fail(s, "--- and +++ name different files (\"%s\", \"%s\")",
			    c->minus, c->plus);
	*old = c->minus;
	*nw = c->plus;
	return 0;
}

/* Ends the open section: checks it and appends it to the result. */
static int sec_end(scanner *s)
{
	section *c = &s->sec;
	const char *old = NULL, *nw = NULL;
	int rc = 0;
	if (!c->open)
		return 0;
	size_t here = s->lineno;
	s->lineno = c->lineno;
	if (c->saw_minus && !c->saw_plus)
		rc = fail(s, "\"%s\": --- without +++", sec_name(c));
	else if (c->saw_plus && c->nhunks == 0)
		rc = fail(s, "\"%s\": ---/+++ without any hunk", sec_name(c));
	else
		rc = c->git ? git_names(s, c, &old, &nw) : plain_names(s, c, &old, &nw);
	if (rc)
		return rc;
	s->lineno = here;
	patch__scan *o = s->out;
	if (o->nfiles == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 8;
		patch__file *f = realloc(o->files, cap * sizeof *f);
		if (!f)
			return tend_error_set(TEND_ENOMEM, "out of memory");
		o->files = f;
		o->cap = cap;
	}
	patch__file *f = &o->files[o->nfiles];
	memset(f, 0, sizeof *f);
	o->nfiles++;
	f->old_path = old ? strdup(old) : NULL;
	f->new_path = nw ? strdup(nw) : NULL;
	if ((old && !f->old_path) || (nw && !f->new_path))
		return tend_error_set(TEND_ENOMEM, "out of memory");
	f->git = c->git;
	f->off = c->off;
	f->end = s->off;
	sec_clear(c);
	return 0;
}

static int sec_begin(scanner *s, bool git)
{
	int rc = sec_end(s);
	if (rc)
		return rc;
	if (s->out->nfiles >= s->lim.max_files)
		return tend_error_set(TEND_EINVAL,
				      "line %zu: more than %zu files in one proposal",
				      s->lineno, s->lim.max_files);
	s->sec.open = true;
	s->sec.git = git;
	s->sec.off = s->off;
	s->sec.lineno = s->lineno;
	return 0;
}

static int on_diff_git(scanner *s)
{
	int rc = sec_begin(s, true);
	if (rc)
		return rc;
	const char *p = s->line + 11, *end = s->line + s->llen;
	if (p < end && *p == '"')
		return fail(s, "quoted path in diff --git: unusual characters");
	const char *sep = memmem(p, (size_t)(end - p), " b/", 3);
	if (end - p < 2 || memcmp(p, "a/", 2) != 0 || !sep)
		return fail(s, "diff --git without a/ and b/ names");
	s->state = ST_HDR;
	rc = take_path(s, &s->sec.a, p + 2, (size_t)(sep - p - 2), "diff --git");
	if (!rc)
		rc = take_path(s, &s->sec.b, sep + 3, (size_t)(end - sep - 3),
			       "diff --git");
	return rc;
}

/* A ---/+++ name: /dev/null, or prefix ("a/" or "b/") and a path. */
static int minus_plus_path(scanner *s, char **out, const char *prefix,
			   const char *hdr)
{
	const char *p = s->line + 4;
	const char *tab = memchr(p, '\t', s->llen - 4); /* then a timestamp */
	size_t n = tab ? (size_t)(tab - p) : s->llen - 4;
	if (n == 9 && memcmp(p, "/dev/null", 9) == 0) {
		*out = NULL;
		return 0;
	}
	if (n && p[0] == '/') {
		char *abs = dup_n(p, n);
		int rc = fail(s, "\"%s\" (%s): absolute path", abs ? abs : "?", hdr);
		free(abs);
		return rc;
	}
	if (n < 2 || memcmp(p, prefix, 2) != 0) {
		char *bad = dup_n(p, n);
		int rc = tend_error_set(TEND_EINVAL,
					"line %zu: \"%s\" (%s): missing the %s prefix",
					s->lineno, bad ? bad : "?", hdr, prefix);
		free(bad);
		return rc;
	}
	return take_path(s, out, p + 2, n - 2, hdr);
}

static int on_minus(scanner *s)
{
	int rc = 0;
	if (!(s->state == ST_HDR && !s->sec.saw_minus))
		rc = sec_begin(s, false);
	if (rc)
		return rc;
	s->sec.saw_minus = true;
	s->state = ST_MINUS;
	return minus_plus_path(s, &s->sec.minus, "a/", "---");
}

static int on_plus(scanner *s)
{
	if (s->state != ST_MINUS)
		return fail(s, "+++ without a --- line before it");
	s->sec.saw_plus = true;
	s->state = ST_BODY;
	return minus_plus_path(s, &s->sec.plus, "b/", "+++");
}

/* Reads a decimal number of at most 8 digits at *p (the diff need not
 * be NUL-terminated, so no strtol). */
static bool number(const char **p, const char *end, long *out)
{
	const char *q = *p;
	*out = 0;
	while (q < end && *q >= '0' && *q <= '9' && q - *p < 8)
		*out = *out * 10 + (*q++ - '0');
	if (q == *p || (q < end && *q >= '0' && *q <= '9'))
		return false;
	*p = q;
	return true;
}

/* Reads "N" or "N,M" at *p; the count defaults to 1 as in diff. */
static bool range(const char **p, const char *end, long *count)
{
	long start;
	*count = 1;
	if (!number(p, end, &start))
		return false;
	if (*p < end && **p == ',') {
		(*p)++;
		return number(p, end, count);
	}
	return true;
}

static int on_hunk(scanner *s)
{
	const char *p = s->line + 4, *end = s->line + s->llen;
	long old_n, new_n;
	if (s->state != ST_BODY)
		return fail(s, "hunk outside a file (no ---/+++ before it)");
	if (!starts(s, "@@ -"))
		return fail(s, "\"%s\": malformed hunk header", sec_name(&s->sec));
	if (!range(&p, end, &old_n) || end - p < 2 || memcmp(p, " +", 2) != 0)
		return fail(s, "\"%s\": malformed hunk header", sec_name(&s->sec));
	p += 2;
	if (!range(&p, end, &new_n) || end - p < 3 || memcmp(p, " @@", 3) != 0)
		return fail(s, "\"%s\": malformed hunk header", sec_name(&s->sec));
	if (old_n + new_n == 0)
		return fail(s, "\"%s\": empty hunk", sec_name(&s->sec));
	if ((size_t)(old_n + new_n) > s->lim.max_hunk_lines)
		return tend_error_set(TEND_EINVAL,
				      "line %zu: \"%s\": hunk of %ld lines over the bound of %zu",
				      s->lineno, sec_name(&s->sec), old_n + new_n,
				      s->lim.max_hunk_lines);
	s->old_left = old_n;
	s->new_left = new_n;
	s->sec.nhunks++;
	return 0;
}

static int on_mode(scanner *s, const char *p, const char *hdr)
{
	const char *end = s->line + s->llen;
	const char *sp = memchr(p, ' ', (size_t)(end - p));
	size_t n = sp ? (size_t)(sp - p) : (size_t)(end - p);
	if (n == 6 && memcmp(p, "100644", 6) == 0)
		return 0;
	const char *what = "mode";
	if (n == 6 && memcmp(p, "120000", 6) == 0)
		what = "symlink mode";
	else if (n == 6 && memcmp(p, "100755", 6) == 0)
		what = "executable mode";
	else if (n == 6 && memcmp(p, "160000", 6) == 0)
		what = "submodule mode";
	char m[16];
	snprintf(m, sizeof m, "%.*s", (int)(n < 8 ? n : 8), p);
	return tend_error_set(TEND_EINVAL, "line %zu: \"%s\" (%s %s): %s not allowed (only 100644)",
			      s->lineno, sec_name(&s->sec), hdr, m, what);
}

/* "index abc..def[ mode]" */
static int on_index(scanner *s)
{
	const char *p = s->line + 6, *end = s->line + s->llen;
	const char *sp = memchr(p, ' ', (size_t)(end - p));
	return sp ? on_mode(s, sp + 1, "index") : 0;
}

static int on_rename_copy(scanner *s, const char *rest, char **slot,
			  bool *flag, const char *hdr)
{
	size_t off = (size_t)(rest - s->line);
	*flag = true;
	if (*slot)
		return fail(s, "\"%s\": %s given twice", sec_name(&s->sec), hdr);
	return take_path(s, slot, rest, s->llen - off, hdr);
}

/* git's extended header lines; returns 1 when the line is not one. */
static int on_ext(scanner *s)
{
	section *c = &s->sec;
	if (starts(s, "new file mode "))
		return c->new_file = true, on_mode(s, s->line + 14, "new file mode");
	if (starts(s, "deleted file mode "))
		return c->deleted = true, on_mode(s, s->line + 18, "deleted file mode");
	if (starts(s, "old mode "))
		return c->mode_change = true, on_mode(s, s->line + 9, "old mode");
	if (starts(s, "new mode "))
		return c->mode_change = true, on_mode(s, s->line + 9, "new mode");
	if (starts(s, "index "))
		return on_index(s);
	if (starts(s, "rename from "))
		return on_rename_copy(s, s->line + 12, &c->from, &c->rename, "rename from");
	if (starts(s, "rename to "))
		return on_rename_copy(s, s->line + 10, &c->to, &c->rename, "rename to");
	if (starts(s, "copy from "))
		return on_rename_copy(s, s->line + 10, &c->from, &c->copy, "copy from");
	if (starts(s, "copy to "))
		return on_rename_copy(s, s->line + 8, &c->to, &c->copy, "copy to");
	if (starts(s, "similarity index ") || starts(s, "dissimilarity index "))
		return 0;
	return 1;
}

/* A line inside a hunk: counts it as git does. */
static int hunk_line(scanner *s)
{
	char c = s->llen ? s->line[0] : ' '; /* an empty line is context */
	bool ok = (c == ' ' && s->old_left > 0 && s->new_left > 0) ||
		  (c == '-' && s->old_left > 0) || (c == '+' && s->new_left > 0) ||
		  c == '\\';
	if (!ok)
		return tend_error_set(TEND_EINVAL,
				      "line %zu: \"%s\": hunk ends early (%ld old and %ld new lines missing)",
				      s->lineno, sec_name(&s->sec), s->old_left,
				      s->new_left);
	if (c == ' ' || c == '-')
		s->old_left--;
	if (c == ' ' || c == '+')
		s->new_left--;
	s->prev_hunk_line = true;
	return 0;
}

static bool is_binary(const scanner *s)
{
	return starts(s, "GIT binary patch") || starts(s, "Binary files ");
}

/* A line outside any hunk. */
static int header_line(scanner *s)
{
	bool after_hunk = s->prev_hunk_line;
	s->prev_hunk_line = false;
	if (starts(s, "diff --git "))
		return on_diff_git(s);
	if (starts(s, "--- "))
		return on_minus(s);
	if (starts(s, "+++ "))
		return on_plus(s);
	if (starts(s, "@@ -") || (s->state != ST_PRE && starts(s, "@@")))
		return on_hunk(s);
	if (s->state == ST_PRE)
		return 0; /* prose before the diff */
	if (is_binary(s))
		return fail(s, "\"%s\": binary patch not allowed", sec_name(&s->sec));
	if (s->state == ST_HDR) {
		int rc = on_ext(s);
		if (rc <= 0)
			return rc;
	}
	if (s->llen && s->line[0] == '\\' && after_hunk)
		return 0; /* "\ No newline at end of file" */
	if (s->state == ST_BODY &&
	    (s->llen == 0 || (starts(s, "diff ") && !starts(s, "diff --git"))))
		return 0; /* a blank line, or plain diff's "diff -u a b" line */
	return fail(s, "\"%s\": unexpected line outside a hunk: \"%.*s\"",
		    sec_name(&s->sec), (int)(s->llen < 60 ? s->llen : 60), s->line);
}

/* Finds the next line; false at the end of the buffer. */
static bool next_line(scanner *s, size_t *pos)
{
	if (*pos >= s->len)
		return false;
	const char *p = s->buf + *pos;
	const char *nl = memchr(p, '\n', s->len - *pos);
	s->off = *pos;
	s->line = p;
	s->llen = nl ? (size_t)(nl - p) : s->len - *pos;
	*pos += s->llen + (nl ? 1 : 0);
	s->lineno++;
	return true;
}

static int scan_lines(scanner *s)
{
	size_t pos = 0;
	int rc = 0;
	while (!rc && next_line(s, &pos)) {
		if (memchr(s->line, '\0', s->llen))
			return fail(s, "NUL byte (binary content)");
		if (s->llen && s->line[s->llen - 1] == '\r')
			return fail(s, "CR line ending (the diff must use LF)");
		if (s->old_left > 0 || s->new_left > 0)
			rc = hunk_line(s);
		else
			rc = header_line(s);
	}
	if (rc)
		return rc;
	s->off = s->len;
	if (s->old_left > 0 || s->new_left > 0)
		return fail(s, "\"%s\": diff ends inside a hunk (%ld old and %ld new lines missing)",
			    sec_name(&s->sec), s->old_left, s->new_left);
	rc = sec_end(s);
	if (!rc && s->out->nfiles == 0)
		return tend_error_set(TEND_EINVAL, "no file header found in the diff");
	return rc;
}

void patch__scan_free(patch__scan *sc)
{
	if (!sc)
		return;
	for (size_t i = 0; i < sc->nfiles; i++) {
		free(sc->files[i].old_path);
		free(sc->files[i].new_path);
	}
	free(sc->files);
	memset(sc, 0, sizeof *sc);
}

int patch__scan_diff(patch__scan *out, const char *diff, size_t len,
		     const char *const *allowed, size_t n,
		     const char *const *denied, size_t nd,
		     const patch_limits *lim)
{
	scanner s = {.buf = diff, .len = len, .allowed = allowed, .n = n,
		     .denied = denied, .nd = nd, .out = out};
	s.lim = lim ? *lim : (patch_limits){PATCH_MAX_FILES, PATCH_MAX_HUNK_LINES,
					    PATCH_MAX_BYTES};
	memset(out, 0, sizeof *out);
	if (!diff)
		return tend_error_set(TEND_EINVAL, "no diff given");
	if (len > s.lim.max_bytes)
		return tend_error_set(TEND_EINVAL, "diff of %zu bytes over the bound of %zu",
				      len, s.lim.max_bytes);
	int rc = scan_lines(&s);
	sec_clear(&s.sec);
	return rc;
}

int patch_validate_paths_ex(const char *diff, size_t len,
			    const char *const *allowed_globs, size_t n,
			    const char *const *denied, size_t nd,
			    const patch_limits *lim)
{
	static const char *const none[] = {NULL};
	patch__scan sc;
	int rc = patch__scan_diff(&sc, diff, len, allowed_globs ? allowed_globs : none,
				  allowed_globs ? n : 0, denied, denied ? nd : 0, lim);
	patch__scan_free(&sc);
	return rc;
}

int patch_validate_paths(const char *diff, size_t len,
			 const char *const *allowed_globs, size_t n,
			 const char *const *denied, size_t nd)
{
	return patch_validate_paths_ex(diff, len, allowed_globs, n, denied, nd, NULL);
}
