/*
 * mline.c - parsing one metrics line (docs/metrics.md) into an mline.
 *
 * The line is parsed into a JSON DOM whose allocation the mline keeps, then
 * the top-level members are checked in one pass: the reserved fields of the
 * line's type are read into their slots, every other field must be a number
 * (or null, which is skipped) and becomes a metric under its own name. The
 * names of flattened moe metrics are built in a reused buffer; while the
 * buffer may still move they are kept as offsets and turned into pointers at
 * the end.
 */
#include "mline.h"
#include "tend.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_BYTES 128
#define NO_OFF UINT32_MAX

static const char *const type_names[] = {
	"step", "eval", "heartbeat", "checkpoint", "event",
};

const char *mline_type_name(mline_type t)
{
	return (unsigned)t < sizeof type_names / sizeof type_names[0]
		? type_names[t] : "?";
}

void mline_init(mline *m)
{
	memset(m, 0, sizeof *m);
	m->step = -1;
	m->t = NAN;
	m->ok = -1;
}

void mline_free(mline *m)
{
	if (!m)
		return;
	json_doc_free(m->doc_);
	free(m->names_);
	free(m->name_off_);
	free(m->metrics);
	mline_init(m);
}

/* Empties the parsed fields and keeps the buffers. */
static void reset(mline *m)
{
	m->type = MLINE_STEP;
	m->step = -1;
	m->t = NAN;
	m->n_metrics = 0;
	m->scaffold = m->path = m->sha256 = m->event = m->message = NULL;
	m->ok = -1;
	m->names_len_ = 0;
}

/* ------------------------------------------------------------- messages */

/* A JSON key made printable for a message (keys may hold any character). */
static const char *printable(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != 0x7f)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

/* "field NAME: ..." with the key made printable. */
static int ferr(const char *key, size_t klen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ferr(const char *key, size_t klen, const char *fmt, ...)
{
	char name[160], msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return tend_error_set(TEND_EINVAL, "field %s: %s",
			      printable(name, sizeof name, key, klen), msg);
}

/* A number as the protocol writes it, for messages. */
static const char *num_text(char *out, size_t cap, double d)
{
	if (isnan(d))
		snprintf(out, cap, "NaN");
	else if (isinf(d))
		snprintf(out, cap, d < 0 ? "-Infinity" : "Infinity");
	else
		snprintf(out, cap, "%.17g", d);
	return out;
}

/* "expected WHAT, got TYPE" for a value of the wrong type. */
static int wrong_type(const char *key, size_t klen, const char *what,
		      const json_val *v)
{
	return ferr(key, klen, "expected %s, got %s", what,
		    json_type_name(json_type(v)));
}

/* ------------------------------------------------------------- storage */

static int grow_metrics(mline *m)
{
	size_t cap = m->metrics_cap_ ? m->metrics_cap_ * 2 : 64;
	mline_metric *mt = realloc(m->metrics, cap * sizeof *mt);
	if (!mt)
		return tend_error_set(TEND_ENOMEM, "out of memory for metrics");
	m->metrics = mt;
	uint32_t *off = realloc(m->name_off_, cap * sizeof *off);
	if (!off)
		return tend_error_set(TEND_ENOMEM, "out of memory for metrics");
	m->name_off_ = off;
	m->metrics_cap_ = cap;
	return 0;
}

/* Appends a metric named either by name (stable) or by off into names_. */
static int push_metric(mline *m, const char *name, uint32_t off, double v)
{
	if (m->n_metrics == m->metrics_cap_) {
		int rc = grow_metrics(m);
		if (rc < 0)
			return rc;
	}
	m->metrics[m->n_metrics] = (mline_metric){name, v};
	m->name_off_[m->n_metrics++] = off;
	return 0;
}

static int names_reserve(mline *m, size_t n)
{
	if (m->names_cap_ - m->names_len_ >= n)
		return 0;
	size_t cap = m->names_cap_ ? m->names_cap_ : 1024;
	while (cap - m->names_len_ < n)
		cap *= 2;
	char *nb = realloc(m->names_, cap);
	if (!nb)
		return tend_error_set(TEND_ENOMEM, "out of memory for metric names");
	m->names_ = nb;
	m->names_cap_ = cap;
	return 0;
}

static size_t put_u64(char *d, uint64_t v)
{
	char t[20];
	size_t n = 0;
	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		d[i] = t[n - 1 - i];
	return n;
}

/* Pushes a metric named prefix + key [+ "." + index when index >= 0]. */
static int push_moe(mline *m, const char *pre, size_t plen, const char *key,
		    size_t klen, int64_t index, double v)
{
	int rc = names_reserve(m, plen + klen + 23);
	if (rc < 0)
		return rc;
	size_t off = m->names_len_;
	char *d = m->names_ + off;
	memcpy(d, pre, plen);
	memcpy(d + plen, key, klen);
	d += plen + klen;
	if (index >= 0) {
		*d++ = '.';
		if (index < 10)
			*d++ = (char)('0' + index);
		else
			d += put_u64(d, (uint64_t)index);
	}
	*d++ = '\0';
	m->names_len_ = (size_t)(d - m->names_);
	return push_metric(m, NULL, (uint32_t)off, v);
}

/* ------------------------------------------------------------- fields */

#define KEY_IS(k, n, lit) ((n) == sizeof(lit) - 1 && memcmp((k), lit, (n)) == 0)

/* An integer in [0, 2^53], the range where doubles count exactly. */
static int get_count(const char *key, size_t klen, const json_val *v, int64_t *out)
{
	char t[40];
	if (json_type(v) != JSON_NUM)
		return wrong_type(key, klen, "an integer >= 0", v);
	double d = json_num(v);
	if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d))
		return ferr(key, klen, "expected an integer >= 0, got %s",
			    num_text(t, sizeof t, d));
	*out = (int64_t)d;
	return 0;
}

/* A string without NUL characters (it is handed on as a C string). */
static int get_text(const char *key, size_t klen, const json_val *v,
		    const char **out)
{
	size_t n;
	const char *s = json_str(v, &n);
	if (!s)
		return wrong_type(key, klen, "a string", v);
	if (n == 0)
		return ferr(key, klen, "expected a non-empty string");
	if (strlen(s) != n)
		return ferr(key, klen, "contains a NUL character");
	*out = s;
	return 0;
}

/* Metric names: 1..128 bytes, no control characters (U+0000-U+001F).
 * Keys written without escapes cannot hold those: the parser refuses raw
 * ones. */
static bool name_ok(const char *k, size_t n, bool escaped)
{
	if (n == 0 || n > NAME_MAX_BYTES)
		return false;
	for (size_t i = 0; escaped && i < n; i++)
		if ((unsigned char)k[i] < 0x20)
			return false;
	return true;
}

/* Any other field: a number becomes a metric, null is skipped. */
static int metric(mline *m, const char *k, size_t n, bool esc, const json_val *v)
{
	if (!name_ok(k, n, esc))
		return ferr(k, n, "not a valid metric name (1-%d bytes, no control characters)",
			    NAME_MAX_BYTES);
	if (n >= 4 && memcmp(k, "moe.", 4) == 0)
		return ferr(k, n, "names starting with \"moe.\" are reserved");
	if (json_type(v) == JSON_NULL)
		return 0;
	if (json_type(v) != JSON_NUM)
		return wrong_type(k, n, "a number", v);
	return push_metric(m, k, NO_OFF, json_num(v));
}

static int moe_load(mline *m, size_t li, const char *pre, size_t plen,
		    const json_val *load)
{
	char key[48];
	if (json_type(load) != JSON_ARR) {
		snprintf(key, sizeof key, "moe[%zu].load", li);
		return wrong_type(key, strlen(key), "an array", load);
	}
	for (size_t e = 0; e < json_len(load); e++) {
		const json_val *x = json_at(load, e);
		int rc = 0;
		if (json_type(x) == JSON_NUM)
			rc = push_moe(m, pre, plen, "load", 4, (int64_t)e, json_num(x));
		else if (json_type(x) != JSON_NULL) {
			snprintf(key, sizeof key, "moe[%zu].load[%zu]", li, e);
			rc = wrong_type(key, strlen(key), "a number", x);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* One member of a layer object: load, or a number under moe.L.<key>. */
/* The field name "moe[LI].KEY" for messages; returns its length. */
static size_t moe_ctx(char *out, size_t cap, size_t li, const char *k, size_t n)
{
	snprintf(out, cap, "moe[%zu].%.*s", li, (int)(n < 128 ? n : 128), k);
	return strlen(out);
}

static int moe_member(mline *m, size_t li, const char *pre, size_t plen,
		      const char *k, size_t n, bool esc, const json_val *v)
{
	char ctx[200];
	if (KEY_IS(k, n, "layer"))
		return 0;
	if (KEY_IS(k, n, "load"))
		return moe_load(m, li, pre, plen, v);
	if (!name_ok(k, n, esc))
		return ferr(ctx, moe_ctx(ctx, sizeof ctx, li, k, n),
			    "not a valid metric name");
	if (json_type(v) == JSON_NUM)
		return push_moe(m, pre, plen, k, n, -1, json_num(v));
	if (json_type(v) == JSON_NULL)
		return 0;
	return wrong_type(ctx, moe_ctx(ctx, sizeof ctx, li, k, n), "a number", v);
}

static int moe_layer(mline *m, size_t li, const json_val *el, int64_t *prev)
{
	char key[48], pre[32];
	int64_t layer;
	if (json_type(el) != JSON_OBJ) {
		snprintf(key, sizeof key, "moe[%zu]", li);
		return wrong_type(key, strlen(key), "an object", el);
	}
	const json_val *lv = json_get(el, "layer");
	if (!lv)
		return tend_error_set(TEND_EINVAL, "missing moe[%zu].layer", li);
	int rc = get_count("layer", 5, lv, &layer);
	if (rc < 0) { /* again, to name the field in full */
		snprintf(key, sizeof key, "moe[%zu].layer", li);
		return get_count(key, strlen(key), lv, &layer);
	}
	if (layer <= *prev)
		return tend_error_set(TEND_EINVAL, "field moe[%zu].layer: layers must "
			"be strictly increasing (%lld after %lld)", li,
			(long long)layer, (long long)*prev);
	*prev = layer;
	memcpy(pre, "moe.", 4);
	size_t plen = 4 + put_u64(pre + 4, (uint64_t)layer);
	pre[plen++] = '.';
	for (size_t j = 0; j < json_len(el) && rc == 0; j++) {
		size_t n;
		const char *k = json_key_at(el, j, &n);
		rc = moe_member(m, li, pre, plen, k, n, json__key_escaped(el, j),
				json_at(el, j));
	}
	return rc;
}

static int moe(mline *m, const json_val *v)
{
	int64_t prev = -1;
	if (json_type(v) != JSON_ARR)
		return wrong_type("moe", 3, "an array", v);
	for (size_t i = 0; i < json_len(v); i++) {
		int rc = moe_layer(m, i, json_at(v, i), &prev);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int checkpoint_field(mline *m, const char *k, size_t n, bool esc,
			    const json_val *v)
{
	if (KEY_IS(k, n, "path"))
		return get_text(k, n, v, &m->path);
	if (KEY_IS(k, n, "sha256")) {
		int rc = get_text(k, n, v, &m->sha256);
		if (rc == 0 && (strlen(m->sha256) != 64 ||
				strspn(m->sha256, "0123456789abcdef") != 64))
			rc = ferr(k, n, "expected 64 lowercase hex digits");
		return rc;
	}
	if (KEY_IS(k, n, "bytes")) {
		int64_t b;
		int rc = get_count(k, n, v, &b);
		return rc < 0 ? rc : push_metric(m, k, NO_OFF, (double)b);
	}
	return metric(m, k, n, esc, v);
}

static int event_field(mline *m, const char *k, size_t n, bool esc,
		       const json_val *v)
{
	if (KEY_IS(k, n, "event"))
		return get_text(k, n, v, &m->event);
	if (KEY_IS(k, n, "message")) {
		size_t len;
		m->message = json_str(v, &len);
		return m->message ? 0 : wrong_type(k, n, "a string", v);
	}
	if (KEY_IS(k, n, "ok")) {
		if (json_type(v) != JSON_BOOL)
			return wrong_type(k, n, "a bool", v);
		m->ok = json_bool(v);
		return 0;
	}
	return metric(m, k, n, esc, v);
}

/* One top-level member; "type" was read before. esc: the key held
 * escapes. */
static int field(mline *m, const char *k, size_t n, bool esc, const json_val *v)
{
	if (KEY_IS(k, n, "type"))
		return 0;
	if (KEY_IS(k, n, "step"))
		return get_count(k, n, v, &m->step);
	if (KEY_IS(k, n, "t")) {
		char t[40];
		if (json_type(v) == JSON_NULL)
			return 0;
		if (json_type(v) != JSON_NUM)
			return wrong_type(k, n, "a number", v);
		m->t = json_num(v);
		return isfinite(m->t) ? 0 : ferr(k, n, "expected a finite number, got %s",
						 num_text(t, sizeof t, m->t));
	}
	if (m->type == MLINE_HEARTBEAT)
		return ferr(k, n, "not allowed in a heartbeat line");
	if (KEY_IS(k, n, "scaffold"))
		return get_text(k, n, v, &m->scaffold);
	switch (m->type) {
	case MLINE_STEP:
		return KEY_IS(k, n, "moe") ? moe(m, v) : metric(m, k, n, esc, v);
	case MLINE_CHECKPOINT:
		return checkpoint_field(m, k, n, esc, v);
	case MLINE_EVENT:
		return event_field(m, k, n, esc, v);
	default:
		return metric(m, k, n, esc, v);
	}
}

static int read_type(mline *m, const json_val *root)
{
	const json_val *v = json_get(root, "type");
	size_t n;
	const char *s = json_str(v, &n);
	char q[160];
	if (!v)
		return 0; /* a step line */
	if (!s)
		return wrong_type("type", 4, "a string", v);
	for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
		if (strlen(type_names[i]) == n && memcmp(type_names[i], s, n) == 0) {
			m->type = (mline_type)i;
			return 0;
		}
	return ferr("type", 4, "unknown line type \"%s\"", printable(q, sizeof q, s, n));
}

static int check_required(const mline *m)
{
	if (m->step < 0)
		return tend_error_set(TEND_EINVAL, "missing step");
	if (m->type == MLINE_CHECKPOINT && !m->path)
		return tend_error_set(TEND_EINVAL, "missing path");
	if (m->type == MLINE_EVENT && !m->event)
		return tend_error_set(TEND_EINVAL, "missing event");
	return 0;
}

/* ------------------------------------------------------------- lines */

/* Bytes no text line holds: NUL and other control characters (tab aside),
 * or invalid UTF-8 (a sequence cut by the end of the line is truncation). */
static bool looks_binary(const char *line, size_t len)
{
	const unsigned char *p = (const unsigned char *)line, *end = p + len;
	while (p < end) {
		if (*p < 0x80) {
			if (*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n')
				return true;
			p++;
			continue;
		}
		size_t n = json__utf8_len(p, end);
		if (n == 0)
			return end - p >= 4;
		p += n;
	}
	return false;
}

/* Turns a JSON error into the reason a line is malformed. */
static int json_failure(int rc, const char *line, size_t len, size_t off)
{
	if (rc != TEND_EINVAL)
		return rc;
	if (looks_binary(line, len))
		return tend_error_set(TEND_EINVAL, "binary data");
	if (off >= len)
		return tend_error_set(TEND_EINVAL, "truncated JSON");
	return tend_error_wrap(TEND_EINVAL, "invalid JSON");
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return false;
	return true;
}

static int parse_root(mline *m, const json_val *root)
{
	int rc;
	if (json_type(root) != JSON_OBJ)
		return tend_error_set(TEND_EINVAL, "not a JSON object (got %s)",
				      json_type_name(json_type(root)));
	if ((rc = read_type(m, root)) < 0)
		return rc;
	for (size_t i = 0; i < json_len(root); i++) {
		size_t n;
		const char *k = json_key_at(root, i, &n);
		if ((rc = field(m, k, n, json__key_escaped(root, i), json_at(root, i))) < 0)
			return rc;
	}
	return check_required(m);
}

int mline_parse(mline *m, const char *line, size_t len)
{
	static const json_limits lim = {
		.max_depth = 16, .max_bytes = MLINE_MAX_BYTES, .allow_nonfinite = true,
	};
	size_t off;
	int rc;
	reset(m);
	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	if (len > MLINE_MAX_BYTES) {
		rc = tend_error_set(TEND_EINVAL, "line over 1 MiB");
		goto done;
	}
	if (blank(line, len)) {
		rc = tend_error_set(TEND_EINVAL, "empty line");
		goto done;
	}
	rc = json__parse_reuse(&m->doc_, line, len, &lim, &off);
	if (rc < 0) {
		rc = json_failure(rc, line, len, off);
		goto done;
	}
	if ((rc = parse_root(m, json_root(m->doc_))) < 0)
		goto done;
	for (size_t i = 0; i < m->n_metrics; i++)
		if (m->name_off_[i] != NO_OFF)
			m->metrics[i].name = m->names_ + m->name_off_[i];
done:
	if (rc < 0)
		reset(m);
	return rc;
}

int mline_get(const mline *m, const char *name, double *out)
{
	for (size_t i = 0; i < m->n_metrics; i++)
		if (strcmp(m->metrics[i].name, name) == 0) {
			*out = m->metrics[i].value;
			return 0;
		}
	return tend_error_set(TEND_ENOTFOUND, "no metric %s", name);
}
