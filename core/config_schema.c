/*
 * config_schema.c - every key of tend.yaml, in one table: type, place in
 * `cfg`, range, default (as YAML text, read by the same code as the file)
 * and a one-line doc. Also the checks of single values that a range cannot
 * say (a URL, a variable name) and the checks between keys.
 *
 * Keys of one section must stay together and in the order the default file
 * should show them: the writers derive the nesting from that order.
 */
#include "config_int.h"
#include "tend.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define BIG CFG__BIG
#define C(f) offsetof(cfg, f)
#define W(f) offsetof(cfg_webhook, f)

#define INT(p_, o_, lo_, hi_, d_, doc_) \
	{.path = p_, .type = CFG_INT, .offset = o_, .min = lo_, .max = hi_, .def = d_, .doc = doc_}
#define FLT(p_, o_, lo_, hi_, d_, doc_) \
	{.path = p_, .type = CFG_FLOAT, .offset = o_, .min = lo_, .max = hi_, .def = d_, .doc = doc_}
#define DUR(p_, o_, lo_, hi_, d_, doc_) \
	{.path = p_, .type = CFG_DURATION, .offset = o_, .min = lo_, .max = hi_, .def = d_, .doc = doc_}
#define BOOL(p_, o_, d_, doc_) \
	{.path = p_, .type = CFG_BOOL, .offset = o_, .def = d_, .doc = doc_}
#define STR(p_, o_, d_, chk_, doc_) \
	{.path = p_, .type = CFG_STRING, .offset = o_, .def = d_, .check = chk_, .doc = doc_}
#define ENUM(p_, o_, vals_, d_, doc_) \
	{.path = p_, .type = CFG_ENUM, .offset = o_, .values = vals_, .def = d_, .doc = doc_}
#define LIST(p_, o_, lo_, hi_, d_, chk_, doc_) \
	{.path = p_, .type = CFG_STRLIST, .offset = o_, .min = lo_, .max = hi_, .def = d_, \
	 .check = chk_, .doc = doc_}

static const char *const device_names[] = {"cpu", "cuda", "auto", NULL};
static const char *const proposer_names[] = {"builtin", "openai", "anthropic", NULL};
static const char *const event_names[] = {"incident", "recovery", "giveup", "promotion", NULL};

/* --- checks of single values -------------------------------------------- */

static int check_version(const void *v, char *why, size_t cap)
{
	int64_t n = *(const int64_t *)v;
	if (n == CFG_VERSION)
		return 0;
	snprintf(why, cap, "unsupported config version %" PRId64 "; this tend reads "
		 "version %d", n, CFG_VERSION);
	return 1;
}

static bool is_env_name(const char *s)
{
	if (!(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return false;
	return true;
}

static int check_env_name(const void *v, char *why, size_t cap)
{
	if (is_env_name(v))
		return 0;
	snprintf(why, cap, "expected an environment variable name (letters, digits, _)");
	return 1;
}

static int check_env_name_opt(const void *v, char *why, size_t cap)
{
	if (!*(const char *)v || is_env_name(v))
		return 0;
	snprintf(why, cap, "expected the NAME of an environment variable, "
		 "such as OPENAI_API_KEY, or nothing");
	return 1;
}

static int check_file_name(const void *v, char *why, size_t cap)
{
	const char *s = v;
	if (*s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, ".."))
		return 0;
	snprintf(why, cap, "expected a plain file name (no /)");
	return 1;
}

static int check_nonempty(const void *v, char *why, size_t cap)
{
	if (*(const char *)v)
		return 0;
	snprintf(why, cap, "expected a non-empty string");
	return 1;
}

/* KIND@STEP or KIND@STEP:NUMBER, e.g. "nan@300", "slow@50:2.5". The kinds
 * are the in-tree trainer's (scaffold/fault.h), repeated here so that
 * `tend config check` catches a typo before a drill starts. */
static int check_fault(const void *v, char *why, size_t cap)
{
	static const char *const kinds[] = {"nan", "spike", "gradblow", "hang", "slow",
					    "crash", "oom", "collapse"};
	const char *s = v, *at = strchr(s, '@');
	size_t kl = at ? (size_t)(at - s) : 0;
	for (size_t i = 0; at && i < sizeof kinds / sizeof kinds[0]; i++) {
		if (strlen(kinds[i]) != kl || strncmp(s, kinds[i], kl))
			continue;
		char *end;
		s = at + 1;
		if (!isdigit((unsigned char)*s))
			break;
		strtol(s, &end, 10);
		if (*end == ':' && end[1] && !isspace((unsigned char)end[1]))
			strtod(end + 1, &end);
		if (!*end)
			return 0;
		break;
	}
	snprintf(why, cap, "expected a fault spec KIND@STEP[:ARG] with KIND one of "
		 "nan, spike, gradblow, hang, slow, crash, oom, collapse");
	return 1;
}

static bool is_http_url(const char *s)
{
	const char *host = !strncmp(s, "http://", 7) ? s + 7 :
			   !strncmp(s, "https://", 8) ? s + 8 : NULL;
	return host && *host && *host != '/' && !strpbrk(s, " \t\r\n");
}

static int check_url(const void *v, char *why, size_t cap)
{
	if (is_http_url(v))
		return 0;
	snprintf(why, cap, "expected an http:// or https:// URL");
	return 1;
}

static int check_url_opt(const void *v, char *why, size_t cap)
{
	if (!*(const char *)v || is_http_url(v))
		return 0;
	snprintf(why, cap, "expected an http:// or https:// URL, or nothing");
	return 1;
}

/* host:port, where host may be [v6]. */
static int check_listen(const void *v, char *why, size_t cap)
{
	const char *s = v, *colon = strrchr(s, ':');
	if (colon && colon > s && colon[1] && strspn(colon + 1, "0123456789") ==
	    strlen(colon + 1) && strlen(colon + 1) <= 5) {
		long port = strtol(colon + 1, NULL, 10);
		if (port >= 1 && port <= 65535)
			return 0;
	}
	snprintf(why, cap, "expected HOST:PORT such as 127.0.0.1:8765");
	return 1;
}

bool cfg__looks_secret(const char *s)
{
	static const char *const prefixes[] = {
		"sk-", "xoxb-", "xoxp-", "xoxa-", "ghp_", "gho_", "ghs_",
		"github_pat_", "glpat-", "AKIA", "AIza", "hf_", "Bearer ",
	};
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		size_t n = strlen(prefixes[i]);
		if (!strncmp(s, prefixes[i], n) && strlen(s) >= n + 3)
			return true;
	}
	return false;
}

/* --- the table ---------------------------------------------------------- */

static const cfg_key webhook_keys[] = {
	{.path = "url", .type = CFG_STRING, .offset = W(url),
	 .check = check_url, .flags = CFG_F_REQUIRED,
	 .doc = "Where to POST (required): an http:// or https:// URL."},
	{.path = "events", .type = CFG_ENUMSET, .offset = W(events), .min = 1, .max = 4,
	 .values = event_names, .def = "[incident, recovery, giveup, promotion]",
	 .doc = "Which events to send."},
	DUR("timeout_s", W(timeout_s), 0.1, 300, "5", "Limit on one POST."),
	{0},
};

static const cfg_key keys[] = {
	{.path = "version", .type = CFG_INT, .offset = C(version), .min = 1, .max = BIG,
	 .def = "1", .check = check_version,
	 .doc = "Format of this file; this tend reads version 1."},

	LIST("run.command", C(run.command), 0, 1000, "[]", NULL,
	     "The trainer as an argv list, e.g. [python, train.py]; empty runs the in-tree trainer."),
	INT("run.steps", C(run.steps), 1, BIG, "2000", "Optimizer steps in a run."),
	INT("run.eval_every", C(run.eval_every), 0, BIG, "100",
	    "Steps between validation evaluations; 0 = only at the end."),
	INT("run.checkpoint_every", C(run.checkpoint_every), 0, BIG, "100",
	    "Steps between checkpoints; 0 = none, and so no rollback."),
	INT("run.keep_last", C(run.keep_last), 0, 1e6, "3", "Newest checkpoints always kept."),
	INT("run.keep_every", C(run.keep_every), 0, BIG, "1000",
	    "Also keep checkpoints whose step is a multiple of this; 0 = none."),
	INT("run.seed", C(run.seed), 0, 4294967295.0, "1337",
	    "Seed for initialization and data order."),
	LIST("run.env_passthrough", C(run.env_passthrough), 0, 1000,
	     "[PATH, HOME, LANG, LC_ALL, TZ, TMPDIR, CUDA_VISIBLE_DEVICES]", check_env_name,
	     "Environment variables the trainer sees; all others are scrubbed."),
	STR("run.metrics_file", C(run.metrics_file), "metrics.jsonl", check_file_name,
	    "Name of the JSON-lines metrics file the trainer writes in its run folder."),

	INT("trainer.layers", C(trainer.layers), 1, 1024, "2", "Transformer blocks."),
	INT("trainer.d_model", C(trainer.d_model), 8, 65536, "64", "Model width."),
	INT("trainer.heads", C(trainer.heads), 1, 1024, "4",
	    "Attention heads; must divide d_model."),
	INT("trainer.context", C(trainer.context), 8, 1048576, "64", "Context length in tokens."),
	INT("trainer.vocab", C(trainer.vocab), 2, 16777216, "256",
	    "Vocabulary size (256: raw bytes)."),
	INT("trainer.moe_every", C(trainer.moe_every), 0, 1024, "1",
	    "Every Nth block is a mixture of experts; 0 = dense."),
	INT("trainer.experts", C(trainer.experts), 2, 64, "4", "Experts per MoE block."),
	INT("trainer.top_k", C(trainer.top_k), 1, 2, "2",
	    "Experts each token is routed to: 1 or 2."),
	FLT("trainer.capacity_factor", C(trainer.capacity_factor), 0.1, 64, "2.0",
	    "Expert capacity over an even share of tokens; tokens past it are dropped."),
	INT("trainer.batch", C(trainer.batch), 1, 1048576, "8", "Sequences per micro-batch."),
	INT("trainer.grad_accum", C(trainer.grad_accum), 1, 65536, "1",
	    "Micro-batches per optimizer step."),
	ENUM("trainer.device", C(trainer.device), device_names, "auto",
	     "Where to train; auto uses CUDA when a GPU is usable."),
	INT("trainer.threads", C(trainer.threads), 0, 4096, "0", "CPU threads; 0 = all cores."),
	STR("trainer.data", C(trainer.data), "synthetic", check_nonempty,
	    "Training data: synthetic, or a directory of llm.c token shards."),
	LIST("trainer.inject", C(trainer.inject), 0, 1000, "[]", check_fault,
	     "Faults to inject for drills, KIND@STEP, e.g. nan@300."),

	BOOL("monitors.nonfinite.enabled", C(monitors.nonfinite.enabled), "true",
	     "Stop on a NaN or Inf loss or grad norm, before a poisoned checkpoint is written."),
	BOOL("monitors.loss_spike.enabled", C(monitors.loss_spike.enabled), "true",
	     "Watch the loss for spikes."),
	INT("monitors.loss_spike.window", C(monitors.loss_spike.window), 8, 65536, "128",
	    "Recent samples the median and deviation are taken over."),
	FLT("monitors.loss_spike.zscore", C(monitors.loss_spike.zscore), 1, 1000, "6.0",
	    "Robust deviations above the median that make a spike."),
	INT("monitors.loss_spike.warmup", C(monitors.loss_spike.warmup), 3, 65536, "50",
	    "Samples in the window before it tests; at most window."),
	INT("monitors.loss_spike.patience", C(monitors.loss_spike.patience), 1, 1e6, "3",
	    "Consecutive spiking samples before an incident opens."),
	BOOL("monitors.grad_spike.enabled", C(monitors.grad_spike.enabled), "true",
	     "Watch the gradient norm for spikes (they often come before loss spikes)."),
	INT("monitors.grad_spike.window", C(monitors.grad_spike.window), 8, 65536, "128",
	    "Recent samples the median and deviation are taken over."),
	FLT("monitors.grad_spike.zscore", C(monitors.grad_spike.zscore), 1, 1000, "6.0",
	    "Robust deviations above the median that make a spike."),
	INT("monitors.grad_spike.warmup", C(monitors.grad_spike.warmup), 3, 65536, "50",
	    "Samples in the window before it tests; at most window."),
	INT("monitors.grad_spike.patience", C(monitors.grad_spike.patience), 1, 1e6, "2",
	    "Consecutive spiking samples before an incident opens."),
	BOOL("monitors.divergence.enabled", C(monitors.divergence.enabled), "true",
	     "Watch for a loss that trends up."),
	INT("monitors.divergence.window", C(monitors.divergence.window), 8, 65536, "200",
	    "Samples in the rolling median of the loss."),
	FLT("monitors.divergence.min_rise", C(monitors.divergence.min_rise), 0.001, 1000, "0.1",
	    "Relative rise of the median over its minimum that is divergence (0.1 = 10%)."),
	BOOL("monitors.plateau.enabled", C(monitors.plateau.enabled), "true",
	     "Watch for a loss that stops improving."),
	INT("monitors.plateau.window", C(monitors.plateau.window), 8, BIG, "1000",
	    "Steps without enough improvement that make a plateau."),
	FLT("monitors.plateau.min_improvement", C(monitors.plateau.min_improvement), 0, 0.99,
	    "0.01", "Relative improvement of the loss median that counts (0.01 = 1%)."),
	BOOL("monitors.stall.enabled", C(monitors.stall.enabled), "true",
	     "Watch for steps that stop coming while the trainer lives."),
	DUR("monitors.stall.timeout_s", C(monitors.stall.timeout_s), 1, BIG, "300",
	    "No new step for this long is a stall."),
	FLT("monitors.stall.slow_factor", C(monitors.stall.slow_factor), 0, 1e6, "10.0",
	    "Also a stall, when sooner: no step for this many times the slowest recent step; 0 = off."),
	BOOL("monitors.heartbeat.enabled", C(monitors.heartbeat.enabled), "true",
	     "Watch for a trainer that goes silent."),
	DUR("monitors.heartbeat.timeout_s", C(monitors.heartbeat.timeout_s), 1, BIG, "300",
	    "No output at all (metrics, stdout, stderr) for this long is a hang."),
	BOOL("monitors.throughput.enabled", C(monitors.throughput.enabled), "true",
	     "Watch tokens per second."),
	INT("monitors.throughput.window", C(monitors.throughput.window), 2, 65536, "50",
	    "Samples in the rolling median of tokens per second."),
	FLT("monitors.throughput.drop_ratio", C(monitors.throughput.drop_ratio), 0.01, 0.99, "0.5",
	    "A drop is tokens per second below this fraction of the median."),
	INT("monitors.throughput.patience", C(monitors.throughput.patience), 1, 1e6, "5",
	    "Consecutive low samples before an incident opens."),
	BOOL("monitors.moe.enabled", C(monitors.moe.enabled), "true",
	     "Watch the MoE router (needs router metrics; the in-tree trainer writes them)."),
	FLT("monitors.moe.max_over_mean", C(monitors.moe.max_over_mean), 1.01, 1e6, "3.0",
	    "Load of the busiest expert over the mean load that is an imbalance "
	    "(capped at (1 + experts) / 2)."),
	FLT("monitors.moe.dead_fraction", C(monitors.moe.dead_fraction), 0, 0.99, "0.1",
	    "An expert getting less than this fraction of its even share (1/experts) is dead."),
	FLT("monitors.moe.min_entropy_ratio", C(monitors.moe.min_entropy_ratio), 0.01, 0.99, "0.5",
	    "Routing entropy over its maximum, log(experts), below which routing has collapsed; "
	    "the load's entropy is measured from log(top_k), the least top-k routing allows."),
	FLT("monitors.moe.dropped_fraction", C(monitors.moe.dropped_fraction), 0, 1, "0.1",
	    "Fraction of tokens dropped over capacity that is an incident."),
	BOOL("monitors.lua.enabled", C(monitors.lua.enabled), "true",
	     "Run the monitors that the Lua scaffold defines."),

	INT("recovery.max_restarts_per_hour", C(recovery.max_restarts_per_hour), 0, 1e6, "3",
	    "Restarts in any hour before tend gives up and alerts a human."),
	DUR("recovery.backoff_initial_s", C(recovery.backoff_initial_s), 0, BIG, "10",
	    "Wait before the first restart; it doubles with each restart."),
	DUR("recovery.backoff_max_s", C(recovery.backoff_max_s), 0, BIG, "600",
	    "Longest wait between restarts."),
	DUR("recovery.term_grace_s", C(recovery.term_grace_s), 0, 3600, "10",
	    "After SIGTERM, wait this long before SIGKILL."),
	DUR("recovery.verify_timeout_s", C(recovery.verify_timeout_s), 0.1, BIG, "60",
	    "Seconds the child that verifies checkpoints before a restart may go without "
	    "progress (CPU time); then it is killed (a hung read) and the search stops."),
	INT("recovery.rollback_steps", C(recovery.rollback_steps), 0, BIG, "100",
	    "A rollback restarts from a checkpoint at least this many steps before the incident."),
	INT("recovery.skip_batches", C(recovery.skip_batches), 0, BIG, "300",
	    "Batches skipped after a rollback, so the bad data is not replayed."),
	INT("recovery.cooldown_steps", C(recovery.cooldown_steps), 0, BIG, "200",
	    "Steps after a recovery in which another incident climbs the escalation ladder."),
	FLT("recovery.lr_cut", C(recovery.lr_cut), 0.01, 1, "0.5",
	    "Learning-rate multiplier when the ladder lowers the learning rate."),

	{.path = "alerts.webhooks", .type = CFG_MAPLIST, .offset = C(alerts.webhooks),
	 .min = 0, .max = 100, .def = "[]", .sub = webhook_keys, .sub_size = sizeof(cfg_webhook),
	 .doc = "Where to POST alerts as JSON: a list of {url, events, timeout_s}."},
	INT("alerts.retries", C(alerts.retries), 0, 100, "3", "Retries of a failed POST."),
	DUR("alerts.backoff_s", C(alerts.backoff_s), 0, 3600, "2",
	    "Wait before the first retry; it doubles with each retry."),

	BOOL("proposer.auto", C(proposer.auto_propose), "true",
	     "Propose a scaffold patch for each new warning or critical incident of a run."),
	LIST("proposer.allowed_paths", C(proposer.allowed_paths), 1, 64,
	     "[\"scaffold.lua\", \"policies.lua\", \"monitors.lua\", \"playbook.lua\", "
	     "\"hooks/*.lua\", \"prompts/*.md\"]", NULL,
	     "Scaffold paths a proposal may touch (globs); everything else is refused."),
	ENUM("proposer.kind", C(proposer.kind), proposer_names, "builtin",
	     "Who proposes fixes: built-in rules, an OpenAI-compatible server, or Anthropic."),
	STR("proposer.endpoint", C(proposer.endpoint), "\"\"", check_url_opt,
	    "Base URL of the API; empty = the kind's public API."),
	STR("proposer.model", C(proposer.model), "\"\"", NULL,
	    "Model name sent with each request."),
	FLT("proposer.temperature", C(proposer.temperature), 0, 2, "0.2", "Sampling temperature."),
	DUR("proposer.timeout_s", C(proposer.timeout_s), 1, 3600, "60", "Limit on one request."),
	DUR("proposer.deadline_s", C(proposer.deadline_s), 1, BIG, "600",
	    "Limit on one proposal, all its requests together."),
	STR("proposer.api_key_env", C(proposer.api_key_env), "\"\"", check_env_name_opt,
	    "NAME of the environment variable holding the API key; empty = send none."),
	INT("proposer.max_requests", C(proposer.max_requests), 1, 10000, "8",
	    "Requests one proposal may make."),
	INT("proposer.max_tokens", C(proposer.max_tokens), 1, 10000000, "4096",
	    "Output tokens one request may ask for."),
	INT("proposer.max_response_bytes", C(proposer.max_response_bytes), 1024, 1073741824,
	    "1048576", "Largest response body accepted."),
	INT("proposer.run_max_requests", C(proposer.run_max_requests), 1, 1000000, "64",
	    "Requests all proposals for one run may make together."),
	INT("proposer.run_max_tokens", C(proposer.run_max_tokens), 1, 1000000000, "1000000",
	    "Tokens (input + output) all proposals for one run may use together."),

	INT("evaluation.steps", C(evaluation.steps), 1, BIG, "300",
	    "Steps of each short run, candidate and baseline alike."),
	INT("evaluation.seeds", C(evaluation.seeds), 1, 100, "2", "Seeds each is run with."),
	INT("evaluation.long_steps", C(evaluation.long_steps), 0, BIG, "1000",
	    "Steps of the second, longer stage; 0 = skip it."),
	INT("evaluation.noise_runs", C(evaluation.noise_runs), 0, 100, "3",
	    "Repeated baseline runs that measure the noise floor."),
	DUR("evaluation.max_wall_s", C(evaluation.max_wall_s), 1, BIG, "1800",
	    "Limit on one evaluation run; a run past it is killed and fails."),

	BOOL("gates.require_no_incident", C(gates.require_no_incident), "true",
	     "A candidate whose evaluation opened an incident fails."),
	FLT("gates.val_loss_tolerance", C(gates.val_loss_tolerance), 0, 1, "0.01",
	    "Largest relative rise of validation loss over the baseline that still passes."),
	BOOL("gates.require_improvement", C(gates.require_improvement), "false",
	     "Demand a lower validation loss, not just no regression."),
	FLT("gates.min_delta", C(gates.min_delta), 0, BIG, "0.0",
	    "With require_improvement: gain needed beyond the measured noise floor."),
	FLT("gates.throughput_ratio", C(gates.throughput_ratio), 0, 10, "0.95",
	    "Candidate tokens/s over baseline tokens/s must be at least this."),
	DUR("gates.max_wall_s", C(gates.max_wall_s), 1, BIG, "7200",
	    "Limit on a candidate's whole evaluation; a timeout fails, never passes."),
	BOOL("gates.human_approval", C(gates.human_approval), "true",
	     "A human must approve before a candidate is promoted."),

	STR("serve.listen", C(serve.listen), "\"127.0.0.1:8765\"", check_listen,
	    "Address of the HTTP status API, HOST:PORT."),
	BOOL("serve.read_only", C(serve.read_only), "true",
	     "Refuse every request that would change something."),
	STR("serve.token_file", C(serve.token_file), "\"\"", NULL,
	    "File holding the bearer token write requests must carry; empty = none (loopback only)."),
	{0},
};

const cfg_key *cfg_schema(void)
{
	return keys;
}

int cfg__key_index(const char *path)
{
	for (int i = 0; keys[i].path; i++)
		if (!strcmp(keys[i].path, path))
			return i;
	return -1;
}

const char *cfg__section_doc(const char *name)
{
	static const char *const docs[][2] = {
		{"run", "How a run is launched, checkpointed and kept."},
		{"trainer", "The in-tree GPT + mixture-of-experts trainer (when run.command is empty)."},
		{"monitors", "Detectors over the metric stream; each opens incidents."},
		{"recovery", "What tend does about an incident: restart, roll back, skip data, cut the LR."},
		{"alerts", "Who hears about incidents, recoveries, give-ups and promotions."},
		{"proposer", "The model that proposes scaffold patches. Its key stays in the environment."},
		{"evaluation", "How a proposed patch is evaluated against the baseline."},
		{"gates", "What a patch must pass to be promoted; out of the model's reach."},
		{"serve", "The HTTP status API."},
	};
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
		if (!strcmp(docs[i][0], name))
			return docs[i][1];
	return NULL;
}

/* --- checks between keys ------------------------------------------------ */

static bool is_loopback(const char *listen)
{
	return !strncmp(listen, "127.", 4) || !strncmp(listen, "localhost:", 10) ||
	       !strncmp(listen, "[::1]:", 6);
}

static int check_spike(const cfg__ctx *x, const cfg_spike *sp, const char *name)
{
	char w[48], wu[48];
	snprintf(w, sizeof w, "monitors.%s.window", name);
	snprintf(wu, sizeof wu, "monitors.%s.warmup", name);
	if (sp->warmup > sp->window)
		return cfg__fail_keys(x, wu, w, "%s (%" PRId64 ") is more than %s (%" PRId64 ")",
				      wu, sp->warmup, w, sp->window);
	return 0;
}

static int check_model(const cfg__ctx *x, const cfg_trainer *t)
{
	if (t->d_model % t->heads)
		return cfg__fail_keys(x, "trainer.heads", "trainer.d_model",
			"trainer.heads (%" PRId64 ") must divide trainer.d_model (%" PRId64 ")",
			t->heads, t->d_model);
	if (t->moe_every > t->layers)
		return cfg__fail_keys(x, "trainer.moe_every", "trainer.layers",
			"trainer.moe_every (%" PRId64 ") is more than trainer.layers (%" PRId64
			"), so no block would be MoE; use 0 for a dense model",
			t->moe_every, t->layers);
	if (t->moe_every && t->top_k > t->experts)
		return cfg__fail_keys(x, "trainer.top_k", "trainer.experts",
			"trainer.top_k (%" PRId64 ") is more than trainer.experts (%" PRId64 ")",
			t->top_k, t->experts);
	return 0;
}

static int check_run(const cfg__ctx *x, const cfg *c)
{
	const cfg_run *r = &c->run;
	if (r->keep_every && r->checkpoint_every && r->keep_every % r->checkpoint_every)
		return cfg__fail_keys(x, "run.keep_every", "run.checkpoint_every",
			"run.keep_every (%" PRId64 ") must be a multiple of "
			"run.checkpoint_every (%" PRId64 ")", r->keep_every, r->checkpoint_every);
	for (size_t i = 0; *c->proposer.api_key_env && i < r->env_passthrough.n; i++)
		if (!strcmp(r->env_passthrough.v[i], c->proposer.api_key_env))
			return cfg__fail_keys(x, "run.env_passthrough", "proposer.api_key_env",
				"run.env_passthrough lists %s, the proposer's key: "
				"the trainer must never see it", c->proposer.api_key_env);
	return 0;
}

int cfg__cross_check(const cfg__ctx *x, const cfg *c)
{
	int rc;
	if ((rc = check_model(x, &c->trainer)) || (rc = check_run(x, c)) ||
	    (rc = check_spike(x, &c->monitors.loss_spike, "loss_spike")) ||
	    (rc = check_spike(x, &c->monitors.grad_spike, "grad_spike")))
		return rc;
	if (c->recovery.backoff_initial_s > c->recovery.backoff_max_s)
		return cfg__fail_keys(x, "recovery.backoff_initial_s", "recovery.backoff_max_s",
			"recovery.backoff_initial_s is more than recovery.backoff_max_s");
	if (!c->serve.read_only && !*c->serve.token_file && !is_loopback(c->serve.listen))
		return cfg__fail_keys(x, "serve.read_only", "serve.listen",
			"serve.listen (%s) is not loopback and writes are allowed: "
			"set serve.token_file or serve.read_only: true", c->serve.listen);
	return 0;
}
