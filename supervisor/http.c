/*
 * http.c - libcurl multi bound to ev_loop through the socket and timer
 * callbacks (curl's "multi_socket" API), plus retry and deadline logic.
 */
#include "http.h"
#include "clock.h"
#include "tend.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct xfer xfer;

struct http_client {
	ev_loop *loop;
	CURLM *multi;
	int64_t timer_id; /* curl's one timer; 0 = none */
	xfer *live;       /* all requests, in flight or waiting to retry */
	int n_live;
};

struct xfer {
	http_client *c;
	xfer *next;
	CURL *easy;
	struct curl_slist *headers;
	char *url, *body, *method;
	size_t body_len;
	char *resp;
	size_t resp_len, resp_cap, max_resp;
	bool too_big;
	int attempts, max_attempts;
	long backoff_ms, deadline_ms, connect_ms, attempt_ms;
	double start, deadline;
	long retry_after_ms;
	http_done_fn fn;
	void *ud;
	char err[CURL_ERROR_SIZE];
};

static void xfer_free(xfer *x)
{
	if (!x)
		return;
	if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	free(x->url);
	free(x->body);
	free(x->method);
	free(x->resp);
	free(x);
}

static void unlink_xfer(http_client *c, xfer *x)
{
	for (xfer **p = &c->live; *p; p = &(*p)->next) {
		if (*p == x) {
			*p = x->next;
			c->n_live--;
			return;
		}
	}
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = size * n;
	if (x->resp_len + len > x->max_resp) {
		x->too_big = true;
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	}
	if (x->resp_len + len + 1 > x->resp_cap) {
		size_t cap = x->resp_cap ? x->resp_cap : 4096;
		while (cap < x->resp_len + len + 1)
			cap *= 2;
		char *r = realloc(x->resp, cap);
		if (!r)
			return 0;
		x->resp = r;
		x->resp_cap = cap;
	}
	memcpy(x->resp + x->resp_len, data, len);
	x->resp_len += len;
	x->resp[x->resp_len] = '\0';
	return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = size * n;
	if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		long s = strtol(data + 12, NULL, 10);
		if (s > 0 && s < 3600)
			x->retry_after_ms = s * 1000;
	}
	return len;
}

static void curl_setup(xfer *x)
{
	CURL *e = x->easy;
	double left = x->deadline - tend_mono_s();
	long left_ms = left > 0.001 ? (long)(left * 1000) : 1;
	if (x->attempt_ms > 0 && x->attempt_ms < left_ms)
		left_ms = x->attempt_ms;
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
	if (x->body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 x->connect_ms < left_ms ? x->connect_ms : left_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, left_ms);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	x->resp_len = 0;
	x->too_big = false;
	x->err[0] = '\0';
	x->retry_after_ms = 0;
}

static int start_attempt(xfer *x)
{
	x->attempts++;
	curl_setup(x);
	if (curl_multi_add_handle(x->c->multi, x->easy) != CURLM_OK)
		return tend_error_set(TEND_EIO, "http: cannot add request");
	return 0;
}

static void finish(xfer *x, int rc, long status, const char *error)
{
	http_client *c = x->c;
	http_response r = {
		.rc = rc, .status = status, .body = x->resp ? x->resp : "",
		.body_len = x->resp_len, .attempts = x->attempts,
		.elapsed_s = tend_mono_s() - x->start, .error = error,
	};
	unlink_xfer(c, x);
	x->fn(&r, x->ud);
	xfer_free(x);
}

static long retry_timer(ev_loop *loop, void *ud)
{
	(void)loop;
	xfer *x = ud;
	if (start_attempt(x) < 0)
		finish(x, TEND_EIO, 0, tend_error_last());
	return EV_TIMER_STOP;
}

/* Decides, after an attempt, between done, retry and give up. */
static void attempt_done(xfer *x, CURLcode cc)
{
	char msg[512];
	long status = 0;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(x->c->multi, x->easy);
	double left_ms = (x->deadline - tend_mono_s()) * 1000.0;
	if (x->too_big) {
		snprintf(msg, sizeof msg, "%s: response over %zu bytes refused", x->url, x->max_resp);
		finish(x, TEND_EINVAL, status, msg);
		return;
	}
	bool timed_out = cc == CURLE_OPERATION_TIMEDOUT;
	if (left_ms <= 50 && (timed_out || cc != CURLE_OK || left_ms <= 0)) {
		snprintf(msg, sizeof msg, "%s: deadline of %ld ms passed (%s)", x->url,
			 x->deadline_ms, x->err[0] ? x->err : curl_easy_strerror(cc));
		finish(x, TEND_ETIMEOUT, status, msg);
		return;
	}
	bool retryable = cc != CURLE_OK || status == 429 || status >= 500;
	if (!retryable) {
		finish(x, 0, status, NULL);
		return;
	}
	long delay = x->retry_after_ms ? x->retry_after_ms
		: x->backoff_ms << (x->attempts - 1 < 10 ? x->attempts - 1 : 10);
	if (x->attempts < x->max_attempts && delay < left_ms) {
		ev_timer_add(x->c->loop, delay, retry_timer, x, NULL);
		return;
	}
	if (cc != CURLE_OK)
		snprintf(msg, sizeof msg, "%s: %s (after %d attempts)", x->url,
			 x->err[0] ? x->err : curl_easy_strerror(cc), x->attempts);
	else
		snprintf(msg, sizeof msg, "%s: HTTP %ld (after %d attempts)", x->url,
			 status, x->attempts);
	finish(x, timed_out ? TEND_ETIMEOUT : TEND_EIO, status, msg);
}

static void drain(http_client *c)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(c->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		xfer *x;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		attempt_done(x, m->data.result);
	}
}

static void on_io(ev_loop *loop, int fd, int revents, void *ud)
{
	(void)loop;
	http_client *c = ud;
	int flags = 0, running;
	if (revents & (POLLIN | POLLHUP))
		flags |= CURL_CSELECT_IN;
	if (revents & POLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (revents & POLLERR)
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	drain(c);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *ud, void *sockp)
{
	(void)e;
	(void)sockp;
	http_client *c = ud;
	if (what == CURL_POLL_REMOVE) {
		ev_io_del(c->loop, s);
		return 0;
	}
	short ev = 0;
	if (what & CURL_POLL_IN)
		ev |= POLLIN;
	if (what & CURL_POLL_OUT)
		ev |= POLLOUT;
	ev_io_add(c->loop, s, ev, on_io, c);
	return 0;
}

static long on_curl_timer(ev_loop *loop, void *ud)
{
	(void)loop;
	http_client *c = ud;
	int running;
	c->timer_id = 0;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	drain(c);
	return EV_TIMER_STOP;
}

static int on_timer_change(CURLM *m, long ms, void *ud)
{
	(void)m;
	http_client *c = ud;
	if (c->timer_id)
		ev_timer_del(c->loop, c->timer_id);
	c->timer_id = 0;
	if (ms >= 0)
		ev_timer_add(c->loop, ms, on_curl_timer, c, &c->timer_id);
	return 0;
}

int http_client_new(http_client **out, ev_loop *loop)
{
	static bool inited;
	if (!inited) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		inited = true;
	}
	http_client *c = calloc(1, sizeof *c);
	if (!c || !(c->multi = curl_multi_init())) {
		free(c);
		return tend_error_set(TEND_ENOMEM, "http: cannot create client");
	}
	c->loop = loop;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	*out = c;
	return 0;
}

void http_client_free(http_client *c)
{
	if (!c)
		return;
	while (c->live) {
		xfer *x = c->live;
		c->live = x->next;
		curl_multi_remove_handle(c->multi, x->easy);
		xfer_free(x);
	}
	if (c->timer_id)
		ev_timer_del(c->loop, c->timer_id);
	curl_multi_cleanup(c->multi);
	free(c);
}

int http_pending(const http_client *c)
{
	return c->n_live;
}

static int xfer_make(xfer **out, http_client *c, const http_request *r)
{
	xfer *x = calloc(1, sizeof *x);
	if (!x)
		return TEND_ENOMEM;
	x->c = c;
	x->url = strdup(r->url);
	x->method = strdup(r->method ? r->method : r->body ? "POST" : "GET");
	if (r->body) {
		x->body = malloc(r->body_len + 1);
		if (x->body) {
			memcpy(x->body, r->body, r->body_len);
			x->body[r->body_len] = '\0';
		}
		x->body_len = r->body_len;
	}
	for (const char *const *h = r->headers; h && *h; h++) {
		struct curl_slist *n = curl_slist_append(x->headers, *h);
		if (!n)
			goto oom;
		x->headers = n;
	}
	if (!x->url || !x->method || (r->body && !x->body) || !(x->easy = curl_easy_init()))
		goto oom;
	*out = x;
	return 0;
oom:
	xfer_free(x);
	return TEND_ENOMEM;
}

int http_send(http_client *c, const http_request *r, http_done_fn fn, void *ud)
{
	xfer *x;
	if (!r->url || strncmp(r->url, "http", 4) != 0)
		return tend_error_set(TEND_EINVAL, "http: '%s' is not an http(s) URL",
				      r->url ? r->url : "");
	if (xfer_make(&x, c, r) < 0)
		return tend_error_set(TEND_ENOMEM, "http: out of memory");
	x->fn = fn;
	x->ud = ud;
	x->max_resp = r->max_response_bytes ? r->max_response_bytes : 4u << 20;
	x->max_attempts = r->max_attempts > 0 ? r->max_attempts : 1;
	x->backoff_ms = r->backoff_ms > 0 ? r->backoff_ms : 500;
	x->deadline_ms = r->deadline_ms > 0 ? r->deadline_ms : 30000;
	x->connect_ms = r->connect_timeout_ms > 0 ? r->connect_timeout_ms : 5000;
	x->attempt_ms = r->attempt_timeout_ms;
	x->start = tend_mono_s();
	x->deadline = x->start + (double)x->deadline_ms / 1000.0;
	x->next = c->live;
	c->live = x;
	c->n_live++;
	if (start_attempt(x) < 0) {
		unlink_xfer(c, x);
		xfer_free(x);
		return TEND_EIO;
	}
	return 0;
}

typedef struct {
	int rc;
	long status;
	char *body;
	size_t len;
	char err[512];
	bool done;
} sync_result;

static void sync_done(const http_response *r, void *ud)
{
	sync_result *s = ud;
	s->rc = r->rc;
	s->status = r->status;
	s->done = true;
	if (r->error)
		snprintf(s->err, sizeof s->err, "%s", r->error);
	if ((s->body = malloc(r->body_len + 1))) {
		memcpy(s->body, r->body, r->body_len + 1);
		s->len = r->body_len;
	}
}

int http_send_sync(const http_request *req, long *status, char **body, size_t *body_len)
{
	ev_loop *loop = NULL;
	http_client *c = NULL;
	sync_result s = {0};
	int rc;
	if ((rc = ev_new(&loop)) < 0 || (rc = http_client_new(&c, loop)) < 0 ||
	    (rc = http_send(c, req, sync_done, &s)) < 0)
		goto done;
	while (!s.done)
		if ((rc = ev_run_once(loop, 100)) < 0)
			goto done;
	rc = s.rc;
	if (rc < 0) {
		tend_error_set(rc, "%s", s.err);
		free(s.body);
		goto done;
	}
	*status = s.status;
	*body = s.body;
	if (body_len)
		*body_len = s.len;
done:
	http_client_free(c);
	ev_free(loop);
	return rc;
}
