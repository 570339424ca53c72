/* test_scf.c - the scaffold host: the default scaffold in lua/, values
 * checked, actions parsed, reload keeping the old state, import. Each
 * case writes its scaffold files into a fresh temporary directory. */
#include "scf.h"
#include "tend.h"
#include "tt.h"

#include <math.h>
#include <stdarg.h>
#include <unistd.h>

static char dir[64];

/* Writes dir/name with the text given (printf-style). */
static void put(const char *name, const char *fmt, ...)
{
	char path[256];
	va_list ap;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

/* A valid scaffold whose parts can be swapped: each argument is Lua code
 * defining one function body (NULL = the plain default). */
static void put_scaffold(const char *lr, const char *on_step, const char *extra)
{
	put("scaffold.lua",
	    "local S = { api = 1, config = { lr = 0.1, name = 'x' } }\n"
	    "function S.lr(step, total) %s end\n"
	    "function S.clip(step) return 1 end\n"
	    "function S.coeffs(step) return { aux = 0.01, z = 0.001 } end\n"
	    "function S.on_step(m) %s end\n"
	    "%s\n"
	    "return S\n",
	    lr ? lr : "return S.config.lr", on_step ? on_step : "return nil",
	    extra ? extra : "");
}

static scf *open_dir(const char *d)
{
	scf *f = NULL;
	if (scf_open(&f, d, NULL) != 0)
		fprintf(stderr, "scf_open: %s\n", tend_error_last());
	return f;
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(dir))
		dir[0] = '\0';
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (dir[0] && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static bool near(double a, double b)
{
	return fabs(a - b) <= 1e-12 + 1e-9 * fabs(b);
}

static void test_default_scaffold(void)
{
	char lua_dir[512];
	const char *root = getenv("TEND_SOURCE_ROOT");
	double v, aux, z;
	scf_actions act;
	scf_moe moe[2] = {{1.2, 2.0, 0}, {3.5, 1.1, 0.02}};
	scf_metrics m = {.step = 5, .loss = 3.1, .grad_norm = 0.8, .lr = 1e-4,
			 .tokens_per_s = 5e4, .step_time_s = 0.2, .moe = moe, .n_moe = 2};
	TT_REQUIRE(root);
	snprintf(lua_dir, sizeof lua_dir, "%s/lua", root);
	scf *f = open_dir(lua_dir);
	TT_REQUIRE(f);
	TT_CHECK_RC(scf_lr(f, 0, 1000, &v), 0);
	TT_CHECK(near(v, 3e-6));
	TT_CHECK_RC(scf_lr(f, 49, 1000, &v), 0);
	TT_CHECK(near(v, 1.5e-4));
	TT_CHECK_RC(scf_lr(f, 99, 1000, &v), 0);
	TT_CHECK(near(v, 3e-4));
	TT_CHECK_RC(scf_lr(f, 100, 1000, &v), 0);
	TT_CHECK(near(v, 3e-4));
	TT_CHECK_RC(scf_lr(f, 550, 1000, &v), 0); /* half way down the cosine */
	TT_CHECK(near(v, 3e-5 + 0.5 * (3e-4 - 3e-5)));
	TT_CHECK_RC(scf_lr(f, 1000, 1000, &v), 0);
	TT_CHECK(near(v, 3e-5));
	TT_CHECK_RC(scf_lr(f, 5000, 1000, &v), 0); /* past the end: stays at the floor */
	TT_CHECK(near(v, 3e-5));
	TT_CHECK_RC(scf_clip(f, 7, &v), 0);
	TT_CHECK(v == 1.0);
	TT_CHECK_RC(scf_coeffs(f, 7, &aux, &z), 0);
	TT_CHECK(aux == 1e-2 && z == 1e-3);
	TT_CHECK_RC(scf_on_step(f, &m, &act), 0);
	TT_CHECK(act.skip == 0 && !act.checkpoint && !act.stop && act.reason[0] == '\0');
	TT_CHECK_RC(scf_config_num(f, "warmup", 0, &v), 0);
	TT_CHECK(v == 100);
	TT_CHECK_RC(scf_config_num(f, "no_such_key", 42, &v), 0);
	TT_CHECK(v == 42);
	TT_CHECK_STR(scf_dir(f), lua_dir);
	scf_free(f);
	scf_free(NULL);
}

static void test_actions_parsed(void)
{
	scf_actions act;
	scf_moe moe[2] = {{1.25, 2.0, 0}, {3.5, 1.1, 0.02}};
	scf_metrics m = {.step = 12, .loss = 3.5, .grad_norm = 0.8, .lr = 1e-4, .tokens_per_s = 5e4,
			 .step_time_s = 0.2, .moe = moe, .n_moe = 2};
	setup();
	put_scaffold(NULL,
		     "if m.step ~= 12 then return nil end\n"
		     "return { skip = 3, checkpoint = true, stop = false, reason = string.format(\n"
		     "  '%d %.2f %s %d %.2f %.2f', m.step, m.loss, tostring(m.val_loss), #m.moe,\n"
		     "  m.moe[1].max_over_mean, m.moe[2].dropped) }", NULL);
	scf *f = open_dir(dir);
	TT_REQUIRE(f);
	TT_CHECK_RC(scf_on_step(f, &m, &act), 0);
	TT_CHECK(act.skip == 3 && act.checkpoint && !act.stop);
	TT_CHECK_STR(act.reason, "12 3.50 nil 2 1.25 0.02");
	m.has_val_loss = true;
	m.val_loss = 2.75;
	TT_CHECK_RC(scf_on_step(f, &m, &act), 0);
	TT_CHECK_STR(act.reason, "12 3.50 2.75 2 1.25 0.02");
	m.step = 13;
	TT_CHECK_RC(scf_on_step(f, &m, &act), 0);
	TT_CHECK(act.skip == 0 && !act.checkpoint && act.reason[0] == '\0');
	scf_free(f);
	teardown();
}

/* on_step answers that are refused, each with its message. */
static void test_bad_actions(void)
{
	static const char *const cases[][2] = {
		{"return { stopp = true }", "S.on_step: unknown action 'stopp' (API 1 knows skip, checkpoint, stop, reason)"},
		{"return { true }", "S.on_step: unknown action '1'"},
		{"return { skip = -1 }", "S.on_step: actions.skip is -1, want a whole number >= 0"},
		{"return { skip = 1.5 }", "S.on_step: actions.skip is 1.5, want a whole number >= 0"},
		{"return { skip = '2' }", "S.on_step: actions.skip is 2, want a whole number >= 0"},
		{"return { checkpoint = 'yes' }", "S.on_step: actions.checkpoint is a string, want a boolean"},
		{"return { reason = 5 }", "S.on_step: actions.reason is a number, want a string"},
		{"return 7", "S.on_step returned a number, want nil or an actions table"},
		{"return m.nope.x", "scaffold.lua:5: attempt to index a nil value (field 'nope')"},
	};
	scf_actions act;
	scf_metrics m = {.step = 1, .loss = 2};
	setup();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		put_scaffold(NULL, cases[i][0], NULL);
		scf *f = open_dir(dir);
		TT_REQUIRE(f);
		act.skip = 99;
		TT_CHECK_RC(scf_on_step(f, &m, &act), TEND_EINVAL);
		TT_CHECK_HAS(tend_error_last(), cases[i][1]);
		TT_CHECK(act.skip == 0);
		scf_free(f);
	}
	put_scaffold(NULL, "return { skip = 2.0, stop = true }", NULL);
	scf *f = open_dir(dir);
	TT_REQUIRE(f);
	TT_CHECK_RC(scf_on_step(f, &m, &act), 0);
	TT_CHECK(act.skip == 2 && act.stop);
	scf_free(f);
	teardown();
}

static void test_bad_returns(void)
{
	static const char *const cases[][2] = {
		{"return '0.1'", "S.lr(5, 100) returned a string, want a number"},
		{"return -0.1", "S.lr(5, 100) returned -0.1, want a finite number >= 0"},
		{"return 0/0", "S.lr(5, 100) returned NaN, want a finite number >= 0"},
		{"return math.huge", "S.lr(5, 100) returned inf, want a finite number >= 0"},
		{"return nil", "S.lr(5, 100) returned nil, want a number"},
		{"S.lr = 5 return 1", "S.lr is a number, want a function"},
	};
	double v;
	setup();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		put_scaffold(cases[i][0], NULL, NULL);
		scf *f = open_dir(dir);
		TT_REQUIRE(f);
		scf_lr(f, 5, 100, &v); /* the last case breaks S on its first call */
		TT_CHECK_RC(scf_lr(f, 5, 100, &v), TEND_EINVAL);
		TT_CHECK_STR(tend_error_last(), cases[i][1]);
		TT_CHECK(v == 0);
		scf_free(f);
	}
	put_scaffold(NULL, NULL, "function S.coeffs(step) return { aux = 0.01 } end\n"
		     "function S.clip(step) return {} end\nS.config.lr = 'high'");
	scf *f = open_dir(dir);
	TT_REQUIRE(f);
	TT_CHECK_RC(scf_coeffs(f, 3, &v, &v), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "S.coeffs(3).z is nil, want a number");
	TT_CHECK_RC(scf_clip(f, 3, &v), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "S.clip(3) returned a table, want a number");
	TT_CHECK_RC(scf_config_num(f, "lr", 1, &v), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "S.config.lr is a string, want a number");
	TT_CHECK(v == 1);
	scf_free(f);
	teardown();
}

/* A scaffold that is refused at open names the file (and line). */
static void test_open_refuses(void)
{
	static const char *const cases[][2] = {
		{"return 5", "scaffold.lua returned a number, want the scaffold table"},
		{"return {}", "scaffold.lua: S.api is nil, want 1"},
		{"return { api = 2 }", "scaffold.lua: S.api is 2, but this tend speaks scaffold API 1"},
		{"return { api = 1, config = {}, lr = print, clip = print, coeffs = print }",
		 "scaffold.lua: S.on_step is nil, want a function"},
		{"return { api = 1, config = 'x' }", "scaffold.lua: S.config is a string, want a table"},
		{"local S = {\n  api = 1,\n  config = {}\n  lr = 1 }", "scaffold.lua:4: '}' expected (to close '{' at line 1) near 'lr'"},
		{"x = nil + 1", "scaffold.lua:1: attempt to perform arithmetic on a nil value"},
		{"return", "scaffold.lua returned nothing; want the scaffold table"},
		{"while true do end", "scaffold.lua:1: instruction budget exceeded"},
	};
	scf *f = NULL;
	setup();
	TT_CHECK_RC(scf_open(&f, dir, NULL), TEND_ENOTFOUND);
	TT_CHECK_HAS(tend_error_last(), "scaffold.lua: No such file or directory");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		put("scaffold.lua", "%s\n", cases[i][0]);
		TT_CHECK(scf_open(&f, dir, NULL) < 0);
		TT_CHECK(f == NULL);
		TT_CHECK_HAS(tend_error_last(), cases[i][1]);
		TT_CHECK_HAS(tend_error_last(), dir);
	}
	put_scaffold(NULL, NULL, "function S.selftest() return S.lr(0, 10) > 1 end");
	TT_CHECK_RC(scf_open(&f, dir, NULL), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "S.selftest returned false, want true");
	put_scaffold(NULL, NULL, "function S.selftest()\n  assert(S.lr(0, 10) > 1, 'lr too low')\nend");
	TT_CHECK_RC(scf_open(&f, dir, NULL), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "scaffold.lua:7: lr too low");
	TT_CHECK_HAS(tend_error_last(), "scaffold.lua:7: in function <scaffold.lua:6>");
	teardown();
}

static void test_reload_keeps_old(void)
{
	double v;
	setup();
	put_scaffold("return 0.5", NULL, NULL);
	scf *f = open_dir(dir);
	TT_REQUIRE(f);
	lsb *before = scf_sandbox(f);
	put("scaffold.lua", "local S = { api = 1 \n return S\n");
	TT_CHECK_RC(scf_reload(f), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "scaffold.lua:2: '}' expected");
	TT_CHECK(scf_sandbox(f) == before);
	TT_CHECK_RC(scf_lr(f, 1, 10, &v), 0);
	TT_CHECK(v == 0.5);
	put_scaffold("return 0.25", NULL, "function S.selftest() return S.lr(0, 1) < 0.1 end");
	TT_CHECK_RC(scf_reload(f), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "S.selftest returned false");
	TT_CHECK_RC(scf_lr(f, 1, 10, &v), 0);
	TT_CHECK(v == 0.5);
	put_scaffold("return 0.25", NULL, NULL);
	TT_CHECK_RC(scf_reload(f), 0);
	TT_CHECK_RC(scf_lr(f, 1, 10, &v), 0);
	TT_CHECK(v == 0.25);
	scf_free(f);
	teardown();
}

static void test_import(void)
{
	double v;
	setup();
	put("sched.lua", "local M = {}\nfunction M.half(x) return x / 2 end\n"
	    "M.saw_global = shared_marker\nM.io = tostring(io)\nreturn M\n");
	put("plain.lua", "imported_plain = (imported_plain or 0) + 1\n");
	put("cycle_a.lua", "return import('cycle_b')\n");
	put("cycle_b.lua", "return import('cycle_a')\n");
	put_scaffold("return sched.half(S.config.lr)", NULL,
		     "shared_marker = 'seen'\n"
		     "sched = import('sched')\n"
		     "assert(import('sched') == sched and import('plain') == true and import('plain'))\n"
		     "S.config.saw = sched.saw_global == 'seen' and imported_plain == 1 and sched.io == 'nil' and 1 or 0");
	scf *f = open_dir(dir);
	TT_REQUIRE(f);
	TT_CHECK_RC(scf_lr(f, 0, 10, &v), 0);
	TT_CHECK(v == 0.05);
	TT_CHECK_RC(scf_config_num(f, "saw", 0, &v), 0);
	TT_CHECK(v == 1);
	scf_free(f);
	static const char *const bad[][2] = {
		{"import('../x')", "import: bad module name '../x'"},
		{"import('sched.lua')", "import: bad module name 'sched.lua'"},
		{"import('/etc/passwd')", "import: bad module name '/etc/passwd'"},
		{"import('Sched')", "import: bad module name 'Sched'"},
		{"import('')", "import: bad module name ''"},
		{"import('missing')", "import: missing.lua: No such file or directory"},
		{"import('link')", "import: link.lua: is a symbolic link"},
		{"import('cycle_a')", "import: 'cycle_a' is being imported already"},
		{"import('broken')", "broken.lua:1: unexpected symbol near '+'"},
	};
	char link_path[128];
	snprintf(link_path, sizeof link_path, "%s/link.lua", dir);
	TT_CHECK(symlink("/etc/hostname", link_path) == 0);
	put("broken.lua", "+\n");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		put_scaffold(NULL, NULL, bad[i][0]);
		TT_CHECK(scf_open(&f, dir, NULL) == TEND_EINVAL);
		TT_CHECK_HAS(tend_error_last(), bad[i][1]);
	}
	teardown();
}

static void test_limits_in_scaffold(void)
{
	lsb_limits lim = {.instructions = 1000000};
	scf_actions act;
	scf_metrics m = {.step = 1};
	double v;
	scf *f = NULL;
	setup();
	put_scaffold(NULL, "if m.step == 2 then while true do end end\n"
		     "if m.step == 3 then return ('x'):rep(100e6) end", NULL);
	TT_REQUIRE(scf_open(&f, dir, &lim) == 0);
	m.step = 2;
	TT_CHECK_RC(scf_on_step(f, &m, &act), TEND_ETIMEOUT);
	TT_CHECK_HAS(tend_error_last(), "scaffold.lua:5: instruction budget exceeded (1000000 per call)");
	TT_CHECK_HAS(tend_error_last(), "scaffold.lua:5: in function <scaffold.lua:5>");
	m.step = 3;
	TT_CHECK_RC(scf_on_step(f, &m, &act), TEND_ENOMEM);
	m.step = 4;
	TT_CHECK_RC(scf_on_step(f, &m, &act), 0);
	TT_CHECK_RC(scf_lr(f, 1, 10, &v), 0);
	TT_CHECK(v == 0.1);
	scf_free(f);
	teardown();
}

static void on_print(const char *text, size_t len, void *ud)
{
	strncat(ud, text, len);
}

static void test_print_and_reload(void)
{
	char got[256] = "";
	double v;
	setup();
	put_scaffold("print('lr at', step) return 0.1", NULL, NULL);
	scf *f = open_dir(dir);
	TT_REQUIRE(f);
	scf_set_print(f, on_print, got);
	TT_CHECK_RC(scf_lr(f, 3, 10, &v), 0);
	TT_CHECK_RC(scf_reload(f), 0);
	TT_CHECK_RC(scf_lr(f, 4, 10, &v), 0);
	TT_CHECK_STR(got, "lr at\t3\nlr at\t4\n");
	scf_free(f);
	teardown();
}

int main(void)
{
	TT_RUN(test_default_scaffold);
	TT_RUN(test_actions_parsed);
	TT_RUN(test_bad_actions);
	TT_RUN(test_bad_returns);
	TT_RUN(test_open_refuses);
	TT_RUN(test_reload_keeps_old);
	TT_RUN(test_import);
	TT_RUN(test_limits_in_scaffold);
	TT_RUN(test_print_and_reload);
	return TT_DONE();
}
