/*
 * pt.h - what the proposer tests share: a scratch directory, a fixture
 * with a real store (a run with metrics around a spike, a log with secrets
 * in it, an incident) and a real scaffold repository seeded from the
 * source tree's lua/, and small file helpers. Header-only.
 */
#ifndef PROPOSE_TEST_H
#define PROPOSE_TEST_H

#include "fsutil.h"
#include "patch.h"
#include "propose.h"
#include "store.h"
#include "tend.h"
#include "tt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A key in no known token shape: only the by-value scrub can catch it. */
#define PT_KEY_ENV "TEND_TEST_PROPOSER_KEY"
#define PT_KEY "tk-live-0123456789abcdefXYZsecret"

static char pt_tmp[64];
static int pt_seq;

static inline void pt_setup(void)
{
	snprintf(pt_tmp, sizeof pt_tmp, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(pt_tmp)) {
		perror("mkdtemp");
		exit(1);
	}
}

static inline void pt_teardown(void)
{
	fsu_rm_rf(pt_tmp);
}

static inline const char *pt_fresh(char *buf, size_t cap, const char *what)
{
	snprintf(buf, cap, "%s/%s%d", pt_tmp, what, ++pt_seq);
	return buf;
}

static inline void pt_write(const char *dir, const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* The whole file (malloc'ed, NUL-terminated) or NULL. */
static inline char *pt_read(const char *path, size_t *len)
{
	char *b = NULL;
	return fsu_read_file(&b, len, path, (size_t)64 << 20) == 0 ? b : NULL;
}

static inline const char *pt_lua_dir(void)
{
	static char dir[512];
	const char *root = getenv("TEND_SOURCE_ROOT");
	snprintf(dir, sizeof dir, "%s/lua", root ? root : ".");
	return dir;
}

typedef struct pt_fx {
	char ws[256], scaffold[300], db[300];
	store *st;
	patch_repo *repo;
	int64_t run, inc;
} pt_fx;

/* Metrics of steps 0..199: loss falls slowly, spikes at 150..152; grad_norm
 * jumps at 150; lr constant. tokens_per_s is never recorded. */
static inline int pt_metrics(pt_fx *f)
{
	int rc = store_batch_begin(f->st);
	for (int s = 0; s < 200 && rc == 0; s++) {
		double loss = s >= 150 && s <= 152 ? 9.0 : 3.0 - 0.001 * s;
		rc = store_metric_put(f->st, f->run, 1, s, "loss", loss, 1000.0 + s);
		if (rc == 0)
			rc = store_metric_put(f->st, f->run, 1, s, "grad_norm", s == 150 ? 50.0 : 1.0,
					      1000.0 + s);
		if (rc == 0)
			rc = store_metric_put(f->st, f->run, 1, s, "lr", 3e-4, 1000.0 + s);
	}
	return rc == 0 ? store_batch_commit(f->st) : rc;
}

static inline int pt_log(pt_fx *f, store_stream s, const char *line)
{
	return store_log_put(f->st, f->run, 1, 2000.0, s, line, strlen(line));
}

/* 20 early lines (out of the tail), secrets, then 35 ordinary lines. */
static inline int pt_logs(pt_fx *f)
{
	static const char *const secrets[] = {
		"export OPENAI_API_KEY=sk-proj-abcdefghijklmnop0123456789",
		"curl -H 'Authorization: Bearer abcdefghijklmnop123456' https://x",
		"aws key AKIAIOSFODNN7EXAMPLE in use",
		"db password: hunter2xyz",
		"login with token 0123456789abcdef0123456789abcdef",
		"fetching https://bob:s3cretpw@db.example.com/data",
		"-----BEGIN RSA PRIVATE KEY-----",
		"echo " PT_KEY " done",
		"ghp_abcdefghijklmnopqrstuvwxyz0123 pushed",
	};
	char line[128];
	int rc = 0;
	for (int i = 0; i < 20 && rc == 0; i++) {
		snprintf(line, sizeof line, "early line %d", i);
		rc = pt_log(f, STORE_STDOUT, line);
	}
	for (size_t i = 0; i < sizeof secrets / sizeof secrets[0] && rc == 0; i++)
		rc = pt_log(f, STORE_STDERR, secrets[i]);
	rc = rc ? rc : pt_log(f, STORE_EVENT, "an event line, not trainer output");
	for (int i = 0; i < 35 && rc == 0; i++) {
		snprintf(line, sizeof line, "step %d loss 3.1 tokens_per_s=48000", 150 + i);
		rc = pt_log(f, STORE_STDOUT, line);
	}
	return rc;
}

static inline int64_t pt_incident(pt_fx *f, const char *kind, const char *sig)
{
	int64_t id = 0;
	int fresh = 0;
	store_incident in = {
		.run_id = f->run, .kind = kind, .severity = "warning", .signature = sig,
		.onset_step = 150, .first_t = 1150.0, .summary = "loss 9 vs median 2.86 (62 sigma)",
		.evidence = "{\"value\":9,\"baseline\":2.86,\"points\":[[149,2.851],[150,9]]}",
	};
	if (store_incident_upsert(f->st, &id, &fresh, &in) < 0)
		fprintf(stderr, "incident: %s\n", tend_error_last());
	return id;
}

/* A workspace: WS/tend.db with one run, WS/scaffold seeded from lua/. */
static inline int pt_open(pt_fx *f, const char *kind)
{
	int rc;
	memset(f, 0, sizeof *f);
	setenv(PT_KEY_ENV, PT_KEY, 1);
	pt_fresh(f->ws, sizeof f->ws, "ws");
	mkdir(f->ws, 0755);
	snprintf(f->db, sizeof f->db, "%s/tend.db", f->ws);
	snprintf(f->scaffold, sizeof f->scaffold, "%s/scaffold", f->ws);
	if ((rc = store_open(&f->st, f->db, STORE_CREATE)) < 0 ||
	    (rc = store_run_create(f->st, &f->run, "r1", "{}", f->ws)) < 0 ||
	    (rc = pt_metrics(f)) < 0 || (rc = pt_logs(f)) < 0 ||
	    (rc = patch_repo_init(&f->repo, f->scaffold, pt_lua_dir(), "tend test <t@t>")) < 0) {
		fprintf(stderr, "fixture: %s\n", tend_error_last());
		return rc;
	}
	f->inc = pt_incident(f, kind, kind);
	return f->inc > 0 ? 0 : -1;
}

static inline void pt_close(pt_fx *f)
{
	patch_repo_free(f->repo);
	store_close(f->st);
	f->repo = NULL;
	f->st = NULL;
}

static inline char *pt_ctx_json(const prop_ctx *c)
{
	jbuf b;
	jbuf_init(&b);
	prop_ctx_json(c, &b);
	char *s = strdup(jbuf_cstr(&b, NULL));
	jbuf_free(&b);
	return s;
}

#endif
