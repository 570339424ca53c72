/* test_builtin.c - the builtin proposer with the shipped lua/playbook.lua on
 * a scaffold repository seeded from lua/: its diff passes
 * patch_validate_paths, applies with patch_apply_to_branch, the patched
 * scaffold loads and passes its selftest; it is deterministic; after
 * promotion the next proposal moves further; kinds it has no rule for give
 * TEND_ENOTFOUND; and hostile or broken playbooks are refused. */
#include "pt.h"

#include "scf.h"

static pt_fx fx;
static const char *const ALLOWED[] = {"*.lua", "prompts/*.md"};
static const char *const DENIED[] = {"gates*", "tend.yaml", ".git"};
static const cfg_proposer BUILTIN = {.kind = CFG_PROPOSER_BUILTIN};

static int ask(prop_result *r, int64_t inc, const char *dir)
{
	prop_ctx *c = NULL;
	int rc = prop_ctx_build(&c, fx.st, fx.repo, inc, NULL);
	if (rc == 0)
		rc = prop_ask(r, &BUILTIN, c, dir, NULL);
	prop_ctx_free(c);
	return rc;
}

/* Applies r's diff on a new branch, checks the scaffold there loads. */
static void applies(const prop_result *r, const char *branch)
{
	git_oid oid;
	patch_trailer tr[] = {{"Proposer", r->proposer}};
	TT_CHECK_RC(patch_validate_paths(r->diff, strlen(r->diff), ALLOWED, 2, DENIED, 3), 0);
	TT_CHECK_RC(patch_apply_to_branch(&oid, fx.repo, "main", r->diff, strlen(r->diff), branch,
					  "test proposal", tr, 1), 0);
	char dir[300];
	pt_fresh(dir, sizeof dir, "tree");
	TT_CHECK_RC(patch_materialize(fx.repo, branch, dir), 0);
	scf *s = NULL;
	TT_CHECK_RC(scf_open(&s, dir, NULL), 0);
	scf_free(s);
}

static void test_spike_patch(void)
{
	prop_result r;
	TT_REQUIRE(ask(&r, fx.inc, fx.scaffold) == 0);
	TT_CHECK_STR(r.proposer, "builtin");
	TT_CHECK(strncmp(r.model, "playbook.lua@", 13) == 0 && strlen(r.model) == 25);
	TT_CHECK(strlen(r.prompt_sha256) == 64 && strlen(r.response_sha256) == 64);
	TT_CHECK(r.confidence == 0.6);
	TT_CHECK(r.tokens_in == 0 && r.tokens_out == 0);
	TT_CHECK_HAS(r.diagnosis, "loss_spike at step 150: loss 9 vs median 2.86 (62 sigma)");
	TT_CHECK_HAS(r.rationale, "(clip 1 -> 0.5)");
	TT_CHECK_HAS(r.diff, "diff --git a/scaffold.lua b/scaffold.lua\n");
	TT_CHECK_HAS(r.diff, "--- a/scaffold.lua\n+++ b/scaffold.lua\n@@ ");
	TT_CHECK_HAS(r.diff, "\n-  clip = 1.0,       -- gradient-norm clip (0 = none)\n"
		     "+  clip = 0.5,       -- gradient-norm clip (0 = none)\n");
	TT_CHECK(strstr(r.diff, "\n-  lr =") == NULL);
	applies(&r, "proposals/1-1");
	char *blob = NULL;
	TT_CHECK_RC(patch_read_blob(&blob, NULL, fx.repo, "proposals/1-1", "scaffold.lua"), 0);
	TT_CHECK_HAS(blob, "  clip = 0.5,");
	free(blob);
	/* deterministic: the same context gives the same bytes */
	prop_result r2;
	TT_REQUIRE(ask(&r2, fx.inc, fx.scaffold) == 0);
	TT_CHECK_STR(r2.diff, r.diff);
	TT_CHECK_STR(r2.prompt_sha256, r.prompt_sha256);
	TT_CHECK_STR(r2.response_sha256, r.response_sha256);
	TT_CHECK_STR(r2.diagnosis, r.diagnosis);
	prop_result_free(&r2);
	/* promoted, the next proposal for the same kind goes further */
	git_oid oid;
	patch_trailer tr[] = {{"Proposal", "1"}};
	TT_REQUIRE(patch_promote(&oid, fx.repo, "proposals/1-1", "promote", tr, 1) == 0);
	TT_REQUIRE(ask(&r2, fx.inc, fx.scaffold) == 0);
	TT_CHECK(strcmp(r2.diff, r.diff) != 0);
	TT_CHECK_HAS(r2.diff, "\n-  clip = 0.5,");
	TT_CHECK_HAS(r2.diff, "\n+  clip = 0.25,");
	TT_CHECK(strcmp(r2.prompt_sha256, r.prompt_sha256) != 0);
	applies(&r2, "proposals/1-2");
	prop_result_free(&r2);
	prop_result_free(&r);
}

static void test_kinds(void)
{
	prop_result r;
	int64_t div = pt_incident(&fx, "divergence", "divergence");
	TT_REQUIRE(ask(&r, div, fx.scaffold) == 0);
	TT_CHECK_HAS(r.diff, "\n-  lr = 3e-4,");
	TT_CHECK_HAS(r.diff, "\n+  lr = 0.00015,     -- peak learning rate");
	TT_CHECK_HAS(r.diff, "\n-  warmup = 100,");
	TT_CHECK_HAS(r.diff, "\n+  warmup = 200,");
	TT_CHECK(strstr(r.diff, "\n-  min_lr") == NULL);
	applies(&r, "proposals/div-1");
	prop_result_free(&r);

	/* non-finite: first skip the data window around the onset; once main
	 * skips it, bound the update instead */
	int64_t nf = pt_incident(&fx, "nonfinite", "nonfinite:loss");
	TT_REQUIRE(ask(&r, nf, fx.scaffold) == 0);
	TT_CHECK_HAS(r.diff, "\n+  skip_windows = { { from = 149, to = 151 } },");
	TT_CHECK(r.confidence == 0.7);
	applies(&r, "proposals/nf-1");
	prop_result_free(&r);
	git_oid oid;
	patch_trailer tr[] = {{"Proposal", "nf-1"}};
	TT_REQUIRE(patch_promote(&oid, fx.repo, "proposals/nf-1", "promote", tr, 1) == 0);
	TT_REQUIRE(ask(&r, nf, fx.scaffold) == 0);
	TT_CHECK(strstr(r.diff, "skip_windows") == NULL);
	TT_CHECK_HAS(r.diff, "\n+  lr = 0.00015,");
	TT_CHECK_HAS(r.diff, "\n+  clip = 0.25,"); /* main's clip is 0.5 by now */
	applies(&r, "proposals/nf-2");
	prop_result_free(&r);

	int64_t moe = pt_incident(&fx, "moe_imbalance", "moe_imbalance:layer1");
	TT_REQUIRE(ask(&r, moe, fx.scaffold) == 0);
	TT_CHECK_HAS(r.diff, "\n-  aux_coef = 1e-2,");
	TT_CHECK_HAS(r.diff, "\n+  aux_coef = 0.03,");
	applies(&r, "proposals/moe-1");
	prop_result_free(&r);

	int64_t dropped = pt_incident(&fx, "moe_dropped", "moe_dropped:layer0");
	TT_REQUIRE(ask(&r, dropped, fx.scaffold) == 0);
	TT_CHECK_HAS(r.diff, "\n+  aux_coef = 0.02,");
	prop_result_free(&r);

	const char *none[] = {"plateau", "stall", "throughput", "crash_oom"};
	for (int i = 0; i < 4; i++) {
		int64_t id = pt_incident(&fx, none[i], none[i]);
		char want[128];
		snprintf(want, sizeof want, "playbook: no proposal for incident kind '%s'", none[i]);
		TT_CHECK_RC(ask(&r, id, fx.scaffold), TEND_ENOTFOUND);
		TT_CHECK_STR(tend_error_last(), want);
		TT_CHECK(r.diff == NULL && r.diagnosis == NULL);
	}
}

/* A scaffold dir with the given playbook (and nothing else). */
static const char *hostile(char *dir, size_t cap, const char *playbook)
{
	pt_fresh(dir, cap, "pb");
	mkdir(dir, 0755);
	pt_write(dir, "playbook.lua", playbook);
	return dir;
}

static void refused(const char *playbook, int code, const char *msg)
{
	char dir[300];
	prop_result r;
	hostile(dir, sizeof dir, playbook);
	int rc = ask(&r, fx.inc, dir);
	if (rc != code || !strstr(tend_error_last(), msg)) {
		fprintf(stderr, "  playbook %.60s...\n  got %d \"%s\"\n  want %d \"%s\"\n", playbook,
			rc, tend_error_last(), code, msg);
		tt_case_failed = 1;
	}
	TT_CHECK(r.diff == NULL && r.diagnosis == NULL && r.rationale == NULL);
}

#define EDIT(f, find, rep) "{file=" f ", find=" find ", replace=" rep "}"
#define ANSWER(extra, edits) "local PB = {}\nfunction PB.propose(ctx)\n  return {diagnosis='d', " \
	"confidence=0.5" extra ", edits={" edits "}}\nend\nreturn PB\n"

static void test_hostile(void)
{
	refused("local PB = {}\nfunction PB.propose() while true do end end\nreturn PB\n",
		TEND_ETIMEOUT, "instruction budget exceeded");
	refused("local PB = {}\nfunction PB.propose() os.execute('touch /tmp/x') end\nreturn PB\n",
		TEND_EINVAL, "playbook.lua:2: attempt to call a nil value (field 'execute')");
	refused("local PB = {}\nfunction PB.propose() return io.open('/etc/passwd') end\nreturn PB\n",
		TEND_EINVAL, "attempt to index a nil value (global 'io')");
	refused("local PB = {}\nfunction PB.propose() local t = {} "
		"while true do t[#t + 1] = string.rep('x', 1 << 20) .. #t end end\nreturn PB\n",
		TEND_ENOMEM, "not enough memory");
	refused("while true do end\n", TEND_ETIMEOUT, "instruction budget exceeded");
	refused("local PB = {\n", TEND_EINVAL, "playbook.lua:2:");
	refused("return 5\n", TEND_EINVAL, "playbook.lua must return a table with propose()");
	refused("return {}\n", TEND_EINVAL, "playbook: PB.propose is not a function");
	refused("local PB = {}\nfunction PB.selftest() return false end\n"
		"function PB.propose() end\nreturn PB\n",
		TEND_EINVAL, "playbook: PB.selftest() returned false, want true");
	refused("local PB = {}\nfunction PB.selftest() assert(false, 'rule broken') end\n"
		"function PB.propose() end\nreturn PB\n", TEND_EINVAL, "playbook.lua:2: rule broken");
	refused("local PB = {}\nfunction PB.propose() return 'lower lr' end\nreturn PB\n",
		TEND_EINVAL, "playbook: PB.propose must return nil or a table, not string");
}

static void test_bad_answers(void)
{
	refused(ANSWER("", EDIT("'scaffold.lua'", "'no such text'", "'x'")), TEND_EINVAL,
		"playbook: edit 1 (scaffold.lua): the find text occurs 0 times, want exactly 1: "
		"\"no such text\"");
	refused(ANSWER("", EDIT("'scaffold.lua'", "'lr'", "'x'")), TEND_EINVAL,
		"playbook: edit 1 (scaffold.lua): the find text occurs ");
	refused(ANSWER("", EDIT("'../tend.yaml'", "'a'", "'b'")), TEND_EINVAL,
		"playbook: edit 1: \"../tend.yaml\" is not one of the scaffold files shown");
	refused(ANSWER("", EDIT("'gates.lua'", "'a'", "'b'")), TEND_EINVAL,
		"playbook: edit 1: \"gates.lua\" is not one of the scaffold files shown");
	refused(ANSWER("", EDIT("'scaffold.lua'", "'z_coef = 1e-3'", "'z_coef = 1e-3'")), TEND_EINVAL,
		"playbook: the edits change nothing");
	refused(ANSWER("", ""), TEND_EINVAL, "playbook: 0 edits, want 1 to 16");
	refused(ANSWER(", patch='x'", EDIT("'scaffold.lua'", "'z_coef = 1e-3'", "'z_coef = 2e-3'")),
		TEND_EINVAL, "playbook: unknown key 'patch' in the answer");
	refused(ANSWER("", "{file='scaffold.lua', find=1, replace='x'}"), TEND_EINVAL,
		"playbook: edit 1: find must be a string, not number");
	refused(ANSWER("", "'x'"), TEND_EINVAL, "playbook: edit 1 must be a table");
	refused("local PB = {}\nfunction PB.propose() return {diagnosis='d', confidence='high', "
		"edits={}} end\nreturn PB\n", TEND_EINVAL, "playbook: confidence must be a number");
	/* the host's common checks apply to the builtin too */
	refused("local PB = {}\nfunction PB.propose() return {diagnosis='d', confidence=2, "
		"edits={" EDIT("'scaffold.lua'", "'z_coef = 1e-3'", "'z_coef = 2e-3'") "}} end\n"
		"return PB\n", TEND_EINVAL, "playbook: response: confidence: 2 out of range [0, 1]");
	refused("local PB = {}\nfunction PB.propose() return {diagnosis='', confidence=1, "
		"edits={" EDIT("'scaffold.lua'", "'z_coef = 1e-3'", "'z_coef = 2e-3'") "}} end\n"
		"return PB\n", TEND_EINVAL, "playbook: response: diagnosis: empty");
	char dir[300];
	prop_result r;
	pt_fresh(dir, sizeof dir, "empty");
	mkdir(dir, 0755);
	TT_CHECK_RC(ask(&r, fx.inc, dir), TEND_ENOTFOUND);
	TT_CHECK_HAS(tend_error_last(), "playbook.lua");
	/* a good custom playbook: two edits in one file, one in another */
	hostile(dir, sizeof dir, ANSWER(", rationale='r'",
		EDIT("'scaffold.lua'", "'warmup = 100,'", "'warmup = 50,'") ", "
		EDIT("'scaffold.lua'", "'aux_coef = 1e-2,'", "'aux_coef = 2e-2,'") ", "
		EDIT("'policies.lua'", "'skip = 10,'", "'skip = 20,'")));
	TT_REQUIRE(ask(&r, fx.inc, dir) == 0);
	TT_CHECK_HAS(r.diff, "diff --git a/policies.lua b/policies.lua\n");
	TT_CHECK_HAS(r.diff, "diff --git a/scaffold.lua b/scaffold.lua\n");
	TT_CHECK(strstr(r.diff, "policies.lua") < strstr(r.diff, "scaffold.lua"));
	TT_CHECK_STR(r.rationale, "r");
	TT_CHECK_STR(r.expected_effect, "");
	applies(&r, "proposals/custom-1");
	prop_result_free(&r);
}

int main(void)
{
	pt_setup();
	if (pt_open(&fx, "loss_spike") < 0)
		return 1;
	TT_RUN(test_spike_patch);
	TT_RUN(test_kinds);
	TT_RUN(test_hostile);
	TT_RUN(test_bad_answers);
	pt_close(&fx);
	pt_teardown();
	return TT_DONE();
}
