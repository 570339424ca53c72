/* test_alert.c - webhooks against a real loopback server: Slack-compatible
 * body, subscription by kind, de-duplication, a 500 server and a hanging
 * server reported as failures without stalling the loop. */
#include "alert.h"
#include "ev.h"
#include "httpd.h"
#include "tend.h"
#include "tt.h"

static test_httpd srv;
static char dir[64];

typedef struct {
	int ok, failed;
	char last_error[600];
} tally;

static void on_result(const char *url, const char *key, int rc, const char *error, void *ud)
{
	(void)url;
	(void)key;
	tally *t = ud;
	if (rc == 0)
		t->ok++;
	else {
		t->failed++;
		snprintf(t->last_error, sizeof t->last_error, "%s", error);
	}
}

static char *requests_log(void)
{
	static char buf[65536];
	char path[128];
	snprintf(path, sizeof path, "%s/requests.log", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return "";
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void drive(ev_loop *loop, http_client *h, double max_s)
{
	double t0 = ev_now(loop);
	while (http_pending(h) > 0 && ev_now(loop) - t0 < max_s)
		ev_run_once(loop, 100);
}

static void test_delivery_kinds_and_dedup(void)
{
	ev_loop *loop;
	http_client *h;
	alert *a;
	tally t = {0};
	char u1[128], u2[128];
	snprintf(u1, sizeof u1, "http://127.0.0.1:%d/ok/incidents", srv.port);
	snprintf(u2, sizeof u2, "http://127.0.0.1:%d/ok/promotions", srv.port);
	cfg_webhook hooks[] = {
		{u1, CFG_EVENT_INCIDENT | CFG_EVENT_GIVEUP, 2.0},
		{u2, CFG_EVENT_PROMOTION, 2.0},
	};
	cfg_alerts cfg = {.webhooks = {hooks, 2}, .retries = 2, .backoff_s = 0.1};
	ev_new(&loop);
	http_client_new(&h, loop);
	TT_REQUIRE(alert_new(&a, h, &cfg, 600, on_result, &t) == 0);
	TT_CHECK(alert_post(a, CFG_EVENT_INCIDENT, "loss_spike:run1", "loss spike \"x\" at step 5", 0) == 1);
	TT_CHECK(alert_post(a, CFG_EVENT_INCIDENT, "loss_spike:run1", "again", 10) == 0);
	TT_CHECK(alert_post(a, CFG_EVENT_PROMOTION, "promo:1", "promoted", 10) == 1);
	TT_CHECK(alert_post(a, CFG_EVENT_RECOVERY, "rec:1", "nobody listens", 10) == 0);
	TT_CHECK(alert_post(a, CFG_EVENT_INCIDENT, "loss_spike:run1", "after window", 700) == 1);
	drive(loop, h, 5);
	TT_CHECK(t.ok == 3 && t.failed == 0);
	alert_stats st;
	alert_get_stats(a, &st);
	TT_CHECK(st.deduped == 1 && st.delivered == 3);
	const char *log = requests_log();
	TT_CHECK_HAS(log, "POST /ok/incidents");
	TT_CHECK_HAS(log, "{\"text\":\"loss spike \\\"x\\\" at step 5\",\"tend\":{\"kind\":\"incident\",\"key\":\"loss_spike:run1\"}}");
	TT_CHECK_HAS(log, "POST /ok/promotions");
	TT_CHECK(strstr(log, "nobody listens") == NULL);
	alert_free(a);
	http_client_free(h);
	ev_free(loop);
}

static long tick(ev_loop *l, void *ud)
{
	(void)l;
	(*(int *)ud)++;
	return 50;
}

static void test_500_and_hang_fail_cleanly(void)
{
	ev_loop *loop;
	http_client *h;
	alert *a;
	tally t = {0};
	int ticks = 0;
	char u1[128], u2[128];
	snprintf(u1, sizeof u1, "http://127.0.0.1:%d/500/x", srv.port);
	snprintf(u2, sizeof u2, "http://127.0.0.1:%d/hang/x", srv.port);
	cfg_webhook hooks[] = {{u1, CFG_EVENT_GIVEUP, 1.0}, {u2, CFG_EVENT_GIVEUP, 0.5}};
	cfg_alerts cfg = {.webhooks = {hooks, 2}, .retries = 1, .backoff_s = 0.05};
	ev_new(&loop);
	http_client_new(&h, loop);
	ev_timer_add(loop, 50, tick, &ticks, NULL);
	TT_REQUIRE(alert_new(&a, h, &cfg, 600, on_result, &t) == 0);
	TT_CHECK(alert_post(a, CFG_EVENT_GIVEUP, "giveup:run1", "gave up", 0) == 2);
	drive(loop, h, 10);
	TT_CHECK(t.failed == 2 && t.ok == 0);
	TT_CHECK(ticks >= 8); /* the hang did not stall the loop */
	alert_free(a);
	http_client_free(h);
	ev_free(loop);
}

int main(void)
{
	char path[128];
	strcpy(dir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/ok.body", dir);
	FILE *f = fopen(path, "w");
	fputs("ok", f);
	fclose(f);
	if (test_httpd_start(&srv, dir) < 0)
		return 1;
	TT_RUN(test_delivery_kinds_and_dedup);
	TT_RUN(test_500_and_hang_fail_cleanly);
	test_httpd_stop(&srv);
	snprintf(path, sizeof path, "rm -rf %s", dir);
	if (system(path) != 0)
		return 1;
	return TT_DONE();
}
