/*
 * config_yaml.c - tend.yaml text to a small tree of nodes with positions.
 *
 * libyaml's event parser rather than its document loader, because events
 * keep what the loader throws away and a plain config must refuse: anchors,
 * aliases, tags, a second document. Bad UTF-8 and tabs in indentation are
 * found by a scan of our own first, so that the message can say exactly
 * where and what instead of libyaml's "cannot start any token".
 */
#include "config_int.h"
#include "tend.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

void cfg__node_free(cfg__node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		cfg__node_free(n->kids[i]);
	free(n->kids);
	free(n->text);
	free(n);
}

bool cfg__is_null(const cfg__node *n)
{
	if (n->kind != CFG__SCALAR || !n->plain)
		return false;
	return !strcmp(n->text, "") || !strcmp(n->text, "~") ||
	       !strcmp(n->text, "null") || !strcmp(n->text, "Null") ||
	       !strcmp(n->text, "NULL");
}

/* Length of the UTF-8 sequence at p (1-4), or 0 when it is not valid:
 * overlong forms, surrogates and code points past U+10FFFF included. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
	size_t n = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2 :
		   (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (n == 0 || n > left)
		return 0;
	uint32_t cp = n == 1 ? p[0] : p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Refuses what libyaml would report vaguely: bad UTF-8, NUL bytes and tabs
 * in indentation (any tab before a line's first other character: simpler to
 * explain than libyaml's rule, which allows some). Columns count
 * characters, as libyaml's marks do. */
static int prescan(const char *name, const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t line = 1, col = 1;
	bool indent = true; /* still in the line's leading white space */

	for (size_t i = 0; i < len;) {
		size_t n = utf8_len(p + i, len - i);
		if (p[i] == 0)
			return tend_error_set(TEND_EINVAL, "%s:%zu:%zu: a NUL byte; "
				"the config must be UTF-8 text", name, line, col);
		if (n == 0)
			return tend_error_set(TEND_EINVAL, "%s:%zu:%zu: invalid UTF-8 "
				"(byte 0x%02x); the config must be UTF-8 text",
				name, line, col, p[i]);
		if (p[i] == '\t' && indent)
			return tend_error_set(TEND_EINVAL, "%s:%zu:%zu: a tab in the "
				"indentation; YAML indents with spaces only",
				name, line, col);
		if (p[i] == '\n') {
			line++;
			col = 1;
			indent = true;
		} else {
			col++;
			if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
				indent = false;
		}
		i += n;
	}
	return 0;
}

static yaml_mark_t mark_at(const char *buf, size_t len, size_t off)
{
	yaml_mark_t m = {0, 0, 0};
	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			m.line++;
			m.column = 0;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
			m.column++;
		}
	}
	m.index = off;
	return m;
}

static int syntax_error(const char *name, const yaml_parser_t *p,
			const char *buf, size_t len)
{
	yaml_mark_t m = p->problem_mark;
	if (p->error == YAML_READER_ERROR)
		m = mark_at(buf, len, p->problem_offset);
	const char *problem = p->problem ? p->problem : "cannot parse";
	if (p->context && p->error != YAML_READER_ERROR)
		return tend_error_set(TEND_EINVAL, "%s:%zu:%zu: YAML syntax error: "
			"%s (%s that starts at line %zu, column %zu)", name,
			m.line + 1, m.column + 1, problem, p->context,
			p->context_mark.line + 1, p->context_mark.column + 1);
	return tend_error_set(TEND_EINVAL, "%s:%zu:%zu: YAML syntax error: %s",
		name, m.line + 1, m.column + 1, problem);
}

static int node_new(cfg__node **out, const yaml_event_t *ev)
{
	cfg__node *n = calloc(1, sizeof *n);
	if (!n)
		return tend_error_set(TEND_ENOMEM, "out of memory reading config");
	n->mark = ev->start_mark;
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		n->kind = CFG__SCALAR;
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		n->anchored = ev->data.scalar.anchor != NULL;
		n->tagged = ev->data.scalar.tag != NULL;
		n->text = malloc(n->len + 1);
		if (!n->text) {
			free(n);
			return tend_error_set(TEND_ENOMEM, "out of memory reading config");
		}
		memcpy(n->text, ev->data.scalar.value, n->len);
		n->text[n->len] = '\0';
		break;
	case YAML_SEQUENCE_START_EVENT:
		n->kind = CFG__SEQ;
		n->anchored = ev->data.sequence_start.anchor != NULL;
		n->tagged = ev->data.sequence_start.tag != NULL;
		break;
	case YAML_MAPPING_START_EVENT:
		n->kind = CFG__MAP;
		n->anchored = ev->data.mapping_start.anchor != NULL;
		n->tagged = ev->data.mapping_start.tag != NULL;
		break;
	default:
		n->kind = CFG__ALIAS;
		break;
	}
	*out = n;
	return 0;
}

static int add_kid(cfg__node *parent, cfg__node *kid)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? 2 * parent->cap : 8;
		cfg__node **k = realloc(parent->kids, cap * sizeof *k);
		if (!k)
			return tend_error_set(TEND_ENOMEM, "out of memory reading config");
		parent->kids = k;
		parent->cap = cap;
	}
	parent->kids[parent->n++] = kid;
	return 0;
}

/* The tree under construction: the root and the open collections. */
typedef struct builder {
	const char *name;
	cfg__node *root;
	cfg__node *open[MAX_DEPTH];
	int depth;
	int docs;
} builder;

static int take_node(builder *b, const yaml_event_t *ev)
{
	cfg__node *n = NULL;
	int rc = node_new(&n, ev);
	if (rc < 0)
		return rc;
	if (b->depth == 0) {
		b->root = n;
	} else if ((rc = add_kid(b->open[b->depth - 1], n)) < 0) {
		cfg__node_free(n);
		return rc;
	}
	if (n->kind == CFG__SEQ || n->kind == CFG__MAP) {
		if (b->depth == MAX_DEPTH)
			return tend_error_set(TEND_EINVAL, "%s:%zu:%zu: nested more "
				"than %d levels deep", b->name, n->mark.line + 1,
				n->mark.column + 1, MAX_DEPTH);
		b->open[b->depth++] = n;
	}
	return 0;
}

static int take_event(builder *b, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++b->docs > 1)
			return tend_error_set(TEND_EINVAL, "%s:%zu:%zu: a second YAML "
				"document; the config is one document", b->name,
				ev->start_mark.line + 1, ev->start_mark.column + 1);
		return 0;
	case YAML_SCALAR_EVENT:
	case YAML_ALIAS_EVENT:
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		return take_node(b, ev);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		b->depth--;
		return 0;
	default:
		return 0;
	}
}

int cfg__parse(cfg__node **out, const char *name, const char *buf, size_t len)
{
	yaml_parser_t p;
	builder b = {.name = name};
	bool end = false;
	int rc;

	*out = NULL;
	if ((rc = prescan(name, buf, len)) < 0)
		return rc;
	if (!yaml_parser_initialize(&p))
		return tend_error_set(TEND_ENOMEM, "out of memory reading config");
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	while (!end) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			rc = syntax_error(name, &p, buf, len);
			goto done;
		}
		end = ev.type == YAML_STREAM_END_EVENT;
		rc = take_event(&b, &ev);
		yaml_event_delete(&ev);
		if (rc < 0)
			goto done;
	}
	if (b.root && cfg__is_null(b.root) && !b.root->anchored && !b.root->tagged) {
		cfg__node_free(b.root);
		b.root = NULL;
	}
	*out = b.root;
	b.root = NULL;
done:
	cfg__node_free(b.root);
	yaml_parser_delete(&p);
	return rc;
}
