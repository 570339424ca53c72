/*
 * propose_redact.c - takes secrets out of text before a model sees it.
 *
 * Trainer output is shown to a model that may be hosted elsewhere, and a
 * training script may well print its environment. The rules are
 * deliberately greedy (a false positive costs a few characters of log, a
 * miss leaks a credential): known token shapes (sk-..., ghp_..., AKIA...),
 * "Bearer <token>", the value of anything named like a secret, user:pass@
 * in URLs, and PEM private key lines. Each secret becomes "[REDACTED]".
 */
#include "propose_int.h"
#include "tend.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;

#define MARK "[REDACTED]"

/* Prefixes of API tokens with the fewest characters that follow them. */
static const struct {
	const char *prefix;
	size_t min_rest;
} token_shapes[] = {
	{"sk-", 16}, {"ghp_", 20}, {"gho_", 20}, {"ghu_", 20}, {"ghs_", 20},
	{"ghr_", 20}, {"github_pat_", 20}, {"xoxb-", 10}, {"xoxp-", 10},
	{"xoxa-", 10}, {"xoxs-", 10}, {"hf_", 16}, {"glpat-", 16}, {"AIza", 30},
	{"AKIA", 16}, {"ASIA", 16},
};

/* Names whose value is a secret: matched against the end of a name. */
static const char *const secret_names[] = {
	"key", "token", "secret", "password", "passwd", "pwd", "credential",
	"credentials", "auth", "authorization", "apikey",
};

static bool tok_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-';
}

static bool name_char(char c)
{
	return tok_char(c) || c == '.';
}

/* Characters of a bearer token or an opaque value (base64 included). */
static bool val_char(char c)
{
	return tok_char(c) || c == '.' || c == '~' || c == '+' || c == '/' || c == '=';
}

static size_t span(const char *s, size_t n, size_t i, bool (*in)(char))
{
	size_t j = i;
	while (j < n && in(s[j]))
		j++;
	return j - i;
}

/* A known token shape at s[i]: its length, else 0. */
static size_t token_at(const char *s, size_t n, size_t i)
{
	for (size_t k = 0; k < sizeof token_shapes / sizeof token_shapes[0]; k++) {
		size_t pl = strlen(token_shapes[k].prefix);
		if (n - i < pl || memcmp(s + i, token_shapes[k].prefix, pl) != 0)
			continue;
		size_t rest = span(s, n, i + pl, tok_char);
		if (rest >= token_shapes[k].min_rest)
			return pl + rest;
	}
	return 0;
}

static bool secret_name(const char *s, size_t len)
{
	for (size_t k = 0; k < sizeof secret_names / sizeof secret_names[0]; k++) {
		size_t kl = strlen(secret_names[k]);
		if (len >= kl && strncasecmp(s + len - kl, secret_names[k], kl) == 0)
			return true;
	}
	return false;
}

/* A long opaque word (a token given after a space): letters and digits. */
static bool opaque(const char *s, size_t len)
{
	bool digit = false, alpha = false;
	for (size_t i = 0; i < len; i++) {
		digit |= isdigit((unsigned char)s[i]) != 0;
		alpha |= isalpha((unsigned char)s[i]) != 0;
	}
	return len >= 16 && digit && alpha;
}

/* After a secret name ending at s[i]: writes the separator and a redacted
 * value; returns the index after them, or i when no value follows. */
static size_t secret_value(prop__text *t, const char *s, size_t n, size_t i)
{
	size_t j = i;
	if (j < n && (s[j] == '"' || s[j] == '\''))
		j++;
	while (j < n && s[j] == ' ')
		j++;
	bool sep = j < n && (s[j] == '=' || s[j] == ':');
	if (sep) {
		j++;
		while (j < n && (s[j] == ' ' || s[j] == '"' || s[j] == '\''))
			j++;
	}
	size_t v = span(s, n, j, val_char);
	if (v == 0 || (!sep && !opaque(s + j, v)))
		return i;
	/* "Authorization: Bearer x": the scheme is no secret, the next word is */
	static const char *const schemes[] = {"Bearer ", "Basic ", "Token "};
	for (size_t k = 0; sep && k < 3; k++) {
		size_t sl = strlen(schemes[k]);
		if (n - j > sl && strncasecmp(s + j, schemes[k], sl) == 0) {
			j += sl;
			v = span(s, n, j, val_char);
		}
	}
	prop__tadd(t, s + i, j - i);
	prop__tputs(t, MARK);
	return j + v;
}

/* "Bearer <token>" at s[i]: the index after it, having written it, or i. */
static size_t bearer(prop__text *t, const char *s, size_t n, size_t i)
{
	if (n - i < 7 || strncasecmp(s + i, "bearer", 6) != 0 || s[i + 6] != ' ')
		return i;
	size_t j = i + 6;
	while (j < n && s[j] == ' ')
		j++;
	size_t v = span(s, n, j, val_char);
	if (v < 8)
		return i;
	prop__tadd(t, s + i, j - i);
	prop__tputs(t, MARK);
	return j + v;
}

/* "scheme://user:password@host" at s[i] == ':': redacts user:password. */
static size_t userinfo(prop__text *t, const char *s, size_t n, size_t i)
{
	if (n - i < 3 || memcmp(s + i, "://", 3) != 0)
		return i;
	size_t j = i + 3, colon = 0;
	while (j < n && s[j] != '@' && s[j] != '/' && !isspace((unsigned char)s[j])) {
		if (s[j] == ':' && !colon)
			colon = j;
		j++;
	}
	if (j >= n || s[j] != '@' || !colon)
		return i;
	prop__tputs(t, "://" MARK "@");
	return j + 1;
}

static void redact_line(prop__text *t, const char *s, size_t n)
{
	static const char pem[] = "PRIVATE KEY-----";
	if (memmem(s, n, pem, sizeof pem - 1) || memmem(s, n, "-----BEGIN", 10)) {
		prop__tputs(t, MARK);
		return;
	}
	size_t i = 0;
	while (i < n) {
		bool start = i == 0 || !name_char(s[i - 1]);
		size_t k, j;
		if (start && (k = token_at(s, n, i))) {
			prop__tputs(t, MARK);
			i += k;
		} else if (start && (j = bearer(t, s, n, i)) != i) {
			i = j;
		} else if (s[i] == ':' && (j = userinfo(t, s, n, i)) != i) {
			i = j;
		} else if (start && (k = span(s, n, i, name_char)) > 0) {
			prop__tadd(t, s + i, k);
			i += k;
			if (secret_name(s + i - k, k))
				i = secret_value(t, s, n, i);
		} else {
			prop__tadd(t, s + i, 1);
			i++;
		}
	}
}

int prop_redact(char **out, const char *text, size_t len)
{
	prop__text t = {0};
	size_t i = 0;
	prop__tadd(&t, "", 0);
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len;
		redact_line(&t, text + i, end - i);
		if (nl)
			prop__tadd(&t, "\n", 1);
		i = end + (nl != NULL);
	}
	return prop__ttake(out, &t);
}

int prop__scrub(char **s, const char *secret)
{
	size_t sl = secret ? strlen(secret) : 0;
	if (sl < 8 || !*s || !strstr(*s, secret))
		return 0;
	prop__text t = {0};
	const char *p = *s, *q;
	while ((q = strstr(p, secret))) {
		prop__tadd(&t, p, (size_t)(q - p));
		prop__tputs(&t, MARK);
		p = q + sl;
	}
	prop__tputs(&t, p);
	char *r;
	if (prop__ttake(&r, &t) < 0)
		return TEND_ENOMEM;
	explicit_bzero(*s, strlen(*s));
	free(*s);
	*s = r;
	return 0;
}

int prop__scrub_env(char **s)
{
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq || !secret_name(*e, (size_t)(eq - *e)))
			continue;
		int rc = prop__scrub(s, eq + 1);
		if (rc < 0)
			return rc;
	}
	return 0;
}
