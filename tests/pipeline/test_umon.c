/* test_umon.c - Lua user monitors: incidents from monitors.lua reach the
 * emit callback validated; hostile or broken files are refused cleanly;
 * the default monitors.lua stays quiet on a falling loss. */
#include "fsutil.h"
#include "tend.h"
#include "tt.h"
#include "umon.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

static void write_monitors(const char *src)
{
	char path[128];
	snprintf(path, sizeof path, "%s/monitors.lua", dir);
	TT_CHECK_RC(fsu_write_atomic(path, src, strlen(src), 0644), 0);
}

typedef struct {
	int n;
	mon_incident last;
} got_t;

static int collect(const mon_incident *inc, void *ud)
{
	got_t *g = ud;
	g->n++;
	g->last = *inc;
	return 0;
}

static void feed_losses(umon *u, int n, double (*f)(int))
{
	for (int i = 1; i <= n; i++) {
		mon_sample s;
		mon_sample_init(&s, MON_SAMPLE_STEP, i, NAN);
		s.loss = f(i);
		s.present = MON_F_LOSS;
		umon_add(u, &s);
	}
}

static double rising(int i) { return 2.0 + i * 0.01; }
static double falling(int i) { return 5.0 / (1 + i * 0.01); }

static void test_incident_from_lua(void)
{
	umon *u = NULL;
	got_t g = {0};
	write_monitors("local M = {}\n"
		       "function M.check(s)\n"
		       "  for _, x in ipairs(s) do\n"
		       "    if x.loss and x.loss > 2.5 then\n"
		       "      return {{kind = 'too_high', severity = 'critical', step = x.step,\n"
		       "               summary = 'loss ' .. x.loss}}\n"
		       "    end\n"
		       "  end\n"
		       "end\n"
		       "return M\n");
	TT_REQUIRE(umon_open(&u, dir) == 0 && u);
	feed_losses(u, 100, rising);
	TT_CHECK_RC(umon_flush(u, collect, &g), 0);
	TT_CHECK(g.n == 1);
	TT_CHECK(g.last.kind == MON_USER);
	TT_CHECK(g.last.severity == MON_CRITICAL);
	TT_CHECK(g.last.last_step == 51);
	TT_CHECK_STR(g.last.signature, "user:too_high");
	TT_CHECK_HAS(g.last.summary, "user:too_high: loss 2.51");
	umon_free(u);
}

static void test_bad_returns_refused(void)
{
	umon *u = NULL;
	got_t g = {0};
	write_monitors("local M = {}\nfunction M.check(s) return {{kind = 'Bad Name!'}} end\n"
		       "return M\n");
	TT_REQUIRE(umon_open(&u, dir) == 0);
	feed_losses(u, 3, rising);
	TT_CHECK(umon_flush(u, collect, &g) == TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "kind must be 1-40 of [a-z0-9_]");
	TT_CHECK(g.n == 0);
	umon_free(u);
	write_monitors("local M = {}\nfunction M.check(s) while true do end end\nreturn M\n");
	TT_REQUIRE(umon_open(&u, dir) == 0);
	feed_losses(u, 3, rising);
	TT_CHECK(umon_flush(u, collect, &g) == TEND_ETIMEOUT);
	umon_free(u);
}

static void test_broken_file(void)
{
	umon *u = NULL;
	write_monitors("local M = {}\nos.execute('touch /tmp/pwned')\nreturn M\n");
	TT_CHECK(umon_open(&u, dir) < 0);
	TT_CHECK_HAS(tend_error_last(), "monitors.lua");
	TT_CHECK(u == NULL);
	write_monitors("return {}\n");
	TT_CHECK(umon_open(&u, dir) == TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "M.check must be a function");
}

static void test_default_quiet_on_training(void)
{
	umon *u = NULL;
	got_t g = {0};
	char src_path[512], *src = NULL;
	size_t len;
	snprintf(src_path, sizeof src_path, "%s/lua/monitors.lua", getenv("TEND_SOURCE_ROOT"));
	TT_REQUIRE(fsu_read_file(&src, &len, src_path, 1 << 20) == 0);
	write_monitors(src);
	free(src);
	TT_REQUIRE(umon_open(&u, dir) == 0 && u);
	feed_losses(u, 2000, falling);
	TT_CHECK_RC(umon_flush(u, collect, &g), 0);
	TT_CHECK(g.n == 0);
	feed_losses(u, 200, rising); /* restarts at step 1: 2.0.. < 1.2 x 5 */
	TT_CHECK_RC(umon_flush(u, collect, &g), 0);
	TT_CHECK(g.n == 0);
	umon_free(u);
}

static void test_no_file_no_monitors(void)
{
	umon *u = (umon *)1;
	char path[128];
	snprintf(path, sizeof path, "%s/monitors.lua", dir);
	unlink(path);
	TT_CHECK_RC(umon_open(&u, dir), 0);
	TT_CHECK(u == NULL);
	TT_CHECK_RC(umon_flush(NULL, collect, NULL), 0);
}

int main(void)
{
	strcpy(dir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	TT_RUN(test_incident_from_lua);
	TT_RUN(test_bad_returns_refused);
	TT_RUN(test_broken_file);
	TT_RUN(test_default_quiet_on_training);
	TT_RUN(test_no_file_no_monitors);
	fsu_rm_rf(dir);
	return TT_DONE();
}
