/*
 * json.c - the strict JSON parser, its read-only DOM, and the jbuf writer.
 *
 * A document is one allocation sized from the input length before parsing
 * starts: every value, key and element costs at least one input byte plus a
 * separator, so a text of len bytes holds at most (len+1)/2 nodes, and a
 * decoded string (plus its NUL) is never longer than its quoted source.
 * Untouched pages of that bound cost nothing on Linux.
 *
 * The node space is used from both ends: finished children sit at the
 * bottom in document order, values still being parsed are pushed on a stack
 * growing down from the top. When a container closes, its children move from
 * the stack to the bottom, so each array's elements (and each object's
 * key/value pairs) end up contiguous and json_at() is O(1). Every node lives
 * in exactly one of the two regions, so they cannot meet.
 *
 * Numbers: the grammar is checked here, and strtod (slow: it works in
 * arbitrary precision) is avoided for the numbers trainers write. A
 * mantissa m <= 2^53 with a power of ten <= 22 is exact in double
 * arithmetic (Clinger's fast path); up to 19 digits and powers of ten up to
 * 27 are rounded exactly in 128-bit integer arithmetic; anything else goes
 * to strtod. strtod and snprintf follow LC_NUMERIC, which tend never
 * changes from "C".
 */
#include "json.h"
#include "tend.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct json_val {
	uint8_t type;
	bool escaped; /* a string that held escapes (so may hold controls) */
	uint32_t len; /* bytes of a string, elements/members, or a bool */
	union {
		double num;
		const char *str;
		json_val *kids; /* arrays: elements; objects: key, value, ... */
	} u;
};

struct json_doc {
	json_val *root;
	json_val *nodes;
	char *strs;
	size_t cap_nodes, cap_strs;
};

typedef struct parser {
	const char *buf, *p, *end;
	json_val *nodes;
	size_t fin, sp;      /* finished: [0, fin); stack: [sp, cap_nodes) */
	size_t n_nodes, max_nodes, max_depth, max_str;
	char *strs;
	size_t str_len;
	bool nonfinite;
	size_t err_off;
} parser;

/* Objects with more members than this check duplicates with a hash table
 * instead of comparing each new key with all earlier ones. */
#define DUP_LINEAR_MAX 16

static int parse_value(parser *ps, size_t depth);

/* ------------------------------------------------------------- errors */

/* Sets "LINE:COL: msg" for the byte at `at` and returns TEND_EINVAL. */
static int perr(parser *ps, const char *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int perr(parser *ps, const char *at, const char *fmt, ...)
{
	size_t line = 1;
	const char *bol = ps->buf;
	for (const char *q = ps->buf; q < at; q++)
		if (*q == '\n') {
			line++;
			bol = q + 1;
		}
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ps->err_off = (size_t)(at - ps->buf);
	return tend_error_set(TEND_EINVAL, "%zu:%zu: %s%s", line,
			      (size_t)(at - bol) + 1, msg,
			      at >= ps->end ? ", got end of input" : "");
}

/* Quotes s (len bytes) for a message: printable ASCII as is, the rest as
 * \xNN, cut at 64 bytes. */
static const char *quote_for_msg(char *out, size_t cap, const char *s, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i == 64) {
			o += (size_t)snprintf(out + o, cap - o, "...");
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

/* ------------------------------------------------------------- nodes */

/* Counts a value against max_nodes where it starts in the text (a
 * container's own node is pushed only when it closes). */
static int count_node(parser *ps, const char *at)
{
	if (ps->n_nodes >= ps->max_nodes)
		return perr(ps, at, "more than %zu values", ps->max_nodes);
	ps->n_nodes++;
	return 0;
}

/* A fresh node on the stack; its value was counted already. */
static json_val *push(parser *ps, const char *at)
{
	if (ps->sp <= ps->fin) { /* the sizing argument above says never */
		perr(ps, at, "internal error: node space exhausted");
		return NULL;
	}
	json_val *v = &ps->nodes[--ps->sp];
	*v = (json_val){0};
	return v;
}

/* Moves the n nodes on top of the stack (the newest on top) to the
 * finished region in document order; returns where they now start. */
static json_val *settle(parser *ps, size_t n)
{
	json_val *top = &ps->nodes[ps->sp];
	for (size_t i = 0; i < n / 2; i++) {
		json_val t = top[i];
		top[i] = top[n - 1 - i];
		top[n - 1 - i] = t;
	}
	json_val *dst = &ps->nodes[ps->fin];
	memmove(dst, top, n * sizeof *dst);
	ps->fin += n;
	ps->sp += n;
	return n ? dst : NULL;
}

static inline const char *skip_ws(const char *p, const char *end)
{
	if (p < end && (unsigned char)*p > ' ') /* the common case: no blank */
		return p;
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

/* ------------------------------------------------------------- strings */

/* 1 for bytes that stand for themselves inside a string: ASCII from
 * 0x20 except '"' (0x22) and '\\' (0x5c). */
static const uint8_t str_plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
	R16(0), R16(0),
	1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 */
	R16(1), R16(1),
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50 */
	R16(1), R16(1),
	R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c < 0xc2 || c > 0xf4 || (size_t)(end - p) < n)
		return 0;
	if (c == 0xe0) lo = 0xa0;      /* overlong */
	if (c == 0xed) hi = 0x9f;      /* UTF-16 surrogates */
	if (c == 0xf0) lo = 0x90;      /* overlong */
	if (c == 0xf4) hi = 0x8f;      /* past U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

bool json__str_escaped(const json_val *v)
{
	return v && v->type == JSON_STR && v->escaped;
}

bool json__key_escaped(const json_val *obj, size_t i)
{
	return obj && obj->type == JSON_OBJ && i < obj->len && obj->u.kids[2 * i].escaped;
}

size_t json__utf8_len(const unsigned char *p, const unsigned char *end)
{
	return utf8_len(p, end);
}

/* True when [p, end) is the start of a sequence cut off by the end. */
static bool utf8_cut(const char *p, const char *end)
{
	unsigned char c = (unsigned char)*p;
	size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	if (c < 0xc2 || c > 0xf4 || (size_t)(end - p) >= n)
		return false;
	for (const char *q = p + 1; q < end; q++)
		if ((unsigned char)*q < 0x80 || (unsigned char)*q > 0xbf)
			return false;
	return true;
}

static int hex4(const char *p, const char *end, unsigned *out)
{
	unsigned v = 0;
	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return 0;
}

/* True when [p, end) is a \uXXXX escape cut off by the end of input. */
static bool u_cut(const char *p, const char *end)
{
	static const char pat[] = "\\uHHHH";
	if (end - p >= 6)
		return false;
	for (const char *q = p; q < end; q++) {
		char c = pat[q - p];
		bool hex = (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') ||
			   (*q >= 'A' && *q <= 'F');
		if (c == 'H' ? !hex : *q != c)
			return false;
	}
	return true;
}

static char *put_utf8(char *d, unsigned cp)
{
	if (cp < 0x80) {
		*d++ = (char)cp;
	} else if (cp < 0x800) {
		*d++ = (char)(0xc0 | cp >> 6);
		*d++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*d++ = (char)(0xe0 | cp >> 12);
		*d++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*d++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*d++ = (char)(0xf0 | cp >> 18);
		*d++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*d++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*d++ = (char)(0x80 | (cp & 0x3f));
	}
	return d;
}

/* Decodes the \u escape at p (p[0] == '\\', p[1] == 'u'), including a
 * following low surrogate; advances *pp past it. */
static int unescape_u(parser *ps, const char **pp, char **dp)
{
	const char *p = *pp;
	unsigned cp, lo;
	if (u_cut(p, ps->end))
		return perr(ps, ps->end, "expected 4 hex digits after \\u");
	if (hex4(p + 2, ps->end, &cp) < 0)
		return perr(ps, p, "expected 4 hex digits after \\u");
	p += 6;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return perr(ps, p - 6, "lone surrogate \\u%04X", cp);
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (p < ps->end && u_cut(p, ps->end))
			return perr(ps, ps->end, "expected a low surrogate after \\u%04X", cp);
		if ( p[0] != '\\' || p[1] != 'u' ||
		    hex4(p + 2, ps->end, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
			return perr(ps, p - 6, "lone surrogate \\u%04X", cp);
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		p += 6;
	}
	*dp = put_utf8(*dp, cp);
	*pp = p;
	return 0;
}

static int unescape(parser *ps, const char **pp, char **dp)
{
	const char *p = *pp;
	char c = p + 1 < ps->end ? p[1] : 0, r;
	switch (c) {
	case '"': r = '"'; break;
	case '\\': r = '\\'; break;
	case '/': r = '/'; break;
	case 'b': r = '\b'; break;
	case 'f': r = '\f'; break;
	case 'n': r = '\n'; break;
	case 'r': r = '\r'; break;
	case 't': r = '\t'; break;
	case 'u': return unescape_u(ps, pp, dp);
	default:
		if (p + 1 >= ps->end)
			return perr(ps, ps->end, "expected an escape after '\\'");
		if (c > 0x20 && c < 0x7f)
			return perr(ps, p, "invalid escape \\%c", c);
		return perr(ps, p, "invalid escape \\ followed by byte 0x%02x",
			    (unsigned char)c);
	}
	*(*dp)++ = r;
	*pp = p + 2;
	return 0;
}

/* Parses the string at ps->p (which is '"') into the string area and
 * fills v. */
static int parse_string(parser *ps, json_val *v)
{
	const char *start = ps->p, *p = start + 1, *end = ps->end;
	char *d0 = ps->strs + ps->str_len, *d = d0;
	for (;;) {
		const char *run = p;
		while (p < end && str_plain[(unsigned char)*p])
			p++;
		memcpy(d, run, (size_t)(p - run));
		d += p - run;
		if (p >= end)
			return perr(ps, end, "expected '\"' to end the string");
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			break;
		if (c == '\\') {
			int rc = unescape(ps, &p, &d);
			if (rc < 0)
				return rc;
		} else if (c < 0x20) {
			return perr(ps, p, "control character U+%04X in string", c);
		} else {
			size_t n = utf8_len((const unsigned char *)p,
					    (const unsigned char *)end);
			if (n == 0 && utf8_cut(p, end))
				return perr(ps, end, "expected '\"' to end the string");
			if (n == 0)
				return perr(ps, p, "invalid UTF-8 in string");
			memcpy(d, p, n);
			d += n;
			p += n;
		}
	}
	size_t n = (size_t)(d - d0);
	v->escaped = n != (size_t)(p - start - 1);
	if (n > ps->max_str)
		return perr(ps, start, "string longer than %zu bytes", ps->max_str);
	*d = '\0';
	ps->str_len += n + 1;
	ps->p = p + 1;
	v->type = JSON_STR;
	v->len = (uint32_t)n;
	v->u.str = d0;
	return 0;
}

/* ------------------------------------------------------------- numbers */

static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#define POW5_MAX 27 /* 5^27 < 2^63 */

static bool is_digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Eight ASCII digits at p as their value, or -1 when they are not all
 * digits: the SWAR method of simdjson (Lemire), three multiplications
 * instead of eight. */
static int64_t eight_digits(const char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	if (((v & 0xf0f0f0f0f0f0f0f0ull) |
	     (((v + 0x0606060606060606ull) & 0xf0f0f0f0f0f0f0f0ull) >> 4)) !=
	    0x3333333333333333ull)
		return -1;
	v -= 0x3030303030303030ull;
	v = v * 10 + (v >> 8);
	v = ((v & 0x000000ff000000ffull) * (100 + (1000000ull << 32)) +
	     ((v >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32))) >> 32;
	return (int64_t)(uint32_t)v;
}
#else
static int64_t eight_digits(const char *p)
{
	(void)p;
	return -1;
}
#endif

/* Adds the digits at p to m; returns the end of them. More than 19 digits
 * wrap m, but the caller counts them and then leaves m unused. */
static const char *digits(const char *p, const char *end, uint64_t *m)
{
	uint64_t v = *m;
	int64_t x;
	while (end - p >= 8 && (x = eight_digits(p)) >= 0) {
		v = v * 100000000 + (uint64_t)x;
		p += 8;
	}
	for (; p < end; p++) {
		unsigned d = (unsigned)(unsigned char)*p - '0';
		if (d > 9)
			break;
		v = v * 10 + d;
	}
	*m = v;
	return p;
}

#ifdef __SIZEOF_INT128__
typedef unsigned __int128 u128;

/* q (nonzero) as the nearest double, with sticky standing for nonzero bits
 * below q: the top 64 bits keep 11 bits beyond a double's 53, and the
 * lowest of them carries the sticky bit, so the one rounding the
 * conversion does is the correct one. */
/* 2^n for normal results (|n| < 1022), without a libm call. */
static double pow2(int n)
{
	uint64_t bits = (uint64_t)(1023 + n) << 52;
	double d;
	memcpy(&d, &bits, sizeof d);
	return d;
}

static double u128_to_double(u128 q, bool sticky, int scale)
{
	uint64_t hi = (uint64_t)(q >> 64);
	int lz = hi ? __builtin_clzll(hi) : 64 + __builtin_clzll((uint64_t)q);
	q <<= lz;
	uint64_t top = (uint64_t)(q >> 64);
	top |= (uint64_t)((uint64_t)q != 0 || sticky);
	return (double)top * pow2(64 - lz + scale);
}

/* m * 10^e10 correctly rounded, for m < 2^64 and |e10| <= 27, in integer
 * arithmetic: m * 5^e10 is exact in 128 bits; a division by 5^k keeps at
 * least 65 quotient bits and the remainder as the sticky bit. The results
 * (from 1e-27 up) are normal doubles, so scaling by 2^n is exact. */
static double decimal_exact(uint64_t m, int e10)
{
	static const uint64_t pow5[POW5_MAX + 1] = {
		1ull, 5ull, 25ull, 125ull, 625ull, 3125ull, 15625ull, 78125ull,
		390625ull, 1953125ull, 9765625ull, 48828125ull, 244140625ull,
		1220703125ull, 6103515625ull, 30517578125ull, 152587890625ull,
		762939453125ull, 3814697265625ull, 19073486328125ull,
		95367431640625ull, 476837158203125ull, 2384185791015625ull,
		11920928955078125ull, 59604644775390625ull, 298023223876953125ull,
		1490116119384765625ull, 7450580596923828125ull,
	};
	if (e10 >= 0)
		return u128_to_double((u128)m * pow5[e10], false, e10);
	uint64_t p5 = pow5[-e10];
	int s = __builtin_clzll(m);
	u128 n = (u128)(m << s) << 64;
	u128 q = n / p5;
	return u128_to_double(q, n % p5 != 0, e10 - 64 - s);
}
#endif

/* Converts the checked number text [s, e) that the fast paths declined.
 * The free tail of the string area is long enough to hold a copy: strings
 * so far decode to no more bytes than the input before s. */
static int slow_number(parser *ps, const char *s, const char *e, double *out)
{
	char *tmp = ps->strs + ps->str_len;
	memcpy(tmp, s, (size_t)(e - s));
	tmp[e - s] = '\0';
	*out = strtod(tmp, NULL);
	if (isinf(*out))
		return perr(ps, s, "number out of range");
	return 0;
}

/* The decimal m * 10^e10 (nd digits in m) as a double, when that can be
 * done exactly without strtod; returns false otherwise. */
static bool fast_decimal(uint64_t m, int nd, int e10, double *out)
{
	if (nd > 19 || e10 < -POW5_MAX || e10 > POW5_MAX)
		return false;
	if (m == 0) {
		*out = 0;
	} else if (m <= (1ull << 53) && e10 >= -22 && e10 <= 22) {
		/* Clinger: both operands exact, so one rounding */
		double d = (double)m;
		*out = e10 < 0 ? d / pow10_exact[-e10] : d * pow10_exact[e10];
	} else {
#ifdef __SIZEOF_INT128__
		*out = decimal_exact(m, e10);
#else
		return false;
#endif
	}
	return true;
}

/* Checks the grammar and gathers up to 19 digits into m (more digits make
 * nd > 19, and the slow path takes over). */
static int parse_number(parser *ps, json_val *v)
{
	const char *s = ps->p, *p = s, *end = ps->end;
	uint64_t m = 0;
	int nd = 0, e10 = 0;
	bool neg = *p == '-';
	if (neg)
		p++;
	if (!is_digit(p, end))
		return perr(ps, p, "expected a digit after '-'");
	if (*p == '0') {
		if (is_digit(++p, end))
			return perr(ps, p - 1, "leading zero in number");
	} else {
		const char *d = p;
		p = digits(p, end, &m);
		nd = (int)(p - d < 99 ? p - d : 99);
	}
	if (p < end && *p == '.') {
		const char *f = ++p;
		if (nd == 0) /* 0.000ddd: the zeros only scale */
			while (p < end && *p == '0')
				p++;
		const char *d = p;
		p = digits(p, end, &m);
		nd += (int)(p - d < 99 ? p - d : 99);
		if (p == f)
			return perr(ps, p, "expected a digit after '.'");
		if (p - f > 1000)
			nd = 99; /* leave it to strtod */
		else
			e10 = -(int)(p - f);
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		bool eneg = p < end && *p == '-';
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return perr(ps, p, "expected a digit in the exponent");
		int x = 0;
		for (; is_digit(p, end); p++)
			if (x < 100000)
				x = x * 10 + (*p - '0');
		e10 += eneg ? -x : x;
	}
	v->type = JSON_NUM;
	ps->p = p;
	if (fast_decimal(m, nd, e10, &v->u.num)) {
		if (neg)
			v->u.num = -v->u.num;
		return 0;
	}
	return slow_number(ps, s, p, &v->u.num);
}

/* NaN, Infinity, -Infinity when allowed, and true/false/null. */
static int parse_word(parser *ps, json_val *v)
{
	static const struct {
		const char *w;
		size_t n;
		uint8_t type;
		double num;
		bool nonfinite;
	} words[] = {
		{"true", 4, JSON_BOOL, 1, false}, {"false", 5, JSON_BOOL, 0, false},
		{"null", 4, JSON_NULL, 0, false}, {"NaN", 3, JSON_NUM, NAN, true},
		{"Infinity", 8, JSON_NUM, INFINITY, true},
		{"-Infinity", 9, JSON_NUM, -INFINITY, true},
	};
	size_t avail = (size_t)(ps->end - ps->p);
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
		if (words[i].nonfinite && !ps->nonfinite)
			continue;
		if (avail < words[i].n) {
			/* a cut-off word is a truncation: say so at the end */
			if (avail && memcmp(ps->p, words[i].w, avail) == 0)
				return perr(ps, ps->end, "expected '%s'", words[i].w);
			continue;
		}
		if (memcmp(ps->p, words[i].w, words[i].n))
			continue;
		v->type = words[i].type;
		if (v->type == JSON_NUM)
			v->u.num = words[i].num;
		else
			v->len = (uint32_t)words[i].num;
		ps->p += words[i].n;
		return 0;
	}
	return perr(ps, ps->p, "expected a value");
}

/* ------------------------------------------------------------- containers */

static int enter(parser *ps, size_t depth)
{
	if (depth >= ps->max_depth)
		return perr(ps, ps->p, "nesting deeper than %zu", ps->max_depth);
	return count_node(ps, ps->p);
}

/* Pushes the finished container (its n children on the stack). */
static int close_container(parser *ps, const char *at, uint8_t type, size_t n)
{
	size_t count = type == JSON_OBJ ? n / 2 : n;
	if (count > UINT32_MAX)
		return perr(ps, at, "container with more than %u elements",
			    UINT32_MAX);
	json_val *kids = settle(ps, n);
	json_val *v = push(ps, at);
	if (!v)
		return TEND_EINVAL;
	v->type = type;
	v->len = (uint32_t)count;
	v->u.kids = kids;
	return 0;
}

static int parse_array(parser *ps, size_t depth)
{
	const char *open = ps->p;
	size_t base = ps->sp;
	int rc = enter(ps, depth);
	if (rc < 0)
		return rc;
	ps->p = skip_ws(ps->p + 1, ps->end);
	if (ps->p < ps->end && *ps->p == ']') {
		ps->p++;
		return close_container(ps, open, JSON_ARR, 0);
	}
	for (;;) {
		if ((rc = parse_value(ps, depth + 1)) < 0)
			return rc;
		ps->p = skip_ws(ps->p, ps->end);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p = skip_ws(ps->p + 1, ps->end);
			continue;
		}
		if (ps->p < ps->end && *ps->p == ']')
			break;
		return perr(ps, ps->p, "expected ',' or ']' after array element");
	}
	ps->p++;
	return close_container(ps, open, JSON_ARR, base - ps->sp);
}

static uint32_t key_hash(const json_val *k)
{
	uint32_t h = 2166136261u;
	for (uint32_t i = 0; i < k->len; i++)
		h = (h ^ (unsigned char)k->u.str[i]) * 16777619u;
	return h;
}

static bool key_eq(const json_val *a, const json_val *b)
{
	return a->len == b->len && memcmp(a->u.str, b->u.str, a->len) == 0;
}

/* Duplicate-key check for one object: linear while small, then an
 * open-addressing table of member ordinals (+1; 0 is empty). */
typedef struct dupset {
	const json_val *top; /* key i is top[-1 - 2 * i] (the stack grows down) */
	uint32_t *slots;
	size_t cap, n;
} dupset;

static int dup_insert_slot(dupset *ds, size_t i)
{
	const json_val *k = ds->top - 1 - 2 * i;
	size_t mask = ds->cap - 1;
	for (size_t h = key_hash(k) & mask;; h = (h + 1) & mask) {
		if (!ds->slots[h]) {
			ds->slots[h] = (uint32_t)i + 1;
			return 0;
		}
		if (key_eq(ds->top - 1 - 2 * (ds->slots[h] - 1), k))
			return 1;
	}
}

static int dup_grow(dupset *ds, size_t want)
{
	size_t cap = 64;
	while (cap < want * 2)
		cap *= 2;
	uint32_t *slots = calloc(cap, sizeof *slots);
	if (!slots)
		return tend_error_set(TEND_ENOMEM, "out of memory checking keys");
	free(ds->slots);
	ds->slots = slots;
	ds->cap = cap;
	for (size_t i = 0; i < ds->n; i++)
		dup_insert_slot(ds, i);
	return 0;
}

/* Adds key number ds->n; returns 1 when it repeats an earlier key. */
static int dup_add(dupset *ds)
{
	const json_val *k = ds->top - 1 - 2 * ds->n;
	if (ds->n < DUP_LINEAR_MAX) {
		for (size_t i = 0; i < ds->n; i++)
			if (key_eq(ds->top - 1 - 2 * i, k))
				return 1;
		ds->n++;
		return 0;
	}
	if ((ds->n + 1) * 2 > ds->cap) {
		int rc = dup_grow(ds, ds->n + 1);
		if (rc < 0)
			return rc;
	}
	int dup = dup_insert_slot(ds, ds->n);
	if (!dup)
		ds->n++;
	return dup;
}

/* Kept out of parse_member so that recursion does not carry the buffer. */
static __attribute__((noinline)) int dup_error(parser *ps, const char *at,
					       const json_val *k)
{
	char q[300];
	return perr(ps, at, "duplicate key \"%s\"",
		    quote_for_msg(q, sizeof q, k->u.str, k->len));
}

static int parse_member(parser *ps, size_t depth, dupset *ds)
{
	const char *at = ps->p;
	if (at >= ps->end || *at != '"')
		return perr(ps, at, "expected '\"' to start an object key");
	json_val *k = count_node(ps, at) < 0 ? NULL : push(ps, at);
	if (!k)
		return TEND_EINVAL;
	int rc = parse_string(ps, k);
	if (rc < 0)
		return rc;
	if ((rc = dup_add(ds)) != 0)
		return rc < 0 ? rc : dup_error(ps, at, k);
	ps->p = skip_ws(ps->p, ps->end);
	if (ps->p >= ps->end || *ps->p != ':')
		return perr(ps, ps->p, "expected ':' after object key");
	ps->p = skip_ws(ps->p + 1, ps->end);
	return parse_value(ps, depth + 1);
}

static int parse_object(parser *ps, size_t depth)
{
	const char *open = ps->p;
	size_t base = ps->sp;
	dupset ds = {&ps->nodes[base], NULL, 0, 0};
	int rc = enter(ps, depth);
	if (rc < 0)
		return rc;
	ps->p = skip_ws(ps->p + 1, ps->end);
	if (ps->p < ps->end && *ps->p == '}') {
		ps->p++;
		return close_container(ps, open, JSON_OBJ, 0);
	}
	for (;;) {
		if ((rc = parse_member(ps, depth, &ds)) < 0)
			goto done;
		ps->p = skip_ws(ps->p, ps->end);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p = skip_ws(ps->p + 1, ps->end);
			continue;
		}
		if (ps->p < ps->end && *ps->p == '}')
			break;
		rc = perr(ps, ps->p, "expected ',' or '}' after object member");
		goto done;
	}
	ps->p++;
	rc = close_container(ps, open, JSON_OBJ, base - ps->sp);
done:
	free(ds.slots);
	return rc;
}

static int parse_value(parser *ps, size_t depth)
{
	const char *at = ps->p;
	if (at >= ps->end)
		return perr(ps, at, "expected a value");
	switch (*at) {
	case '{': return parse_object(ps, depth);
	case '[': return parse_array(ps, depth);
	default: break;
	}
	json_val *v = count_node(ps, at) < 0 ? NULL : push(ps, at);
	if (!v)
		return TEND_EINVAL;
	if (*at == '"')
		return parse_string(ps, v);
	if (*at == '-' && ps->nonfinite && at + 1 < ps->end && at[1] == 'I')
		return parse_word(ps, v);
	if (*at == '-' || (*at >= '0' && *at <= '9'))
		return parse_number(ps, v);
	return parse_word(ps, v);
}

/* ------------------------------------------------------------- documents */

static int doc_reserve(json_doc **doc, size_t len, size_t max_nodes)
{
	size_t nodes = len / 2 + 2, strs = len + 1;
	if (nodes > max_nodes + 1)
		nodes = max_nodes + 1;
	json_doc *d = *doc;
	if (d && d->cap_nodes >= nodes && d->cap_strs >= strs)
		return 0;
	if (d) { /* grow by half again, so that a stream of lines settles */
		nodes += nodes / 2;
		strs += strs / 2;
	}
	free(d);
	*doc = NULL;
	if (nodes > (SIZE_MAX - sizeof *d - strs) / sizeof(json_val))
		return tend_error_set(TEND_ENOMEM, "JSON text too large");
	d = malloc(sizeof *d + nodes * sizeof(json_val) + strs);
	if (!d)
		return tend_error_set(TEND_ENOMEM,
			"out of memory for a %zu-byte JSON document", len);
	d->nodes = (json_val *)(d + 1);
	d->strs = (char *)(d->nodes + nodes);
	d->cap_nodes = nodes;
	d->cap_strs = strs;
	d->root = NULL;
	*doc = d;
	return 0;
}

static void limits_resolve(parser *ps, const json_limits *lim, size_t *max_bytes)
{
	static const json_limits none;
	if (!lim)
		lim = &none;
	*max_bytes = lim->max_bytes ? lim->max_bytes : JSON_DEFAULT_BYTES;
	ps->max_depth = lim->max_depth ? lim->max_depth : JSON_DEFAULT_DEPTH;
	if (ps->max_depth > JSON_MAX_DEPTH)
		ps->max_depth = JSON_MAX_DEPTH;
	ps->max_str = lim->max_str ? lim->max_str : *max_bytes;
	if (ps->max_str > UINT32_MAX)
		ps->max_str = UINT32_MAX;
	ps->max_nodes = lim->max_nodes ? lim->max_nodes : SIZE_MAX - 2;
	ps->nonfinite = lim->allow_nonfinite;
}

int json__parse_reuse(json_doc **doc, const char *buf, size_t len,
		      const json_limits *lim, size_t *err_off)
{
	parser ps = {0};
	size_t max_bytes;
	limits_resolve(&ps, lim, &max_bytes);
	if (*doc)
		(*doc)->root = NULL;
	if (err_off)
		*err_off = 0;
	if (len > max_bytes)
		return tend_error_set(TEND_EINVAL,
			"JSON text of %zu bytes is over the limit of %zu", len, max_bytes);
	int rc = doc_reserve(doc, len, ps.max_nodes);
	if (rc < 0)
		return rc;
	json_doc *d = *doc;
	ps.buf = buf;
	ps.end = buf + len;
	ps.nodes = d->nodes;
	ps.sp = d->cap_nodes;
	ps.strs = d->strs;
	ps.p = skip_ws(buf, ps.end);
	rc = parse_value(&ps, 0);
	if (rc == 0) {
		ps.p = skip_ws(ps.p, ps.end);
		if (ps.p < ps.end)
			rc = perr(&ps, ps.p, "expected end of input after the value");
	}
	if (rc < 0) {
		if (err_off)
			*err_off = ps.err_off;
		return rc;
	}
	d->root = &ps.nodes[ps.sp];
	return 0;
}

int json_parse(json_doc **out, const char *buf, size_t len, const json_limits *lim)
{
	json_doc *d = NULL;
	int rc = json__parse_reuse(&d, buf, len, lim, NULL);
	if (rc < 0) {
		free(d);
		d = NULL;
	}
	*out = d;
	return rc;
}

void json_doc_free(json_doc *doc)
{
	free(doc);
}

/* ------------------------------------------------------------- accessors */

const json_val *json_root(const json_doc *doc)
{
	return doc ? doc->root : NULL;
}

json_kind json_type(const json_val *v)
{
	return v ? (json_kind)v->type : JSON_NULL;
}

double json_num(const json_val *v)
{
	return v && v->type == JSON_NUM ? v->u.num : 0;
}

bool json_bool(const json_val *v)
{
	return v && v->type == JSON_BOOL && v->len;
}

const char *json_str(const json_val *v, size_t *len)
{
	bool ok = v && v->type == JSON_STR;
	if (len)
		*len = ok ? v->len : 0;
	return ok ? v->u.str : NULL;
}

size_t json_len(const json_val *v)
{
	return v && (v->type == JSON_ARR || v->type == JSON_OBJ) ? v->len : 0;
}

const json_val *json_at(const json_val *v, size_t i)
{
	if (!v || i >= json_len(v))
		return NULL;
	return v->type == JSON_ARR ? &v->u.kids[i] : &v->u.kids[2 * i + 1];
}

const char *json_key_at(const json_val *v, size_t i, size_t *len)
{
	if (!v || v->type != JSON_OBJ || i >= v->len) {
		if (len)
			*len = 0;
		return NULL;
	}
	return json_str(&v->u.kids[2 * i], len);
}

const json_val *json_get(const json_val *obj, const char *key)
{
	if (!obj || obj->type != JSON_OBJ)
		return NULL;
	size_t n = strlen(key);
	for (uint32_t i = 0; i < obj->len; i++) {
		const json_val *k = &obj->u.kids[2 * i];
		if (k->len == n && memcmp(k->u.str, key, n) == 0)
			return &obj->u.kids[2 * i + 1];
	}
	return NULL;
}

const char *json_type_name(json_kind t)
{
	switch (t) {
	case JSON_NULL: return "null";
	case JSON_BOOL: return "a bool";
	case JSON_NUM: return "a number";
	case JSON_STR: return "a string";
	case JSON_ARR: return "an array";
	case JSON_OBJ: return "an object";
	}
	return "?";
}

/* Looks key up and checks its type; the shared half of json_get_*. */
static int get_typed(const json_val *obj, const char *key, json_kind want,
		     const char *what, const json_val **out)
{
	const json_val *v = json_get(obj, key);
	if (!v)
		return tend_error_set(TEND_ENOTFOUND, "missing field %s", key);
	if (v->type != want)
		return tend_error_set(TEND_EINVAL, "field %s: expected %s, got %s",
				      key, what, json_type_name(json_type(v)));
	*out = v;
	return 0;
}

int json_get_num(const json_val *obj, const char *key, double *out)
{
	const json_val *v = NULL;
	int rc = get_typed(obj, key, JSON_NUM, "a number", &v);
	if (rc == 0)
		*out = v->u.num;
	return rc;
}

int json_get_str(const json_val *obj, const char *key, const char **out)
{
	const json_val *v = NULL;
	int rc = get_typed(obj, key, JSON_STR, "a string", &v);
	if (rc == 0)
		*out = v->u.str;
	return rc;
}

int json_get_bool(const json_val *obj, const char *key, bool *out)
{
	const json_val *v = NULL;
	int rc = get_typed(obj, key, JSON_BOOL, "a bool", &v);
	if (rc == 0)
		*out = v->len != 0;
	return rc;
}

int json_get_int(const json_val *obj, const char *key, int64_t *out)
{
	const json_val *v = NULL;
	int rc = get_typed(obj, key, JSON_NUM, "an integer", &v);
	if (rc < 0)
		return rc;
	double d = v->u.num;
	/* 2^63 is exact in a double; the range is [-2^63, 2^63). */
	if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) ||
	    d != floor(d))
		return tend_error_set(TEND_EINVAL,
			"field %s: expected an integer, got %.17g", key, d);
	*out = (int64_t)d;
	return 0;
}

/* ------------------------------------------------------------- writer */

void jbuf_init(jbuf *b)
{
	memset(b, 0, sizeof *b);
}

void jbuf_free(jbuf *b)
{
	free(b->buf);
	jbuf_init(b);
}

void jbuf_reset(jbuf *b)
{
	b->len = 0;
	if (b->buf)
		b->buf[0] = '\0';
	b->err = 0;
	b->need_comma = false;
}

const char *jbuf_cstr(const jbuf *b, size_t *len)
{
	if (len)
		*len = b->len;
	return b->buf ? b->buf : "";
}

/* Makes room for n more bytes and the NUL. */
static int jb_reserve(jbuf *b, size_t n)
{
	if (b->err)
		return b->err;
	if (n < b->cap - b->len) /* cap > len whenever cap > 0 */
		return 0;
	size_t need = b->len + n + 1, cap = b->cap ? b->cap : 64;
	if (need < n || need > SIZE_MAX / 2 || (b->max && need > b->max + 1))
		return b->err = tend_error_set(TEND_ENOMEM,
			"JSON text would exceed %zu bytes", b->max);
	while (cap < need)
		cap *= 2;
	if (b->max && cap > b->max + 1)
		cap = b->max + 1;
	char *nb = realloc(b->buf, cap);
	if (!nb)
		return b->err = tend_error_set(TEND_ENOMEM,
			"out of memory growing JSON text to %zu bytes", cap);
	b->buf = nb;
	b->cap = cap;
	return 0;
}

static void jb_put(jbuf *b, const char *s, size_t n)
{
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

/* Writes the comma a new value or key needs, then s. On failure rolls the
 * text back to what it was, so the buffer stays valid. */
static int jb_item(jbuf *b, const char *s, size_t n, bool completes)
{
	int rc = jb_reserve(b, n + b->need_comma);
	if (rc < 0)
		return rc;
	if (b->need_comma)
		jb_put(b, ",", 1);
	jb_put(b, s, n);
	b->need_comma = completes;
	return 0;
}

int jbuf_obj_open(jbuf *b) { return jb_item(b, "{", 1, false); }
int jbuf_arr_open(jbuf *b) { return jb_item(b, "[", 1, false); }

static int jb_close(jbuf *b, char c)
{
	int rc = jb_reserve(b, 1);
	if (rc < 0)
		return rc;
	jb_put(b, &c, 1);
	b->need_comma = true;
	return 0;
}

int jbuf_obj_close(jbuf *b) { return jb_close(b, '}'); }
int jbuf_arr_close(jbuf *b) { return jb_close(b, ']'); }

/* The length of s written as a JSON string, quotes included. */
static size_t quoted_len(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + len;
	size_t n = 2;
	while (p < e) {
		unsigned char c = *p;
		size_t u = c >= 0x80 ? utf8_len(p, e) : 1;
		if (c >= 0x80)
			n += u ? u : 6; /* invalid bytes become \ufffd */
		else if (c == '"' || c == '\\' || c == '\n' || c == '\r' ||
			 c == '\t' || c == '\b' || c == '\f')
			n += 2;
		else
			n += c < 0x20 ? 6 : 1;
		p += u ? u : 1;
	}
	return n;
}

/* Appends s as a quoted, escaped string; the caller reserved nothing. */
static int jb_quoted(jbuf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	int rc = jb_reserve(b, quoted_len(s, len));
	if (rc < 0)
		return rc;
	char *d = b->buf + b->len;
	const unsigned char *p = (const unsigned char *)s, *e = p + len;
	*d++ = '"';
	while (p < e) {
		unsigned char c = *p;
		if (c >= 0x80) {
			size_t n = utf8_len(p, e);
			if (n == 0) {
				memcpy(d, "\\ufffd", 6);
				d += 6;
				p++;
			} else {
				memcpy(d, p, n);
				d += n;
				p += n;
			}
			continue;
		}
		p++;
		if (c >= 0x20 && c != '"' && c != '\\') {
			*d++ = (char)c;
			continue;
		}
		*d++ = '\\';
		switch (c) {
		case '"': *d++ = '"'; break;
		case '\\': *d++ = '\\'; break;
		case '\n': *d++ = 'n'; break;
		case '\r': *d++ = 'r'; break;
		case '\t': *d++ = 't'; break;
		case '\b': *d++ = 'b'; break;
		case '\f': *d++ = 'f'; break;
		default:
			memcpy(d, "u00", 3);
			d[3] = hex[c >> 4];
			d[4] = hex[c & 15];
			d += 5;
		}
	}
	*d++ = '"';
	*d = '\0';
	b->len = (size_t)(d - b->buf);
	return 0;
}

static int jb_string_item(jbuf *b, const char *s, size_t len, bool is_key)
{
	size_t mark = b->len;
	bool comma = b->need_comma;
	int rc = jb_reserve(b, comma);
	if (rc < 0)
		return rc;
	if (comma)
		jb_put(b, ",", 1);
	if ((rc = jb_quoted(b, s, len)) == 0 && is_key) {
		if ((rc = jb_reserve(b, 1)) == 0)
			jb_put(b, ":", 1);
	}
	if (rc < 0) {
		b->len = mark;
		b->buf[mark] = '\0';
		return rc;
	}
	b->need_comma = !is_key;
	return 0;
}

int jbuf_key(jbuf *b, const char *key)
{
	return jb_string_item(b, key, strlen(key), true);
}

int jbuf_str(jbuf *b, const char *s)
{
	return jb_string_item(b, s, strlen(s), false);
}

int jbuf_strn(jbuf *b, const char *s, size_t len)
{
	return jb_string_item(b, s, len, false);
}

/* Writes a non-finite value as its token; returns 1 when v was finite. */
static int jb_nonfinite(jbuf *b, double v)
{
	if (isnan(v))
		return jb_item(b, "NaN", 3, true);
	if (isinf(v))
		return v < 0 ? jb_item(b, "-Infinity", 9, true)
			     : jb_item(b, "Infinity", 8, true);
	return 1;
}

int jbuf_num(jbuf *b, double v)
{
	char tmp[40];
	int rc = jb_nonfinite(b, v), n = 0;
	if (rc <= 0)
		return rc;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	return jb_item(b, tmp, (size_t)n, true);
}

int jbuf_num_f(jbuf *b, float v)
{
	char tmp[40];
	int rc = jb_nonfinite(b, v), n = 0;
	if (rc <= 0)
		return rc;
	for (int prec = 6; prec <= 9; prec++) {
		n = snprintf(tmp, sizeof tmp, "%.*g", prec, (double)v);
		if (strtof(tmp, NULL) == v)
			break;
	}
	return jb_item(b, tmp, (size_t)n, true);
}

int jbuf_int(jbuf *b, int64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
	return jb_item(b, tmp, (size_t)n, true);
}

int jbuf_bool(jbuf *b, bool v)
{
	return v ? jb_item(b, "true", 4, true) : jb_item(b, "false", 5, true);
}

int jbuf_null(jbuf *b)
{
	return jb_item(b, "null", 4, true);
}

int jbuf_raw(jbuf *b, const char *text, size_t len)
{
	return jb_item(b, text, len, true);
}
