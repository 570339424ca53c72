/*
 * test_e2e_webhook.c - alerts from a real run to a real loopback server:
 * a webhook that answers, one that hangs and one that answers 500. The run
 * still finishes on time, the good webhook receives the Slack-compatible
 * incident and recovery JSON, and the failures are events in the store.
 */
#include "e2e.h"
#include "tt.h"
#include "httpd.h"

static char *requests_log(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/requests.log", dir);
	return e2e_slurp(path);
}

static int count_sub(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_webhooks_from_a_run(void)
{
	char ws[PATH_MAX], srvdir[PATH_MAX], alerts[1024];
	test_httpd srv = {0};
	e2e_proc p;
	snprintf(srvdir, sizeof srvdir, "%s/httpd", e2e_root);
	TT_REQUIRE(mkdir(srvdir, 0755) == 0);
	snprintf(alerts, sizeof alerts, "%s/ok.body", srvdir);
	TT_REQUIRE(fsu_write_atomic(alerts, "ok", 2, 0644) == 0); /* Slack answers "ok" */
	TT_REQUIRE(test_httpd_start(&srv, srvdir) == 0);
	snprintf(alerts, sizeof alerts,
		 "alerts:\n  retries: 1\n  backoff_s: 0.2\n  webhooks:\n"
		 "    - url: http://127.0.0.1:%d/ok/hook\n      events: [incident, recovery]\n"
		 "    - url: http://127.0.0.1:%d/hang/hook\n      timeout_s: 1\n"
		 "    - url: http://127.0.0.1:%d/500/hook\n      events: [incident]\n",
		 srv.port, srv.port, srv.port);
	e2e_cfg c = {.inject = "\"nan@35\"", .extra = alerts};
	TT_REQUIRE(e2e_workspace(ws, sizeof ws, "hooks", &c) == 0);
	double t0 = e2e_now();
	int rc = e2e_tend(&p, ws, "run", 90, "run", "r", "--no-status");
	double wall = e2e_now() - t0;
	sqlite3 *db = e2e_db(ws);
	char *log = requests_log(srvdir);
	TT_REQUIRE(db);
	TT_CHECK(rc == 0);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "finished");
	/* A hanging webhook costs the run at most its timeouts, in the
	 * background, and the teardown's few seconds. */
	TT_CHECK(wall < 30);
	/* The good webhook got the incident and the recovery, Slack-style. */
	TT_CHECK_HAS(log, "POST /ok/hook ");
	TT_CHECK_HAS(log, "{\"text\":\"tend: run r: loss is nan at step 35");
	TT_CHECK_HAS(log, "\"tend\":{\"kind\":\"incident\",\"key\":\"nonfinite:loss\"}}");
	TT_CHECK_HAS(log, "\"tend\":{\"kind\":\"recovery\",\"key\":\"recovery:nonfinite:loss\"}}");
	TT_CHECK_HAS(log, "-> rollback (non-finite values: roll back to a good checkpoint");
	/* 500: retried once, then given up on. */
	TT_CHECK(count_sub(log, "POST /500/hook ") >= 2);
	TT_CHECK(count_sub(log, "POST /hang/hook ") >= 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'alert' AND reason LIKE "
			 "'delivered %% to http://127.0.0.1:%d/ok/hook'", srv.port) >= 2);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'alert_failed' AND "
			 "reason LIKE 'failed to deliver nonfinite:loss: %%500%%'") >= 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'alert_failed' AND "
			 "reason LIKE 'failed to deliver %%' AND reason NOT LIKE '%%500%%'") >= 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'alert' AND "
			 "reason LIKE '%%/500/%%'") == 0);
	if (tt_case_failed) {
		e2e_dump_run(db);
		fprintf(stderr, "-- requests.log\n%s\n", log);
	}
	free(log);
	sqlite3_close(db);
	test_httpd_stop(&srv);
	e2e_kill_trainer(ws, "r");
}

int main(void)
{
	if (e2e_setup() < 0)
		return 1;
	TT_RUN(test_webhooks_from_a_run);
	e2e_teardown();
	return TT_DONE();
}
