/*
 * test_config.c - tend.yaml loading: defaults, every kind of refusal with
 * its exact message, round trips through the default file and through the
 * printouts, section hashes, and that docs/config.md lists every key of the
 * schema with its default.
 */
#include "config.h"
#include "json.h"
#include "sha256.h"
#include "tend.h"
#include "tt.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static int load(cfg **out, const char *yaml)
{
	return cfg_load_buf(out, "tend.yaml", yaml, strlen(yaml));
}

/* Loads yaml, which must fail with TEND_EINVAL and exactly msg. */
static void refuse(const char *yaml, const char *msg, int line)
{
	cfg *c = (cfg *)1;
	int rc = load(&c, yaml);
	if (rc != TEND_EINVAL || c != NULL || strcmp(tend_error_last(), msg) != 0) {
		fprintf(stderr, "%s:%d: %s: rc %d\n  got  %s\n  want %s\n", __FILE__,
			line, tt_case, rc, tend_error_last(), msg);
		tt_case_failed = 1;
	}
	if (rc == 0)
		cfg_free(c);
}
#define REFUSE(yaml, msg) refuse(yaml, msg, __LINE__)

static cfg *defaults(void)
{
	cfg *c = NULL;
	TT_CHECK_RC(cfg_defaults(&c), 0);
	return c;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0;
	if (!f)
		return NULL;
	FILE *m = open_memstream(&buf, &cap);
	int ch;
	while ((ch = fgetc(f)) != EOF)
		fputc(ch, m);
	fclose(m);
	fclose(f);
	if (len)
		*len = cap;
	return buf;
}

/* --- defaults and good files -------------------------------------------- */

static void test_defaults(void)
{
	cfg *c = defaults();
	TT_REQUIRE(c);
	TT_CHECK(c->version == 1);
	TT_CHECK(c->run.steps == 2000);
	TT_CHECK(c->run.keep_last == 3 && c->run.keep_every == 1000);
	TT_CHECK(c->run.command.n == 0 && c->run.command.v && c->run.command.v[0] == NULL);
	TT_CHECK(c->run.env_passthrough.n >= 1);
	TT_CHECK_STR(c->run.env_passthrough.v[0], "PATH");
	TT_CHECK(c->run.env_passthrough.v[c->run.env_passthrough.n] == NULL);
	TT_CHECK_STR(c->run.metrics_file, "metrics.jsonl");
	TT_CHECK(c->trainer.vocab == 256 && c->trainer.top_k == 2);
	TT_CHECK(c->trainer.device == CFG_DEVICE_AUTO);
	TT_CHECK_STR(c->trainer.data, "synthetic");
	TT_CHECK(c->monitors.loss_spike.window == 128);
	TT_CHECK(c->monitors.loss_spike.zscore == 6.0);
	TT_CHECK(c->monitors.stall.timeout_s == 300.0);
	TT_CHECK(c->monitors.nonfinite.enabled && c->monitors.lua.enabled);
	TT_CHECK(c->recovery.term_grace_s == 10.0);
	TT_CHECK(c->recovery.rollback_steps == 100 && c->recovery.skip_batches == 300);
	TT_CHECK(c->recovery.lr_cut == 0.5);
	TT_CHECK(c->alerts.webhooks.n == 0);
	TT_CHECK(c->proposer.kind == CFG_PROPOSER_BUILTIN);
	TT_CHECK_STR(c->proposer.endpoint, "");
	TT_CHECK_STR(c->proposer.api_key_env, "");
	TT_CHECK(c->gates.throughput_ratio == 0.95);
	TT_CHECK(c->gates.human_approval && c->gates.require_no_incident);
	TT_CHECK_STR(c->serve.listen, "127.0.0.1:8765");
	TT_CHECK(c->serve.read_only);
	TT_CHECK_STR(c->serve.token_file, "");
	cfg_free(c);
	cfg_free(NULL);
}

/* Nothing in the file, in its several spellings, means all defaults. */
static void test_empty_means_defaults(void)
{
	const char *texts[] = {"", "\n\n", "# only a comment\n", "---\n", "~\n",
			       "---\n...\n", "run:\nmonitors:\n  loss_spike:\n"};
	cfg *d = defaults();
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		cfg *c = NULL;
		TT_CHECK_RC(load(&c, texts[i]), 0);
		TT_CHECK(c && cfg_equal(c, d));
		cfg_free(c);
	}
	cfg_free(d);
}

static const char full_yaml[] =
	"version: 1\n"
	"run:\n"
	"  command: [python3, train.py, \"--lr=3e-4\"]\n"
	"  steps: 5000\n"
	"  seed: 7\n"
	"  env_passthrough:\n"
	"    - PATH\n"
	"    - HF_HOME\n"
	"trainer:\n"
	"  device: cuda\n"
	"  d_model: 96\n"
	"  heads: 6\n"
	"  capacity_factor: 2\n"
	"  inject: [nan@300, \"slow@50:2.5\"]\n"
	"monitors:\n"
	"  loss_spike: {enabled: false, window: 64, zscore: 4.5}\n"
	"  stall:\n"
	"    timeout_s: 5m\n"
	"  heartbeat:\n"
	"    timeout_s: 1500ms\n"
	"recovery:\n"
	"  backoff_initial_s: 1.5\n"
	"  backoff_max_s: 2h\n"
	"alerts:\n"
	"  webhooks:\n"
	"    - url: https://hooks.example.com/a\n"
	"      events: [incident, giveup]\n"
	"    - url: http://127.0.0.1:9000/b\n"
	"      timeout_s: 30s\n"
	"proposer:\n"
	"  kind: openai\n"
	"  endpoint: http://localhost:8000/v1\n"
	"  model: 123\n"
	"  api_key_env: OPENAI_API_KEY\n"
	"gates:\n"
	"  human_approval: false\n"
	"  throughput_ratio: 0.9\n"
	"serve:\n"
	"  listen: \"[::1]:9999\"\n"
	"  read_only: false\n";

static void test_full_file(void)
{
	cfg *c = NULL;
	TT_CHECK_RC(load(&c, full_yaml), 0);
	TT_REQUIRE(c);
	TT_CHECK(c->run.command.n == 3);
	TT_CHECK_STR(c->run.command.v[2], "--lr=3e-4");
	TT_CHECK(c->run.command.v[3] == NULL);
	TT_CHECK(c->run.steps == 5000 && c->run.seed == 7);
	TT_CHECK(c->run.env_passthrough.n == 2);
	TT_CHECK_STR(c->run.env_passthrough.v[1], "HF_HOME");
	TT_CHECK(c->trainer.device == CFG_DEVICE_CUDA);
	TT_CHECK(c->trainer.capacity_factor == 2.0);
	TT_CHECK(c->trainer.inject.n == 2);
	TT_CHECK_STR(c->trainer.inject.v[1], "slow@50:2.5");
	TT_CHECK(!c->monitors.loss_spike.enabled && c->monitors.loss_spike.window == 64);
	TT_CHECK(c->monitors.loss_spike.zscore == 4.5);
	TT_CHECK(c->monitors.loss_spike.patience == 3); /* untouched default */
	TT_CHECK(c->monitors.stall.timeout_s == 300.0);
	TT_CHECK(c->monitors.heartbeat.timeout_s == 1.5);
	TT_CHECK(c->recovery.backoff_initial_s == 1.5 && c->recovery.backoff_max_s == 7200.0);
	TT_REQUIRE(c->alerts.webhooks.n == 2);
	TT_CHECK_STR(c->alerts.webhooks.v[0].url, "https://hooks.example.com/a");
	TT_CHECK(c->alerts.webhooks.v[0].events == (CFG_EVENT_INCIDENT | CFG_EVENT_GIVEUP));
	TT_CHECK(c->alerts.webhooks.v[0].timeout_s == 5.0);
	TT_CHECK(c->alerts.webhooks.v[1].events == (CFG_EVENT_INCIDENT | CFG_EVENT_RECOVERY |
						    CFG_EVENT_GIVEUP | CFG_EVENT_PROMOTION));
	TT_CHECK(c->alerts.webhooks.v[1].timeout_s == 30.0);
	TT_CHECK(c->proposer.kind == CFG_PROPOSER_OPENAI);
	TT_CHECK_STR(c->proposer.model, "123"); /* a string key takes any scalar */
	TT_CHECK_STR(c->proposer.api_key_env, "OPENAI_API_KEY");
	TT_CHECK(!c->gates.human_approval && c->gates.throughput_ratio == 0.9);
	TT_CHECK_STR(c->serve.listen, "[::1]:9999");
	cfg_free(c);
}

/* --- every kind of refusal, with its exact message ---------------------- */

static void test_unknown_key(void)
{
	REFUSE("run:\n  stpes: 5\n",
	       "tend.yaml:2:3: run.stpes: unknown key; did you mean \"steps\"?");
	REFUSE("monitors:\n  loss_spike:\n    windw: 5\n",
	       "tend.yaml:3:5: monitors.loss_spike.windw: unknown key; did you mean \"window\"?");
	REFUSE("run:\n  layers: 4\n",
	       "tend.yaml:2:3: run.layers: unknown key; did you mean \"trainer.layers\"?");
	REFUSE("loss_spike:\n  window: 64\n",
	       "tend.yaml:1:1: loss_spike: unknown key; did you mean \"monitors.loss_spike\"?");
	REFUSE("serve:\n  color: red\n",
	       "tend.yaml:2:3: serve.color: unknown key; expected one of listen, read_only, token_file");
	REFUSE("alerts:\n  webhooks:\n    - url: https://x\n      evnts: [incident]\n",
	       "tend.yaml:4:7: alerts.webhooks[0].evnts: unknown key; did you mean \"events\"?");
}

static void test_wrong_type(void)
{
	REFUSE("run:\n  steps: abc\n",
	       "tend.yaml:2:10: run.steps: expected an integer >= 1, got \"abc\"");
	REFUSE("monitors:\n  loss_spike:\n    window: abc\n",
	       "tend.yaml:3:13: monitors.loss_spike.window: expected an integer between 8 "
	       "and 65536, got \"abc\"");
	REFUSE("run:\n  steps: {a: 1}\n",
	       "tend.yaml:2:10: run.steps: expected an integer >= 1, got a map");
	REFUSE("trainer:\n  data: [a, b]\n",
	       "tend.yaml:2:9: trainer.data: expected a string, got a list");
	REFUSE("run:\n  command: python train.py\n",
	       "tend.yaml:2:12: run.command: expected a list of strings, got \"python train.py\"");
	REFUSE("run:\n  command: [python, {a: 1}]\n",
	       "tend.yaml:2:21: run.command[1]: expected a string, got a map");
	REFUSE("run:\n  command: [python, ~]\n",
	       "tend.yaml:2:21: run.command[1]: expected a string, got nothing");
	REFUSE("run: 5\n", "tend.yaml:1:6: run: expected a map of settings, got \"5\"");
	REFUSE("gates:\n  human_approval: yes\n",
	       "tend.yaml:2:19: gates.human_approval: expected true or false, got \"yes\"");
	REFUSE("gates:\n  human_approval: \"true\"\n",
	       "tend.yaml:2:19: gates.human_approval: expected true or false, got \"true\"");
	REFUSE("run:\n  steps:\n",
	       "tend.yaml:2:9: run.steps: expected an integer >= 1, got nothing");
}

static void test_out_of_range(void)
{
	REFUSE("run:\n  steps: 0\n",
	       "tend.yaml:2:10: run.steps: expected an integer >= 1, got \"0\"");
	REFUSE("trainer:\n  top_k: 3\n",
	       "tend.yaml:2:10: trainer.top_k: expected an integer between 1 and 2, got \"3\"");
	REFUSE("recovery:\n  lr_cut: 1.5\n",
	       "tend.yaml:2:11: recovery.lr_cut: expected a number between 0.01 and 1, got \"1.5\"");
	REFUSE("monitors:\n  stall:\n    timeout_s: -5s\n",
	       "tend.yaml:3:16: monitors.stall.timeout_s: expected a duration >= 1 (seconds, "
	       "or 500ms, 30s, 5m, 2h), got \"-5s\"");
	REFUSE("monitors:\n  stall:\n    timeout_s: 5 min\n",
	       "tend.yaml:3:16: monitors.stall.timeout_s: expected a duration >= 1 (seconds, "
	       "or 500ms, 30s, 5m, 2h), got \"5 min\"");
	REFUSE("run:\n  seed: 99999999999999999999\n",
	       "tend.yaml:2:9: run.seed: expected an integer between 0 and 4294967295, "
	       "got \"99999999999999999999\"");
	REFUSE("gates:\n  val_loss_tolerance: .nan\n",
	       "tend.yaml:2:23: gates.val_loss_tolerance: expected a number between 0 and 1, "
	       "got \".nan\"");
}

static void test_float_for_int(void)
{
	REFUSE("run:\n  steps: 2000.5\n",
	       "tend.yaml:2:10: run.steps: expected an integer >= 1, got \"2000.5\"");
	REFUSE("run:\n  steps: 1e3\n",
	       "tend.yaml:2:10: run.steps: expected an integer >= 1, got \"1e3\"");
}

static void test_duplicate_key(void)
{
	REFUSE("run:\n  steps: 1\n  seed: 2\n  steps: 3\n",
	       "tend.yaml:4:3: run.steps: duplicate key (first at line 2)");
	REFUSE("run:\n  steps: 1\nrun:\n  seed: 2\n",
	       "tend.yaml:3:1: run: duplicate key (first at line 1)");
}

static void test_tab_indent(void)
{
	REFUSE("run:\n\tsteps: 1\n",
	       "tend.yaml:2:1: a tab in the indentation; YAML indents with spaces only");
	REFUSE("run:\n  \tsteps: 1\n",
	       "tend.yaml:2:3: a tab in the indentation; YAML indents with spaces only");
	cfg *c = NULL; /* a tab after the first character is only white space */
	TT_CHECK_RC(load(&c, "run:\n  steps: 1\t# one\n"), 0);
	cfg_free(c);
}

static void test_bad_utf8(void)
{
	REFUSE("run:\n  metrics_file: m\xc3\xa9trics\xff\n",
	       "tend.yaml:2:24: invalid UTF-8 (byte 0xff); the config must be UTF-8 text");
	REFUSE("# \xc0\xaf overlong\n",
	       "tend.yaml:1:3: invalid UTF-8 (byte 0xc0); the config must be UTF-8 text");
	cfg *c = NULL;
	TT_CHECK_RC(cfg_load_buf(&c, "tend.yaml", "run:\n  seed: 1\0\n", 15), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "tend.yaml:2:10: a NUL byte; the config must be UTF-8 text");
	TT_CHECK_RC(load(&c, "proposer:\n  model: \"m\xc3\xa9t\xc3\xa9o\"\n"), 0);
	TT_CHECK(c && !strcmp(c->proposer.model, "m\xc3\xa9t\xc3\xa9o"));
	cfg_free(c);
}

static void test_syntax_error(void)
{
	REFUSE("run:\n  steps: 1\n bad: 2\n",
	       "tend.yaml:3:2: YAML syntax error: did not find expected key (while parsing "
	       "a block mapping that starts at line 1, column 1)");
	REFUSE("run: [a, b\n",
	       "tend.yaml:2:1: YAML syntax error: did not find expected ',' or ']' (while "
	       "parsing a flow sequence that starts at line 1, column 6)");
	REFUSE("run:\n  steps: \"unterminated\n",
	       "tend.yaml:3:1: YAML syntax error: found unexpected end of stream (while "
	       "scanning a quoted scalar that starts at line 2, column 10)");
}

static void test_bad_enum(void)
{
	REFUSE("trainer:\n  device: gpu\n",
	       "tend.yaml:2:11: trainer.device: expected one of cpu, cuda, auto, got \"gpu\"");
	REFUSE("proposer:\n  kind: OpenAI\n",
	       "tend.yaml:2:9: proposer.kind: expected one of builtin, openai, anthropic, "
	       "got \"OpenAI\"");
	REFUSE("alerts:\n  webhooks:\n    - url: https://x\n      events: [incident, page]\n",
	       "tend.yaml:4:26: alerts.webhooks[0].events[1]: expected one of incident, "
	       "recovery, giveup, promotion, got \"page\"");
}

static void test_secrets(void)
{
	REFUSE("proposer:\n  api_key: sk-abc123def456\n",
	       "tend.yaml:2:3: proposer.api_key: secrets do not belong in tend.yaml; keep "
	       "them in the environment (see proposer.api_key_env) or in a file (see "
	       "serve.token_file)");
	REFUSE("serve:\n  token: hunter2\n",
	       "tend.yaml:2:3: serve.token: secrets do not belong in tend.yaml; keep "
	       "them in the environment (see proposer.api_key_env) or in a file (see "
	       "serve.token_file)");
	REFUSE("proposer:\n  api_key_env: sk-ant-abc123def456\n",
	       "tend.yaml:2:16: proposer.api_key_env: this looks like a secret (\"sk-...\"); "
	       "secrets do not belong in tend.yaml: put it in an environment variable and "
	       "name that variable in proposer.api_key_env");
	REFUSE("run:\n  command: [train, --token, ghp_abcdefghijklmnop]\n",
	       "tend.yaml:2:29: run.command[2]: this looks like a secret (\"ghp...\"); "
	       "secrets do not belong in tend.yaml: put it in an environment variable and "
	       "name that variable in proposer.api_key_env");
	/* The secret itself never reaches the message. */
	cfg *c = NULL;
	TT_CHECK_RC(load(&c, "proposer:\n  model: sk-live-0123456789\n"), TEND_EINVAL);
	TT_CHECK(!strstr(tend_error_last(), "0123456789"));
	REFUSE("proposer:\n  api_key_env: \"my key\"\n",
	       "tend.yaml:2:16: proposer.api_key_env: expected the NAME of an environment "
	       "variable, such as OPENAI_API_KEY, or nothing, got \"my key\"");
}

static void test_list_needs_an_item(void)
{
	REFUSE("alerts:\n  webhooks:\n    - url: https://x\n      events: []\n",
	       "tend.yaml:4:15: alerts.webhooks[0].events: expected a list of incident, "
	       "recovery, giveup, promotion with at least 1 item, got an empty list");
	REFUSE("alerts:\n  webhooks:\n    - url: https://x\n      events:\n",
	       "tend.yaml:4:14: alerts.webhooks[0].events: expected a list of incident, "
	       "recovery, giveup, promotion with at least 1 item, got nothing");
	REFUSE("alerts:\n  webhooks:\n    - events: [incident]\n",
	       "tend.yaml:3:7: alerts.webhooks[0]: missing the required key \"url\"");
	REFUSE("alerts:\n  webhooks:\n    - url: ftp://x\n",
	       "tend.yaml:3:12: alerts.webhooks[0].url: expected an http:// or https:// URL, "
	       "got \"ftp://x\"");
	REFUSE("alerts:\n  webhooks: [https://x]\n",
	       "tend.yaml:2:14: alerts.webhooks[0]: expected a map, got \"https://x\"");
}

static void test_top_level(void)
{
	REFUSE("- run\n- trainer\n",
	       "tend.yaml:1:1: expected a map of sections at the top level, got a list");
	REFUSE("just text\n",
	       "tend.yaml:1:1: expected a map of sections at the top level, got \"just text\"");
	REFUSE("run.steps: 5\n",
	       "tend.yaml:1:1: run.steps: a dot in a key name; write nested maps, one level per part");
	REFUSE("---\nrun: {}\n---\nrun: {}\n",
	       "tend.yaml:3:1: a second YAML document; the config is one document");
}

static void test_anchors_aliases_tags(void)
{
	REFUSE("run:\n  command: &c [a]\ntrainer:\n  inject: [x]\n",
	       "tend.yaml:2:12: run.command: anchors and aliases are not allowed; write "
	       "the value out in full");
	REFUSE("run:\n  command: [a]\n  env_passthrough: &e [PATH]\n",
	       "tend.yaml:3:20: run.env_passthrough: anchors and aliases are not allowed; "
	       "write the value out in full");
	REFUSE("x: &w 64\nmonitors:\n  loss_spike:\n    window: *w\n",
	       "tend.yaml:1:1: x: unknown key; expected one of version, run, trainer, "
	       "monitors, recovery, alerts, proposer, evaluation, gates, serve");
	REFUSE("monitors:\n  loss_spike: &s {window: 64}\n  grad_spike: *s\n",
	       "tend.yaml:2:15: monitors.loss_spike: anchors and aliases are not allowed; "
	       "write the value out in full");
	REFUSE("run:\n  steps: *s\n",
	       "tend.yaml:2:10: run.steps: anchors and aliases are not allowed; write the "
	       "value out in full");
	REFUSE("run:\n  steps: !!int 5\n",
	       "tend.yaml:2:10: run.steps: tags are not allowed; write a plain value");
}

static void test_version(void)
{
	REFUSE("version: 2\n",
	       "tend.yaml:1:10: version: unsupported config version 2; this tend reads version 1");
	REFUSE("version: \"one\"\n",
	       "tend.yaml:1:10: version: expected an integer >= 1, got \"one\"");
	cfg *c = NULL;
	TT_CHECK_RC(load(&c, "version: 1\n"), 0);
	cfg_free(c);
}

static void test_files(void)
{
	char path[128];
	cfg *c = (cfg *)1;
	snprintf(path, sizeof path, "%s/nope.yaml", tmpdir);
	TT_CHECK_RC(cfg_load(&c, path), TEND_ENOTFOUND);
	TT_CHECK(c == NULL);
	char want[256];
	snprintf(want, sizeof want, "%s: no such file; `tend init` writes a commented default",
		 path);
	TT_CHECK_STR(tend_error_last(), want);

	TT_CHECK_RC(cfg_load(&c, tmpdir), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: a directory, not a config file", tmpdir);
	TT_CHECK_STR(tend_error_last(), want);

	snprintf(path, sizeof path, "%s/empty.yaml", tmpdir);
	FILE *f = fopen(path, "w");
	TT_REQUIRE(f);
	fclose(f);
	TT_CHECK_RC(cfg_load(&c, path), 0);
	TT_CHECK(c && c->run.steps == 2000);
	cfg_free(c);

	/* The file's name leads every message. */
	snprintf(path, sizeof path, "%s/bad.yaml", tmpdir);
	f = fopen(path, "w");
	TT_REQUIRE(f);
	fputs("# tend\n\nrun:\n  steps: -1\n", f);
	fclose(f);
	TT_CHECK_RC(cfg_load(&c, path), TEND_EINVAL);
	snprintf(want, sizeof want, "%s:4:10: run.steps: expected an integer >= 1, got \"-1\"",
		 path);
	TT_CHECK_STR(tend_error_last(), want);

	/* Too big to be a config. */
	snprintf(path, sizeof path, "%s/big.yaml", tmpdir);
	f = fopen(path, "w");
	TT_REQUIRE(f);
	for (int i = 0; i < (1 << 20) / 16 + 1; i++)
		fputs("# padding......\n", f);
	fclose(f);
	TT_CHECK_RC(cfg_load(&c, path), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "larger than 1048576 bytes");
}

static void test_cross_checks(void)
{
	REFUSE("trainer:\n  heads: 3\n",
	       "tend.yaml:2:10: trainer.heads: trainer.heads (3) must divide trainer.d_model (64)");
	REFUSE("trainer:\n  heads: 4\n  d_model: 66\n",
	       "tend.yaml:3:12: trainer.d_model: trainer.heads (4) must divide trainer.d_model (66)");
	REFUSE("trainer:\n  experts: 2\n  top_k: 2\n  layers: 1\n  moe_every: 2\n",
	       "tend.yaml:5:14: trainer.moe_every: trainer.moe_every (2) is more than "
	       "trainer.layers (1), so no block would be MoE; use 0 for a dense model");
	REFUSE("monitors:\n  loss_spike:\n    window: 16\n    warmup: 20\n",
	       "tend.yaml:4:13: monitors.loss_spike.warmup: monitors.loss_spike.warmup (20) "
	       "is more than monitors.loss_spike.window (16)");
	REFUSE("run:\n  checkpoint_every: 300\n",
	       "tend.yaml:2:21: run.checkpoint_every: run.keep_every (1000) must be a multiple "
	       "of run.checkpoint_every (300)");
	REFUSE("proposer:\n  api_key_env: OPENAI_API_KEY\nrun:\n  env_passthrough: [PATH, "
	       "OPENAI_API_KEY]\n",
	       "tend.yaml:4:20: run.env_passthrough: run.env_passthrough lists OPENAI_API_KEY, "
	       "the proposer's key: the trainer must never see it");
	REFUSE("recovery:\n  backoff_initial_s: 20m\n",
	       "tend.yaml:2:22: recovery.backoff_initial_s: recovery.backoff_initial_s is more "
	       "than recovery.backoff_max_s");
	REFUSE("serve:\n  listen: 0.0.0.0:8765\n  read_only: false\n",
	       "tend.yaml:3:14: serve.read_only: serve.listen (0.0.0.0:8765) is not loopback "
	       "and writes are allowed: set serve.token_file or serve.read_only: true");
	cfg *c = NULL;
	TT_CHECK_RC(load(&c, "serve:\n  listen: 0.0.0.0:8765\n  read_only: false\n"
			     "  token_file: /etc/tend/token\n"), 0);
	cfg_free(c);
}

static void test_value_checks(void)
{
	REFUSE("trainer:\n  inject: [nan@300, nam@3]\n",
	       "tend.yaml:2:21: trainer.inject[1]: expected a fault spec KIND@STEP[:ARG] with "
	       "KIND one of nan, spike, gradblow, hang, slow, crash, oom, collapse, got \"nam@3\"");
	REFUSE("trainer:\n  inject: [\"slow@5:x\"]\n",
	       "tend.yaml:2:12: trainer.inject[0]: expected a fault spec KIND@STEP[:ARG] with "
	       "KIND one of nan, spike, gradblow, hang, slow, crash, oom, collapse, got \"slow@5:x\"");
	REFUSE("run:\n  metrics_file: ../m.jsonl\n",
	       "tend.yaml:2:17: run.metrics_file: expected a plain file name (no /), got "
	       "\"../m.jsonl\"");
	REFUSE("run:\n  env_passthrough: [PATH, \"A=B\"]\n",
	       "tend.yaml:2:27: run.env_passthrough[1]: expected an environment variable name "
	       "(letters, digits, _), got \"A=B\"");
	REFUSE("serve:\n  listen: localhost\n",
	       "tend.yaml:2:11: serve.listen: expected HOST:PORT such as 127.0.0.1:8765, got "
	       "\"localhost\"");
	REFUSE("serve:\n  listen: \"127.0.0.1:70000\"\n",
	       "tend.yaml:2:11: serve.listen: expected HOST:PORT such as 127.0.0.1:8765, got "
	       "\"127.0.0.1:70000\"");
	REFUSE("proposer:\n  endpoint: localhost:8000\n",
	       "tend.yaml:2:13: proposer.endpoint: expected an http:// or https:// URL, or "
	       "nothing, got \"localhost:8000\"");
	REFUSE("proposer:\n  model: \"a\\0b\"\n",
	       "tend.yaml:2:10: proposer.model: a NUL character inside a string");
}

/* --- round trips, printouts, hashes ------------------------------------- */

/* Every key of the default file is written with its default and preceded
 * by its doc comment, and the file reads back as exactly the defaults. */
static void test_default_file_round_trip(void)
{
	char path[128];
	snprintf(path, sizeof path, "%s/default.yaml", tmpdir);
	FILE *f = fopen(path, "w");
	TT_REQUIRE(f);
	TT_CHECK_RC(cfg_write_default(f), 0);
	fclose(f);

	cfg *c = NULL, *d = defaults();
	TT_CHECK_RC(cfg_load(&c, path), 0);
	TT_CHECK(c && d && cfg_equal(c, d));
	cfg_free(c);
	cfg_free(d);

	char *text = slurp(path, NULL);
	TT_REQUIRE(text);
	size_t nkeys = 0, leaves = 0;
	for (const cfg_key *k = cfg_schema(); k->path; k++)
		nkeys++;
	bool prev_comment = false;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		const char *p = line + strspn(line, " ");
		size_t n = strlen(p);
		bool comment = *p == '#', header = n && p[n - 1] == ':';
		if (!comment && !header) {
			leaves++;
			if (!prev_comment)
				fprintf(stderr, "no doc comment before: %s\n", line);
			TT_CHECK(prev_comment);
		}
		prev_comment = comment;
	}
	TT_CHECK(leaves == nkeys);
	free(text);
}

/* Writes c with cfg_print and reads it back. */
static cfg *print_and_load(const cfg *c)
{
	char *buf = NULL;
	size_t len = 0;
	cfg *back = NULL;
	FILE *m = open_memstream(&buf, &len);
	TT_CHECK_RC(cfg_print(m, c, false), 0);
	fclose(m);
	TT_CHECK_RC(cfg_load_buf(&back, "printed", buf, len), 0);
	free(buf);
	return back;
}

static void test_print_round_trip(void)
{
	cfg *c = NULL;
	TT_CHECK_RC(load(&c, full_yaml), 0);
	TT_REQUIRE(c);
	free(c->proposer.model); /* what needs escaping survives too */
	c->proposer.model = strdup("q\"uo\\te\n\x01\x7f\xc2\x85 \xc3\xa9\xe2\x80\xa8.");
	cfg *back = print_and_load(c);
	TT_CHECK(back && cfg_equal(c, back));
	if (back)
		TT_CHECK_STR(back->proposer.model, c->proposer.model);
	cfg *d = defaults();
	TT_CHECK(!cfg_equal(c, d));
	cfg_free(back);
	cfg_free(c);
	cfg_free(d);
}

/* The value at a dotted path of a JSON object. */
static const json_val *json_path(const json_val *v, const char *path)
{
	char buf[128], *save = NULL;
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = strtok_r(buf, ".", &save); p && v; p = strtok_r(NULL, ".", &save))
		v = json_get(v, p);
	return v;
}

static void test_print_json(void)
{
	cfg *c = NULL;
	char *buf = NULL;
	size_t len = 0;
	json_doc *doc = NULL;
	TT_CHECK_RC(load(&c, full_yaml), 0);
	TT_REQUIRE(c);
	FILE *m = open_memstream(&buf, &len);
	TT_CHECK_RC(cfg_print(m, c, true), 0);
	fclose(m);
	TT_CHECK_RC(json_parse(&doc, buf, len, NULL), 0);
	TT_REQUIRE(doc);
	const json_val *r = json_root(doc);
	for (const cfg_key *k = cfg_schema(); k->path; k++) {
		const json_val *v = json_path(r, k->path);
		const void *f = (const char *)c + k->offset;
		if (!v)
			fprintf(stderr, "missing in JSON: %s\n", k->path);
		TT_CHECK(v != NULL);
		if (k->type == CFG_INT)
			TT_CHECK(json_num(v) == (double)*(const int64_t *)f);
		else if (k->type == CFG_FLOAT || k->type == CFG_DURATION)
			TT_CHECK(json_num(v) == *(const double *)f);
		else if (k->type == CFG_BOOL)
			TT_CHECK(json_type(v) == JSON_BOOL && json_bool(v) == *(const bool *)f);
		else if (k->type == CFG_STRING)
			TT_CHECK_STR(json_str(v, NULL), *(char *const *)f);
		else if (k->type == CFG_ENUM)
			TT_CHECK_STR(json_str(v, NULL), k->values[*(const int *)f]);
	}
	TT_CHECK_STR(json_str(json_path(r, "trainer.device"), NULL), "cuda");
	const json_val *hooks = json_path(r, "alerts.webhooks");
	TT_CHECK(json_len(hooks) == 2);
	TT_CHECK_STR(json_str(json_get(json_at(hooks, 0), "url"), NULL),
		     "https://hooks.example.com/a");
	const json_val *ev = json_get(json_at(hooks, 0), "events");
	TT_CHECK(json_len(ev) == 2);
	TT_CHECK_STR(json_str(json_at(ev, 1), NULL), "giveup");
	TT_CHECK(json_num(json_path(r, "monitors.stall.timeout_s")) == 300);
	TT_CHECK(json_len(json_path(r, "run.command")) == 3);
	json_doc_free(doc);
	free(buf);
	cfg_free(c);
}

static void test_section_hash(void)
{
	cfg *a = defaults(), *b = NULL;
	char h1[65], h2[65], h3[65], r1[65], r2[65];
	TT_REQUIRE(a);
	TT_CHECK_RC(cfg_section_hash(a, "gates", h1), 0);
	TT_CHECK(strlen(h1) == 64 && strspn(h1, "0123456789abcdef") == 64);
	TT_CHECK_RC(load(&b, "run:\n  steps: 10\n"), 0);
	TT_REQUIRE(b);
	TT_CHECK_RC(cfg_section_hash(b, "gates", h2), 0);
	TT_CHECK_STR(h2, h1); /* another section changed: gates did not */
	TT_CHECK_RC(cfg_section_hash(a, "run", r1), 0);
	TT_CHECK_RC(cfg_section_hash(b, "run", r2), 0);
	TT_CHECK(strcmp(r1, r2) != 0);
	b->gates.throughput_ratio = 0.5;
	TT_CHECK_RC(cfg_section_hash(b, "gates", h3), 0);
	TT_CHECK(strcmp(h3, h1) != 0);
	/* Deeper sections and the whole config hash too; unknown ones do not. */
	TT_CHECK_RC(cfg_section_hash(a, "monitors.loss_spike", h3), 0);
	TT_CHECK_RC(cfg_section_hash(a, "", h3), 0);
	TT_CHECK_RC(cfg_section_hash(a, NULL, h2), 0);
	TT_CHECK_STR(h2, h3);
	TT_CHECK_RC(cfg_section_hash(a, "gate", h3), TEND_ENOTFOUND);
	TT_CHECK_STR(tend_error_last(), "no config section \"gate\"");
	TT_CHECK_RC(cfg_section_hash(a, "monitors.loss", h3), TEND_ENOTFOUND);
	/* The rendering is pinned: stored hashes are compared across tend
	 * versions, so a changed rendering would read as changed gates. */
	const char canon[] =
		"gates.require_no_incident=true\n"
		"gates.val_loss_tolerance=0.01\n"
		"gates.require_improvement=false\n"
		"gates.min_delta=0.0\n"
		"gates.throughput_ratio=0.95\n"
		"gates.max_wall_s=7200\n"
		"gates.human_approval=true\n";
	sha256_hex(canon, strlen(canon), h2);
	TT_CHECK_STR(h1, h2);
	cfg_free(a);
	cfg_free(b);
}

/* --- the schema and its docs -------------------------------------------- */

static bool under(const char *path, const char *sec, size_t len)
{
	return !strncmp(path, sec, len) && path[len] == '.';
}

static void test_schema_sane(void)
{
	const cfg_key *keys = cfg_schema();
	for (const cfg_key *k = keys; k->path; k++) {
		TT_CHECK(k->doc && *k->doc);
		TT_CHECK(k->def != NULL);
		TT_CHECK((k->type == CFG_ENUM || k->type == CFG_ENUMSET) == (k->values != NULL));
		TT_CHECK(k->type != CFG_MAPLIST || (k->sub && k->sub_size));
		/* A section, once left, is never entered again: the writers
		 * derive the nesting from the order. */
		for (const char *dot = strchr(k->path, '.'); dot && k > keys;
		     dot = strchr(dot + 1, '.')) {
			size_t n = (size_t)(dot - k->path);
			if (under(k[-1].path, k->path, n))
				continue;
			for (const cfg_key *j = keys; j < k; j++)
				if (under(j->path, k->path, n))
					fprintf(stderr, "section of %s split\n", k->path),
					tt_case_failed = 1;
		}
	}
}

static bool line_has(const char *text, const char *needle, const char *also)
{
	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) {
		const char *start = p, *end = strchr(p, '\n');
		while (start > text && start[-1] != '\n')
			start--;
		size_t n = end ? (size_t)(end - start) : strlen(start);
		char line[1024];
		snprintf(line, sizeof line, "%.*s", (int)n, start);
		if (!also || strstr(line, also))
			return true;
	}
	return false;
}

/* docs/config.md has a line for every key naming it as `path` with its
 * default as `default`, so the reference cannot drift from the schema; and
 * its examples are valid configs. */
static void check_doc_key(const char *doc, const char *path, const char *def)
{
	char name[160], val[160];
	snprintf(name, sizeof name, "`%s`", path);
	snprintf(val, sizeof val, "`%s`", def ? def : "");
	if (!line_has(doc, name, def ? val : NULL)) {
		fprintf(stderr, "docs/config.md: no line with %s and %s\n", name,
			def ? val : "(no default)");
		tt_case_failed = 1;
	}
}

static void test_docs_cover_schema(void)
{
	const char *root = getenv("TEND_SOURCE_ROOT");
	char path[512];
	snprintf(path, sizeof path, "%s/docs/config.md", root ? root : ".");
	char *doc = slurp(path, NULL);
	TT_REQUIRE(doc);
	/* Its YAML examples load. */
	for (char *p = strstr(doc, "```yaml\n"); p; p = strstr(p, "```yaml\n")) {
		char *end = strstr(p += 8, "```");
		cfg *c = NULL;
		TT_REQUIRE(end);
		TT_CHECK_RC(cfg_load_buf(&c, "docs/config.md", p, (size_t)(end - p)), 0);
		cfg_free(c);
	}
	for (const cfg_key *k = cfg_schema(); k->path; k++) {
		check_doc_key(doc, k->path, k->def);
		for (const cfg_key *s = k->sub; s && s->path; s++) {
			char sub[160];
			snprintf(sub, sizeof sub, "%s[].%s", k->path, s->path);
			check_doc_key(doc, sub, s->def);
		}
	}
	free(doc);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	TT_RUN(test_defaults);
	TT_RUN(test_empty_means_defaults);
	TT_RUN(test_full_file);
	TT_RUN(test_unknown_key);
	TT_RUN(test_wrong_type);
	TT_RUN(test_out_of_range);
	TT_RUN(test_float_for_int);
	TT_RUN(test_duplicate_key);
	TT_RUN(test_tab_indent);
	TT_RUN(test_bad_utf8);
	TT_RUN(test_syntax_error);
	TT_RUN(test_bad_enum);
	TT_RUN(test_secrets);
	TT_RUN(test_list_needs_an_item);
	TT_RUN(test_top_level);
	TT_RUN(test_anchors_aliases_tags);
	TT_RUN(test_version);
	TT_RUN(test_files);
	TT_RUN(test_cross_checks);
	TT_RUN(test_value_checks);
	TT_RUN(test_default_file_round_trip);
	TT_RUN(test_print_round_trip);
	TT_RUN(test_print_json);
	TT_RUN(test_section_hash);
	TT_RUN(test_schema_sane);
	TT_RUN(test_docs_cover_schema);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return TT_DONE();
}
