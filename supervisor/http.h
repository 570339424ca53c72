/*
 * http.h - HTTP requests through libcurl's multi interface, driven by the
 * supervisor's event loop: webhooks and model requests never block it.
 *
 * Each request is bounded: a connect timeout, a hard deadline over all its
 * attempts (a trickling body is cut there), a cap on the response size.
 * Retries with exponential backoff on transport errors, 429 and 5xx; a
 * Retry-After header (seconds) is honoured within the deadline.
 */
#ifndef HTTP_H
#define HTTP_H

#include "ev.h"

#include <stddef.h>

typedef struct http_client http_client;

typedef struct http_request {
	const char *method;           /* "GET", "POST"; NULL = POST if body */
	const char *url;
	const char *const *headers;   /* "Name: value", NULL-terminated */
	const char *body;
	size_t body_len;
	long connect_timeout_ms;      /* 0 = 5000 */
	long deadline_ms;             /* over all attempts; 0 = 30000 */
	long attempt_timeout_ms;      /* one attempt; 0 = up to the deadline */
	size_t max_response_bytes;    /* 0 = 4 MiB */
	int max_attempts;             /* 0 = 1 */
	long backoff_ms;              /* first retry delay; doubles; 0 = 500 */
} http_request;

typedef struct http_response {
	int rc;            /* 0, or TEND_ETIMEOUT / TEND_EIO / TEND_EINVAL */
	long status;       /* HTTP status of the last attempt (0 if none) */
	const char *body;  /* NUL-terminated; valid during the callback only */
	size_t body_len;
	int attempts;
	double elapsed_s;
	const char *error; /* message when rc != 0, e.g. "deadline of 2000 ms passed" */
} http_response;

typedef void (*http_done_fn)(const http_response *res, void *ud);

/* A client bound to loop; the caller owns it. Freeing it cancels pending
 * requests without calling their callbacks. */
int http_client_new(http_client **out, ev_loop *loop);
void http_client_free(http_client *c);

/* Starts a request; fn is called exactly once, from the loop. The request
 * (url, headers, body) is copied. */
int http_send(http_client *c, const http_request *req, http_done_fn fn, void *ud);

/* Requests still in flight. */
int http_pending(const http_client *c);

/* Sends one request and runs a private loop until it completes (for the
 * CLI). *status and the body (caller frees) are filled on rc == 0. */
int http_send_sync(const http_request *req, long *status, char **body, size_t *body_len);

#endif
