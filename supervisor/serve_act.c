/*
 * serve_act.c - what the dashboard does rather than reads: approve and
 * reject a proposal, and verify the audit chain. Each runs the tend CLI
 * as a child process (`tend --workspace WS proposal approve N`, ...), so
 * the browser and the terminal go through one code path, and the server
 * itself keeps its store read-only.
 */
#include "serve_int.h"
#include "cli.h"
#include "tend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUTPUT_CAP 65536
#define NOT_A_COMMAND "is not a tend command"

/* Runs `tend --workspace WS args...`; the output goes into *out (malloc'd). */
static int run_tend(srv *s, const char *const *args, int nargs, char **out,
		    int *status)
{
	char *argv[16];
	int n = 0;
	*out = malloc(OUTPUT_CAP);
	if (!*out)
		return tend_error_set(TEND_ENOMEM, "child output");
	argv[n++] = s->exe;
	argv[n++] = "--workspace";
	argv[n++] = s->ws;
	for (int i = 0; i < nargs && n < 15; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	return cli_run_child(argv, s->timeout_s, *out, OUTPUT_CAP, status);
}

/* The first line of text, for an error message. */
static void first_line(char *dst, size_t cap, const char *text)
{
	size_t n = strcspn(text, "\n");
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, text, n);
	dst[n] = '\0';
}

/* Answers for a finished (or failed) child: 200 when it exited 0. */
static int child_answer(srv__req *r, int rc, int status, const char *output,
			const char *what)
{
	char line[512];
	if (rc == TEND_ETIMEOUT)
		return srv__fail(r, 504, "%s", tend_error_last());
	if (rc < 0)
		return srv__fail(r, 500, "%s", tend_error_last());
	if (status == 2 && strstr(output, NOT_A_COMMAND))
		return srv__fail(r, 501, "this tend has no `%s` command", what);
	first_line(line, sizeof line, output);
	jbuf *b = &r->out;
	jbuf_obj_open(b);
	jbuf_key(b, "ok");
	jbuf_bool(b, status == 0);
	if (status != 0)
		srv__kv_str(b, "error", line[0] ? line : "the command failed");
	srv__kv_int(b, "exit_status", status);
	srv__kv_str(b, "output", output);
	srv__kv_str(b, "command", what);
	jbuf_obj_close(b);
	return status == 0 ? 200 : 409;
}

/* Parses the body as a JSON object: 0 and *doc, or the 400 written. */
static int body_object(srv__req *r, json_doc **doc)
{
	*doc = NULL;
	if (!r->body || !r->len)
		return srv__fail(r, 400, "body: expected a JSON object, got nothing");
	if (json_parse(doc, r->body, r->len, NULL) < 0)
		return srv__fail(r, 400, "body: malformed JSON: %s", tend_error_last());
	if (json_type(json_root(*doc)) != JSON_OBJ) {
		json_doc_free(*doc);
		*doc = NULL;
		return srv__fail(r, 400, "body: expected a JSON object");
	}
	return 0;
}

/* 0 when proposal r->id exists, else the 404 written. */
static int proposal_exists(srv__req *r, store *st)
{
	store_proposal *p = NULL;
	int rc = store_proposal_get(st, &p, r->id);
	store_proposal_free(p);
	if (rc == TEND_ENOTFOUND)
		return srv__fail(r, 404, "no proposal %lld", (long long)r->id);
	if (rc < 0)
		return srv__fail(r, 500, "%s", tend_error_last());
	return 0;
}

int srv__api_approve(srv__req *r, store *st)
{
	json_doc *doc = NULL;
	char id[24], *out = NULL;
	int status = -1, rc;
	if ((rc = body_object(r, &doc)) || (rc = proposal_exists(r, st)))
		goto done;
	snprintf(id, sizeof id, "%lld", (long long)r->id);
	const char *args[] = {"proposal", "approve", id};
	rc = run_tend(r->s, args, 3, &out, &status);
	rc = child_answer(r, rc, status, out ? out : "", "proposal approve");
done:
	free(out);
	json_doc_free(doc);
	return rc;
}

/* The reason field of a reject body: 0, or the 400 written. */
static int reject_reason(srv__req *r, const json_val *root, const char **out)
{
	size_t len = 0;
	const char *reason = json_str(json_get(root, "reason"), &len);
	if (!reason)
		return srv__fail(r, 400, "body: field reason: expected a string");
	if (len == 0 || len > 2000 || strlen(reason) != len)
		return srv__fail(r, 400, "body: field reason: expected 1..2000 "
				 "bytes of text");
	for (const char *p = reason; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t')
			return srv__fail(r, 400, "body: field reason: control "
					 "characters are not allowed");
	*out = reason;
	return 0;
}

int srv__api_reject(srv__req *r, store *st)
{
	json_doc *doc = NULL;
	const char *reason = NULL;
	char id[24], *out = NULL;
	int status = -1, rc;
	if ((rc = body_object(r, &doc)) ||
	    (rc = reject_reason(r, json_root(doc), &reason)) ||
	    (rc = proposal_exists(r, st)))
		goto done;
	snprintf(id, sizeof id, "%lld", (long long)r->id);
	const char *args[] = {"proposal", "reject", id, "--reason", reason};
	rc = run_tend(r->s, args, 5, &out, &status);
	rc = child_answer(r, rc, status, out ? out : "", "proposal reject");
done:
	free(out);
	json_doc_free(doc);
	return rc;
}

/* Without an `audit` command, the store's own check answers. */
static int verify_in_process(srv__req *r, store *st)
{
	int64_t bad = 0;
	int rc = store_audit_verify(st, &bad);
	jbuf *b = &r->out;
	jbuf_obj_open(b);
	jbuf_key(b, "ok");
	jbuf_bool(b, rc == 0);
	srv__kv_int(b, "exit_status", STORE_NONE);
	srv__kv_str(b, "output", rc == 0 ? "audit chain intact" : tend_error_last());
	srv__kv_int(b, "bad_seq", bad);
	srv__kv_str(b, "command", "store_audit_verify");
	jbuf_obj_close(b);
	return 200;
}

int srv__api_verify(srv__req *r, store *st)
{
	const char *args[] = {"audit", "verify"};
	char *out = NULL;
	int status = -1;
	int rc = run_tend(r->s, args, 2, &out, &status);
	if (rc == 0 && status == 2 && strstr(out, NOT_A_COMMAND))
		rc = verify_in_process(r, st);
	else if (rc == TEND_ETIMEOUT || rc < 0)
		rc = child_answer(r, rc, status, "", "audit verify");
	else {
		/* a broken chain is an answer, not an HTTP error */
		child_answer(r, 0, status, out, "audit verify");
		rc = 200;
	}
	free(out);
	return rc;
}
