/*
 * serve_int.h - what the files of the dashboard server share (srv__ names):
 * the server record, one request as the handlers see it, the store pool,
 * the run-summary cache, the child-process runner and the embedded assets.
 */
#ifndef SERVE_INT_H
#define SERVE_INT_H

#include "inspect.h"
#include "json.h"
#include "serve_assets.h"
#include "serve.h"
#include "store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct MHD_Daemon;
struct MHD_Connection;

#define SRV__POOL 8          /* store connections kept open */
#define SRV__CACHE 256       /* run summaries kept */
#define SRV__MAX_BODY 65536  /* largest POST body */
#define SRV__MAX_NAMES 16    /* metrics one series request may ask for */
#define SRV__MAX_LIMIT 10000 /* rows one listing may ask for */
#define SRV__LIVE_TTL_S 5.0  /* how long a live run's summary is reused */
#define SRV__SERIES 64       /* downsampled series kept (serve_series.c) */

typedef struct srv__series srv__series;

typedef struct srv__summary {
	int64_t run_id;
	double at;      /* when it was computed (monotonic-ish wall time) */
	bool final;     /* the run had ended: the summary will not change */
	insp_summary s;
} srv__summary;

struct srv {
	char *ws, *db, *exe, *token_path;
	char url[160];
	char host[128];          /* as given in listen, without brackets */
	int port;
	bool loopback, read_only, need_token;
	char token[128];         /* the bearer token when need_token */
	char csrf[65];           /* per-process; given out by /api/session */
	double timeout_s;
	struct MHD_Daemon *d;

	pthread_mutex_t mu;      /* guards pool and cache */
	store *pool[SRV__POOL];
	int npool;
	srv__summary cache[SRV__CACHE];
	int ncache, cache_next;
	srv__series *series[SRV__SERIES];
};

/* Frees the series cache (serve_series.c). */
void srv__series_cache_free(srv *s);

/* One request. Handlers write a JSON body into out and return the HTTP
 * status; srv__fail does both for errors. */
typedef struct srv__req {
	srv *s;
	struct MHD_Connection *c;
	const char *method, *path;
	int64_t id;              /* the number in the path, when the route has one */
	char *body;              /* POST body, NUL-terminated */
	size_t len;
	bool too_big;
	jbuf out;
	const char *ctype;       /* of out; NULL: application/json */
} srv__req;

typedef int (*srv__handler)(srv__req *r, store *st);

/* Writes {"error": message} into r->out and returns status. */
int srv__fail(srv__req *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The value of query argument key, or NULL. */
const char *srv__arg(srv__req *r, const char *key);

/* Parses query argument key as an integer in [min, max]; absent leaves
 * *out as it was. 0, or the status of the 400 answer already written. */
int srv__arg_int(srv__req *r, const char *key, int64_t min, int64_t max,
		 int64_t *out);

/* The run named by query argument "run": 0, or the 400/404 written. */
int srv__arg_run(srv__req *r, store *st, store_run **out);

/* JSON helpers: numbers stay strict JSON (NaN null, inf as strings);
 * text that should be JSON goes in raw when it parses, else as a string. */
void srv__num(jbuf *b, double v);
void srv__time(jbuf *b, double t);
void srv__json_text(jbuf *b, const char *text);
void srv__kv_str(jbuf *b, const char *key, const char *v);
void srv__kv_int(jbuf *b, const char *key, int64_t v);
void srv__kv_num(jbuf *b, const char *key, double v);
void srv__kv_time(jbuf *b, const char *key, double t); /* null for 0 */

/* Answers a store failure: 503 when the store is busy, else 500. */
int srv__store_fail(srv__req *r);

/* The summary of run r (cached; see SRV__LIVE_TTL_S). */
int srv__summary_of(srv *s, store *st, const store_run *r, insp_summary *out);

/* A run's name by id into out ("" for 0 or a missing run). */
void srv__run_name(store *st, int64_t id, char *out, size_t cap);


/* Handlers (serve_api.c, serve_act.c, serve_prom.c). */
int srv__api_session(srv__req *r, store *st);
int srv__api_runs(srv__req *r, store *st);
int srv__api_run(srv__req *r, store *st);
int srv__api_series(srv__req *r, store *st);
int srv__api_moe(srv__req *r, store *st);
int srv__api_incidents(srv__req *r, store *st);
int srv__api_incident(srv__req *r, store *st);
int srv__api_proposals(srv__req *r, store *st);
int srv__api_proposal(srv__req *r, store *st);
int srv__api_audit(srv__req *r, store *st);
int srv__api_verify(srv__req *r, store *st);
int srv__api_approve(srv__req *r, store *st);
int srv__api_reject(srv__req *r, store *st);
int srv__prometheus(srv__req *r, store *st);

/* The asset at path ("/" is "/index.html"), or NULL. */
const srv__asset *srv__asset_find(const char *path);

#endif
