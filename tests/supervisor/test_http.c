/* test_http.c - the curl-multi client against a real loopback server: a
 * good answer, 500s retried then given up, a hang and a trickle cut at the
 * deadline, a 50 MB body refused, 429 then success, and the loop kept
 * turning while requests wait. */
#include "ev.h"
#include "http.h"
#include "httpd.h"
#include "tend.h"
#include "tt.h"

#include <sys/stat.h>

static test_httpd srv;
static char dir[64];

typedef struct {
	int rc;
	long status;
	int attempts;
	double elapsed;
	char body[256];
	char err[512];
	int done;
} result;

static void on_done(const http_response *r, void *ud)
{
	result *res = ud;
	res->rc = r->rc;
	res->status = r->status;
	res->attempts = r->attempts;
	res->elapsed = r->elapsed_s;
	snprintf(res->body, sizeof res->body, "%s", r->body);
	snprintf(res->err, sizeof res->err, "%s", r->error ? r->error : "");
	res->done = 1;
}

static long tick(ev_loop *l, void *ud)
{
	(void)l;
	(*(int *)ud)++;
	return 50;
}

/* Runs one request to completion, counting 50 ms ticks meanwhile. */
static void run(result *res, const char *path, long deadline_ms, int attempts, int *ticks)
{
	ev_loop *loop;
	http_client *c;
	char url[256];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv.port, path);
	const char *hdr[] = {"Content-Type: application/json", NULL};
	http_request req = {.url = url, .headers = hdr, .body = "{\"a\":1}", .body_len = 7,
		.deadline_ms = deadline_ms, .max_attempts = attempts, .backoff_ms = 100,
		.max_response_bytes = 1 << 20};
	memset(res, 0, sizeof *res);
	*ticks = 0;
	ev_new(&loop);
	http_client_new(&c, loop);
	ev_timer_add(loop, 50, tick, ticks, NULL);
	TT_REQUIRE(http_send(c, &req, on_done, res) == 0);
	while (!res->done)
		ev_run_once(loop, 1000);
	http_client_free(c);
	ev_free(loop);
}

static void test_ok(void)
{
	result r;
	int ticks;
	run(&r, "/ok/hook", 5000, 1, &ticks);
	TT_CHECK(r.rc == 0);
	TT_CHECK(r.status == 200);
	TT_CHECK_STR(r.body, "{\"ok\":true}");
}

static void test_500_retried_then_fails(void)
{
	result r;
	int ticks;
	run(&r, "/500/hook", 5000, 3, &ticks);
	TT_CHECK(r.rc == TEND_EIO);
	TT_CHECK(r.attempts == 3);
	TT_CHECK_HAS(r.err, "HTTP 500 (after 3 attempts)");
}

static void test_hang_hits_deadline_loop_alive(void)
{
	result r;
	int ticks;
	run(&r, "/hang/hook", 800, 1, &ticks);
	TT_CHECK(r.rc == TEND_ETIMEOUT);
	TT_CHECK_HAS(r.err, "deadline of 800 ms passed");
	TT_CHECK(r.elapsed >= 0.75 && r.elapsed < 2.0);
	TT_CHECK(ticks >= 10); /* the loop kept turning while we waited */
}

static void test_trickle_cut_at_deadline(void)
{
	result r;
	int ticks;
	run(&r, "/trickle/x", 1000, 3, &ticks);
	TT_CHECK(r.rc == TEND_ETIMEOUT);
	TT_CHECK(r.elapsed < 2.0);
}

static void test_big_body_refused(void)
{
	result r;
	int ticks;
	run(&r, "/big/x", 20000, 1, &ticks);
	TT_CHECK(r.rc == TEND_EINVAL);
	TT_CHECK_HAS(r.err, "response over 1048576 bytes refused");
}

static void test_429_then_success(void)
{
	result r;
	int ticks;
	run(&r, "/429/x", 10000, 5, &ticks);
	TT_CHECK(r.rc == 0);
	TT_CHECK(r.status == 200);
	TT_CHECK(r.attempts == 3);
	TT_CHECK(r.elapsed >= 1.9); /* Retry-After: 1 honoured twice */
}

static void test_sync_and_bad_url(void)
{
	char url[128], *body = NULL;
	long status = 0;
	snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", srv.port);
	http_request req = {.url = url, .method = "GET", .deadline_ms = 3000};
	TT_CHECK_RC(http_send_sync(&req, &status, &body, NULL), 0);
	TT_CHECK(status == 200);
	free(body);
	http_request bad = {.url = "file:///etc/passwd"};
	TT_CHECK(http_send_sync(&bad, &status, &body, NULL) == TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "is not an http(s) URL");
}

int main(void)
{
	char path[128];
	strcpy(dir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/ok.body", dir);
	FILE *f = fopen(path, "w");
	fputs("{\"ok\":true}", f);
	fclose(f);
	if (test_httpd_start(&srv, dir) < 0) {
		fprintf(stderr, "cannot start test server\n");
		return 1;
	}
	TT_RUN(test_ok);
	TT_RUN(test_500_retried_then_fails);
	TT_RUN(test_hang_hits_deadline_loop_alive);
	TT_RUN(test_trickle_cut_at_deadline);
	TT_RUN(test_big_body_refused);
	TT_RUN(test_429_then_success);
	TT_RUN(test_sync_and_bad_url);
	test_httpd_stop(&srv);
	snprintf(path, sizeof path, "rm -rf %s", dir);
	if (system(path) != 0)
		return 1;
	return TT_DONE();
}
