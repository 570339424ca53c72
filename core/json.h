/*
 * json.h - strict RFC 8259 JSON: a parser into a read-only DOM, and a writer.
 *
 * The parser accepts exactly RFC 8259 (UTF-8 text, no comments, no trailing
 * commas, no leading zeros, no duplicate object keys) and rejects anything
 * else with a message "LINE:COL: what was expected". Each document lives in
 * one allocation: every node, key and decoded string points into it and is
 * valid until json_doc_free(). The one extension, off by default, is
 * json_limits.allow_nonfinite: the bare tokens NaN, Infinity and -Infinity
 * as numbers, which Python's json module writes.
 *
 * The writer (jbuf) builds JSON text in a growable buffer and inserts the
 * commas itself.
 */
#ifndef TEND_JSON_H
#define TEND_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct json_doc json_doc;
typedef struct json_val json_val;

/* What json_type() returns. */
typedef enum {
	JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ
} json_kind;

/* Limits on what json_parse accepts. A zero field means the default. */
typedef struct json_limits {
	size_t max_depth;     /* nesting of arrays/objects; default 64, at most 1024 */
	size_t max_bytes;     /* input size; default 64 MiB */
	size_t max_str;       /* decoded bytes of one string or key; default max_bytes */
	size_t max_nodes;     /* values + keys in the document; default no limit */
	bool allow_nonfinite; /* accept NaN, Infinity, -Infinity (default false) */
} json_limits;

#define JSON_DEFAULT_DEPTH 64
#define JSON_MAX_DEPTH 1024
#define JSON_DEFAULT_BYTES ((size_t)64 << 20)

/* Parses buf[0..len) (need not be NUL-terminated) into *out. lim may be
 * NULL for the defaults. Returns 0, TEND_EINVAL with "LINE:COL: message"
 * (lines and columns count from 1, columns in bytes), or TEND_ENOMEM. On
 * failure *out is NULL. Free with json_doc_free(). */
int json_parse(json_doc **out, const char *buf, size_t len, const json_limits *lim);

void json_doc_free(json_doc *doc);

/* The document's top-level value (never NULL for a parsed doc). */
const json_val *json_root(const json_doc *doc);

/* Accessors. All accept NULL and values of the wrong type, and then return
 * JSON_NULL / 0 / false / NULL, so lookups can be chained. */
json_kind json_type(const json_val *v);
double json_num(const json_val *v);
bool json_bool(const json_val *v);
/* Decoded UTF-8, NUL-terminated (it may hold NULs from \u0000: use *len). */
const char *json_str(const json_val *v, size_t *len);
/* Elements of an array, members of an object; 0 for other types. */
size_t json_len(const json_val *v);
/* Element i of an array, or the value of member i of an object. */
const json_val *json_at(const json_val *v, size_t i);
/* The key of member i of an object (NUL-terminated), else NULL. */
const char *json_key_at(const json_val *v, size_t i, size_t *len);
/* The value of obj's member named key, or NULL when absent (linear scan). */
const json_val *json_get(const json_val *obj, const char *key);

/* Typed member lookups. Return 0, TEND_ENOTFOUND when the key is absent
 * (or obj is not an object), TEND_EINVAL with "field KEY: expected ..."
 * when the value has the wrong type. *out is untouched on failure. */
int json_get_num(const json_val *obj, const char *key, double *out);
int json_get_str(const json_val *obj, const char *key, const char **out);
/* Accepts only numbers with an exact integer value in int64 range. */
int json_get_int(const json_val *obj, const char *key, int64_t *out);
int json_get_bool(const json_val *obj, const char *key, bool *out);

/* The name of a type, for messages: "null", "a bool", "a number", ... */
const char *json_type_name(json_kind t);

/*
 * Core-internal: like json_parse, but reuses *doc's allocation when it is
 * large enough (*doc may be NULL or a document from an earlier call; it is
 * replaced either way), and on a syntax error stores the byte offset of the
 * error in *err_off. Used by mline to parse line after line without
 * allocating. On failure *doc stays allocated but holds no document.
 */
int json__parse_reuse(json_doc **doc, const char *buf, size_t len,
		      const json_limits *lim, size_t *err_off);

/* Core-internal: whether a string value, or the key of member i, was
 * written with escapes. Only such strings can hold control characters
 * (the parser rejects raw ones), so checks for them can skip the rest. */
bool json__str_escaped(const json_val *v);
bool json__key_escaped(const json_val *obj, size_t i);

/* Core-internal: the length of the valid UTF-8 sequence starting at p
 * (p < end, *p >= 0x80), or 0 when it is invalid or cut off by end. */
size_t json__utf8_len(const unsigned char *p, const unsigned char *end);

/* ------------------------------------------------------------------ writer */

/* A growable text buffer; a value type, set up with jbuf_init. The first
 * failure is sticky: later calls return it and write nothing, and the text
 * stays what it was before the failed call (valid, NUL-terminated). */
typedef struct jbuf {
	char *buf;
	size_t len, cap;
	size_t max;      /* growth past max bytes fails with TEND_ENOMEM; 0: none */
	int err;         /* the first error, or 0 */
	bool need_comma; /* a value was just completed at this level */
} jbuf;

void jbuf_init(jbuf *b);
void jbuf_free(jbuf *b);
/* Empties the text, keeps the allocation, and clears the error. */
void jbuf_reset(jbuf *b);
/* The text so far: NUL-terminated, never NULL; *len may be NULL. Owned by b. */
const char *jbuf_cstr(const jbuf *b, size_t *len);

/* Each returns 0 or the (sticky) error: TEND_ENOMEM. */
int jbuf_obj_open(jbuf *b);
int jbuf_obj_close(jbuf *b);
int jbuf_arr_open(jbuf *b);
int jbuf_arr_close(jbuf *b);
int jbuf_key(jbuf *b, const char *key);
/* Strings are escaped; invalid UTF-8 bytes are written as U+FFFD. */
int jbuf_str(jbuf *b, const char *s);
int jbuf_strn(jbuf *b, const char *s, size_t len);
/* The shortest of %.15g/%.16g/%.17g that reads back as the same double;
 * NaN, Infinity, -Infinity as bare tokens. */
int jbuf_num(jbuf *b, double v);
/* Same for a float: the shortest of %.6g..%.9g that reads back exactly. */
int jbuf_num_f(jbuf *b, float v);
int jbuf_int(jbuf *b, int64_t v);
int jbuf_bool(jbuf *b, bool v);
int jbuf_null(jbuf *b);
/* Writes text as one value, unchecked (it must be valid JSON). */
int jbuf_raw(jbuf *b, const char *text, size_t len);

#endif
