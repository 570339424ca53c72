/*
 * propose_model.c - asking a model: the prompts rendered from the
 * scaffold's templates, one request to an OpenAI-compatible chat
 * completions endpoint or to Anthropic's Messages API through the
 * curl-multi client (deadline, per-attempt timeout, retries on 429/5xx,
 * response size cap), the budget, and the answer's envelope. The model's
 * own text then goes to prop_parse_response. prop_ask dispatches here or
 * to the builtin playbook.
 *
 * The API key is read from the environment just before the request, goes
 * only into the request header, and is scrubbed from any message.
 */
#include "propose_int.h"
#include "ev.h"
#include "fsutil.h"
#include "http.h"
#include "sha256.h"
#include "tend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEMPLATE_MAX (64 * 1024)
#define PROMPT_MAX (4 * 1024 * 1024)
#define EXCERPT 300 /* bytes of an error body quoted in a message */

/* ---- prompts -------------------------------------------------------------- */

static size_t placeholder_at(const char *s, size_t n, size_t i, char *name, size_t cap)
{
	size_t j = i + 2, k = 0;
	if (n - i < 5 || s[i] != '{' || s[i + 1] != '{')
		return 0;
	while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || s[j] == '_') && k + 1 < cap)
		name[k++] = s[j++];
	name[k] = '\0';
	if (k == 0 || n - j < 2 || s[j] != '}' || s[j + 1] != '}')
		return 0;
	return j + 2 - i;
}

int prop_render(char **out, const char *name, const char *tmpl, size_t len,
		const prop_ctx *ctx)
{
	prop__text t = {0};
	size_t line = 1;
	char ph[32];
	for (size_t i = 0; i < len;) {
		size_t k = placeholder_at(tmpl, len, i, ph, sizeof ph);
		if (k == 0) {
			line += tmpl[i] == '\n';
			prop__tadd(&t, tmpl + i++, 1);
			continue;
		}
		const char *v = prop_ctx_section(ctx, ph);
		if (!v) {
			free(t.s);
			return tend_error_set(TEND_EINVAL, "%s:%zu: unknown placeholder {{%s}} (known: "
					      "incident, evidence, metrics, logs, files, history, "
					      "memory, schema)", name, line, ph);
		}
		prop__tputs(&t, v);
		i += k;
	}
	if (t.len > PROMPT_MAX) {
		free(t.s);
		return tend_error_set(TEND_EINVAL, "%s: the rendered prompt is %zu bytes, at most %d",
				      name, t.len, PROMPT_MAX);
	}
	return prop__ttake(out, &t);
}

static int render_file(char **out, const char *dir, const char *name, const prop_ctx *ctx)
{
	char path[4096], *tmpl = NULL;
	size_t len;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int rc = fsu_read_file(&tmpl, &len, path, TEMPLATE_MAX);
	if (rc == TEND_ENOTFOUND)
		return tend_error_set(rc, "prompt template %s not found in %s", name, dir);
	if (rc == 0)
		rc = prop_render(out, name, tmpl, len, ctx);
	free(tmpl);
	return rc;
}

/* ---- the request ------------------------------------------------------------ */

typedef struct api {
	const char *name;        /* "openai", "anthropic" */
	const char *def_endpoint;
	const char *path;
} api;

static const api apis[] = {
	[CFG_PROPOSER_OPENAI] = {"openai", "https://api.openai.com/v1", "/chat/completions"},
	[CFG_PROPOSER_ANTHROPIC] = {"anthropic", "https://api.anthropic.com", "/v1/messages"},
};

static void body_openai(jbuf *b, const cfg_proposer *cfg, long max_tokens, const char *sys,
			const char *user)
{
	jbuf_obj_open(b);
	jbuf_key(b, "model");
	jbuf_str(b, cfg->model);
	jbuf_key(b, "temperature");
	jbuf_num(b, cfg->temperature);
	jbuf_key(b, "max_tokens");
	jbuf_int(b, max_tokens);
	jbuf_key(b, "messages");
	jbuf_arr_open(b);
	const char *role[] = {"system", "user"}, *content[] = {sys, user};
	for (int i = 0; i < 2; i++) {
		jbuf_obj_open(b);
		jbuf_key(b, "role");
		jbuf_str(b, role[i]);
		jbuf_key(b, "content");
		jbuf_str(b, content[i]);
		jbuf_obj_close(b);
	}
	jbuf_arr_close(b);
	jbuf_key(b, "response_format");
	jbuf_obj_open(b);
	jbuf_key(b, "type");
	jbuf_str(b, "json_object");
	jbuf_obj_close(b);
	jbuf_obj_close(b);
}

static void body_anthropic(jbuf *b, const cfg_proposer *cfg, long max_tokens,
			   const char *sys, const char *user)
{
	jbuf_obj_open(b);
	jbuf_key(b, "model");
	jbuf_str(b, cfg->model);
	jbuf_key(b, "max_tokens");
	jbuf_int(b, max_tokens);
	jbuf_key(b, "temperature");
	jbuf_num(b, cfg->temperature);
	jbuf_key(b, "system");
	jbuf_str(b, sys);
	jbuf_key(b, "messages");
	jbuf_arr_open(b);
	jbuf_obj_open(b);
	jbuf_key(b, "role");
	jbuf_str(b, "user");
	jbuf_key(b, "content");
	jbuf_str(b, user);
	jbuf_obj_close(b);
	jbuf_arr_close(b);
	jbuf_obj_close(b);
}

/* One request, on a private loop so that the attempts can be counted. */
typedef struct reply {
	bool done;
	int rc, attempts;
	long status;
	char *body;
	size_t len;
	char err[512];
} reply;

static void on_reply(const http_response *res, void *ud)
{
	reply *r = ud;
	r->done = true;
	r->rc = res->rc;
	r->status = res->status;
	r->attempts = res->attempts;
	if (res->error)
		snprintf(r->err, sizeof r->err, "%s", res->error);
	if ((r->body = malloc(res->body_len + 1))) {
		memcpy(r->body, res->body, res->body_len + 1);
		r->len = res->body_len;
	} else if (r->rc == 0) {
		r->rc = TEND_ENOMEM;
		snprintf(r->err, sizeof r->err, "out of memory");
	}
}

static int send_request(reply *r, const http_request *req)
{
	ev_loop *loop = NULL;
	http_client *c = NULL;
	int rc;
	if ((rc = ev_new(&loop)) < 0 || (rc = http_client_new(&c, loop)) < 0)
		goto done;
	if ((rc = http_send(c, req, on_reply, r)) < 0)
		goto done;
	while (!r->done)
		if ((rc = ev_run_once(loop, 100)) < 0)
			goto done;
	rc = r->rc;
	if (rc < 0)
		tend_error_set(rc, "%s", r->err);
done:
	http_client_free(c);
	ev_free(loop);
	return rc;
}

/* ---- the answer's envelope ------------------------------------------------- */

typedef struct envelope {
	const char *text; /* the model's text, inside doc */
	size_t len;
	long tokens_in, tokens_out;
} envelope;

static long get_long(const json_val *obj, const char *key)
{
	int64_t v = 0;
	return json_get_int(obj, key, &v) == 0 && v >= 0 ? (long)v : 0;
}

/* An "error" object in the body, as both APIs send on failure. */
static int api_error(const char *who, const json_val *root)
{
	const json_val *e = json_get(root, "error");
	if (!e)
		return 0;
	const char *msg = json_str(json_get(e, "message"), NULL);
	char *red = NULL;
	if (!msg)
		msg = json_type(e) == JSON_STR ? json_str(e, NULL) : "(no message)";
	prop_redact(&red, msg, strlen(msg));
	tend_error_set(TEND_EIO, "%s: API error: %.300s", who, red ? red : "?");
	free(red);
	return TEND_EIO;
}

static int env_openai(envelope *env, const json_val *root)
{
	const json_val *ch = json_at(json_get(root, "choices"), 0);
	const json_val *content = json_get(json_get(ch, "message"), "content");
	if (json_type(content) != JSON_STR)
		return tend_error_set(TEND_EINVAL,
				      "openai: the response has no choices[0].message.content string");
	const char *fin = json_str(json_get(ch, "finish_reason"), NULL);
	if (fin && !strcmp(fin, "length"))
		return tend_error_set(TEND_EINVAL, "openai: the model stopped at max_tokens "
				      "(finish_reason \"length\") before finishing its answer");
	env->text = json_str(content, &env->len);
	const json_val *u = json_get(root, "usage");
	env->tokens_in = get_long(u, "prompt_tokens");
	env->tokens_out = get_long(u, "completion_tokens");
	return 0;
}

static int env_anthropic(envelope *env, const json_val *root)
{
	const json_val *content = json_get(root, "content"), *text = NULL;
	for (size_t i = 0; i < json_len(content) && !text; i++) {
		const char *type = json_str(json_get(json_at(content, i), "type"), NULL);
		if (type && !strcmp(type, "text"))
			text = json_get(json_at(content, i), "text");
	}
	if (json_type(text) != JSON_STR)
		return tend_error_set(TEND_EINVAL,
				      "anthropic: the response has no content block of type text");
	const char *stop = json_str(json_get(root, "stop_reason"), NULL);
	if (stop && !strcmp(stop, "max_tokens"))
		return tend_error_set(TEND_EINVAL, "anthropic: the model stopped at max_tokens "
				      "(stop_reason \"max_tokens\") before finishing its answer");
	env->text = json_str(text, &env->len);
	const json_val *u = json_get(root, "usage");
	env->tokens_in = get_long(u, "input_tokens");
	env->tokens_out = get_long(u, "output_tokens");
	return 0;
}

/* The reply of the server into *out: status, envelope, the model's answer. */
static int read_reply(prop_result *out, int kind, const reply *r, prop_budget *budget)
{
	const char *who = apis[kind].name;
	json_doc *doc = NULL;
	envelope env = {0};
	int rc;
	if (r->status < 200 || r->status > 299) {
		char *red = NULL;
		prop_redact(&red, r->body, r->len > EXCERPT ? EXCERPT : r->len);
		rc = tend_error_set(TEND_EIO, "%s: HTTP %ld: %s", who, r->status, red ? red : "");
		free(red);
		return rc;
	}
	if ((rc = json_parse(&doc, r->body, r->len, NULL)) < 0)
		return tend_error_wrap(rc, "%s: the response body is not JSON", who);
	const json_val *root = json_root(doc);
	if ((rc = api_error(who, root)) == 0)
		rc = kind == CFG_PROPOSER_OPENAI ? env_openai(&env, root) : env_anthropic(&env, root);
	if (rc == 0 && budget)
		budget->tokens += env.tokens_in + env.tokens_out;
	if (rc == 0 && (rc = prop_parse_response(out, env.text, env.len)) < 0)
		tend_error_wrap(rc, "%s", who);
	if (rc == 0) {
		out->tokens_in = env.tokens_in;
		out->tokens_out = env.tokens_out;
	}
	json_doc_free(doc);
	return rc;
}

/* ---- budget and the whole request ------------------------------------------ */

void prop_budget_init(prop_budget *b, const cfg_proposer *cfg)
{
	memset(b, 0, sizeof *b);
	b->max_requests = cfg ? cfg->max_requests : 0;
}

/* Attempts this request may make, or TEND_EBUSY when nothing is left. */
static int budget_attempts(const prop_budget *b, const char *who)
{
	if (!b)
		return PROP_MAX_ATTEMPTS;
	if (b->max_requests > 0 && b->requests >= b->max_requests)
		return tend_error_set(TEND_EBUSY, "%s: budget spent: %lld of %lld requests used",
				      who, (long long)b->requests, (long long)b->max_requests);
	if (b->max_tokens > 0 && b->tokens >= b->max_tokens)
		return tend_error_set(TEND_EBUSY, "%s: budget spent: %lld of %lld tokens used",
				      who, (long long)b->tokens, (long long)b->max_tokens);
	int64_t left = b->max_requests > 0 ? b->max_requests - b->requests : PROP_MAX_ATTEMPTS;
	return left < PROP_MAX_ATTEMPTS ? (int)left : PROP_MAX_ATTEMPTS;
}

static int build_body(jbuf *b, const cfg_proposer *cfg, const prop_ctx *ctx,
		      const char *dir, const char *key, const prop_budget *budget)
{
	char *sys = NULL, *user = NULL;
	int rc;
	long max_tokens = (long)cfg->max_tokens;
	if (budget && budget->max_tokens > 0 && budget->max_tokens - budget->tokens < max_tokens)
		max_tokens = (long)(budget->max_tokens - budget->tokens);
	if ((rc = render_file(&sys, dir, "prompts/system.md", ctx)) < 0 ||
	    (rc = render_file(&user, dir, "prompts/incident.md", ctx)) < 0)
		goto done;
	/* Belt and braces: the context is redacted, but a key that the
	 * redactor did not recognise must still never leave with a prompt. */
	if ((rc = prop__scrub(&sys, key)) < 0 || (rc = prop__scrub(&user, key)) < 0)
		goto done;
	if (cfg->kind == CFG_PROPOSER_OPENAI)
		body_openai(b, cfg, max_tokens, sys, user);
	else
		body_anthropic(b, cfg, max_tokens, sys, user);
	if (b->err)
		rc = tend_error_set(TEND_ENOMEM, "out of memory");
done:
	free(sys);
	free(user);
	return rc;
}

/* The headers; the key goes only here. hdr[] holds pointers into store. */
static void make_headers(const char *hdr[4], char store[2][1024], int kind, const char *key)
{
	int n = 0;
	hdr[n++] = "Content-Type: application/json";
	if (kind == CFG_PROPOSER_OPENAI && key) {
		snprintf(store[0], sizeof store[0], "Authorization: Bearer %s", key);
		hdr[n++] = store[0];
	} else if (kind == CFG_PROPOSER_ANTHROPIC) {
		hdr[n++] = "anthropic-version: 2023-06-01";
		if (key) {
			snprintf(store[0], sizeof store[0], "x-api-key: %s", key);
			hdr[n++] = store[0];
		}
	}
	hdr[n] = NULL;
}

static int check_cfg(const cfg_proposer *cfg, const char **key)
{
	const char *who = apis[cfg->kind].name;
	*key = NULL;
	if (!cfg->model || !*cfg->model)
		return tend_error_set(TEND_EINVAL, "%s: proposer.model is empty: name the model "
				      "to ask", who);
	if (cfg->api_key_env && *cfg->api_key_env) {
		*key = getenv(cfg->api_key_env);
		if (!*key || !**key)
			return tend_error_set(TEND_EINVAL, "%s: the environment variable %s "
					      "(proposer.api_key_env) is not set", who,
					      cfg->api_key_env);
		if (strlen(*key) > 900 || strpbrk(*key, "\r\n"))
			return tend_error_set(TEND_EINVAL, "%s: the key in %s is not a valid "
					      "header value", who, cfg->api_key_env);
	}
	return 0;
}

int prop__model(prop_result *out, const cfg_proposer *cfg, const prop_ctx *ctx,
		const char *dir, prop_budget *budget)
{
	const char *who = apis[cfg->kind].name, *key, *hdr[4];
	char url[2048], hstore[2][1024];
	reply r = {0};
	jbuf b;
	int rc, attempts;
	jbuf_init(&b);
	if ((rc = check_cfg(cfg, &key)) < 0 || (rc = attempts = budget_attempts(budget, who)) < 0)
		goto done;
	const char *ep = cfg->endpoint && *cfg->endpoint ? cfg->endpoint
							 : apis[cfg->kind].def_endpoint;
	size_t el = strlen(ep);
	while (el && ep[el - 1] == '/')
		el--;
	snprintf(url, sizeof url, "%.*s%s", (int)el, ep, apis[cfg->kind].path);
	if ((rc = build_body(&b, cfg, ctx, dir, key, budget)) < 0)
		goto done;
	size_t blen;
	const char *body = jbuf_cstr(&b, &blen);
	make_headers(hdr, hstore, cfg->kind, key);
	http_request req = {
		.url = url, .headers = hdr, .body = body, .body_len = blen,
		.deadline_ms = (long)(cfg->deadline_s * 1000), .max_attempts = attempts,
		.attempt_timeout_ms = (long)(cfg->timeout_s * 1000),
		.max_response_bytes = (size_t)cfg->max_response_bytes,
	};
	rc = send_request(&r, &req);
	explicit_bzero(hstore, sizeof hstore);
	if (budget)
		budget->requests += r.attempts;
	if (rc < 0) {
		tend_error_wrap(rc, "%s", who);
		goto done;
	}
	if ((rc = read_reply(out, cfg->kind, &r, budget)) < 0)
		goto done;
	sha256_hex(body, blen, out->prompt_sha256);
	sha256_hex(r.body, r.len, out->response_sha256);
	snprintf(out->proposer, sizeof out->proposer, "%s", who);
	snprintf(out->model, sizeof out->model, "%s", cfg->model);
done:
	if (rc < 0 && key) {
		char *msg = strdup(tend_error_last());
		if (msg && prop__scrub(&msg, key) == 0)
			tend_error_set(rc, "%s", msg);
		free(msg);
	}
	free(r.body);
	jbuf_free(&b);
	return rc;
}

int prop_ask(prop_result *out, const cfg_proposer *cfg, const prop_ctx *ctx,
	     const char *scaffold_dir, prop_budget *budget)
{
	int rc;
	memset(out, 0, sizeof *out);
	switch (cfg->kind) {
	case CFG_PROPOSER_BUILTIN:
		rc = prop__builtin(out, ctx, scaffold_dir);
		break;
	case CFG_PROPOSER_OPENAI:
	case CFG_PROPOSER_ANTHROPIC:
		rc = prop__model(out, cfg, ctx, scaffold_dir, budget);
		break;
	default:
		rc = tend_error_set(TEND_EINVAL, "proposer.kind %d is not known", cfg->kind);
	}
	if (rc < 0)
		prop_result_free(out);
	return rc;
}
