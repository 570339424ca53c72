/* test_gate.c - the gates: each rule passes and fails on the figures it
 * reads, a timeout is a failure, a non-finite baseline loses to a finite
 * candidate, and the rules hash moves when a gate moves. */
#include "config.h"
#include "gate.h"
#include "tend.h"
#include "tt.h"

#include <math.h>

static gate_figures fig(double val, double tps, int incidents)
{
	return (gate_figures){.val_loss = val, .loss_tail = val, .tokens_per_s = tps,
		.wall_s = 10, .steps = 50, .steps_wanted = 50, .incidents = incidents};
}

static cfg_gates gates(void)
{
	return (cfg_gates){.require_no_incident = true, .val_loss_tolerance = 0.01,
		.throughput_ratio = 0.95, .max_wall_s = 100};
}

static const gate_row *row(const gate_verdict *v, const char *name)
{
	for (int i = 0; i < v->n; i++)
		if (!strcmp(v->rows[i].name, name))
			return &v->rows[i];
	return NULL;
}

static void test_all_pass(void)
{
	gate_verdict v;
	cfg_gates g = gates();
	gate_figures b = fig(3.00, 1000, 0), c = fig(3.02, 990, 0);
	gate_judge(&v, &g, &b, &c, 0);
	TT_CHECK(v.pass);
	TT_CHECK_STR(v.reason, "every gate passed");
	TT_CHECK(v.n == 5);
}

static void test_each_gate_fails(void)
{
	gate_verdict v;
	cfg_gates g = gates();
	gate_figures b = fig(3.00, 1000, 0), c = fig(3.10, 900, 2);
	c.wall_s = 200;
	gate_judge(&v, &g, &b, &c, 0);
	TT_CHECK(!v.pass);
	TT_CHECK(!row(&v, "no_incident")->pass);
	TT_CHECK(!row(&v, "val_loss")->pass);
	TT_CHECK(!row(&v, "throughput")->pass);
	TT_CHECK(!row(&v, "wall_time")->pass);
	TT_CHECK(row(&v, "completed")->pass);
	TT_CHECK_HAS(v.reason, "candidate raised incidents");
	TT_CHECK_HAS(v.reason, "validation loss worse than the baseline allows");
	TT_CHECK_HAS(row(&v, "val_loss")->bound, "<= 3.03");
}

static void test_timeout_is_failure(void)
{
	gate_verdict v;
	cfg_gates g = gates();
	gate_figures b = fig(3.0, 1000, 0), c = fig(2.0, 2000, 0);
	c.timed_out = true;
	gate_judge(&v, &g, &b, &c, 0);
	TT_CHECK(!v.pass);
	TT_CHECK_HAS(v.reason, "candidate timed out");
}

static void test_nonfinite(void)
{
	gate_verdict v;
	cfg_gates g = gates();
	gate_figures b = fig(NAN, 1000, 3), c = fig(3.0, 1000, 0);
	gate_judge(&v, &g, &b, &c, 0);
	TT_CHECK(v.pass); /* the baseline broke where the candidate did not */
	gate_judge(&v, &g, &c, &b, 0);
	TT_CHECK(!v.pass);
	TT_CHECK_HAS(v.reason, "candidate validation loss missing or not finite");
}

static void test_improvement_above_noise(void)
{
	gate_verdict v;
	cfg_gates g = gates();
	g.require_improvement = true;
	g.min_delta = 0.01;
	gate_figures b = fig(3.00, 1000, 0), c = fig(2.95, 1000, 0);
	gate_judge(&v, &g, &b, &c, 0.01); /* needs 0.02 better: 0.05 is */
	TT_CHECK(v.pass);
	gate_judge(&v, &g, &b, &c, 0.03); /* needs 0.06 better: 0.05 is not */
	TT_CHECK(!v.pass);
	TT_CHECK_HAS(v.reason, "no improvement above the noise floor");
}

static void test_rules_hash_moves(void)
{
	cfg *c = NULL;
	char h1[65], h2[65], h3[65];
	TT_REQUIRE(cfg_defaults(&c) == 0);
	TT_CHECK_RC(gate_rules_hash(c, h1), 0);
	c->gates.val_loss_tolerance = 0.5;
	TT_CHECK_RC(gate_rules_hash(c, h2), 0);
	c->gates.val_loss_tolerance = 0.01;
	c->trainer.batch = 99; /* not a gate */
	TT_CHECK_RC(gate_rules_hash(c, h3), 0);
	TT_CHECK(strcmp(h1, h2) != 0);
	TT_CHECK_STR(h1, h3);
	cfg_free(c);
}

static void test_verdict_json(void)
{
	gate_verdict v;
	cfg_gates g = gates();
	gate_figures b = fig(NAN, 1000, 0), c = fig(3.0, 1000, 0);
	jbuf j;
	json_doc *d = NULL;
	gate_judge(&v, &g, &b, &c, 0);
	jbuf_init(&j);
	jbuf_obj_open(&j);
	jbuf_key(&j, "baseline");
	gate_figures_json(&b, &j);
	jbuf_key(&j, "verdict");
	gate_verdict_json(&v, &j);
	jbuf_obj_close(&j);
	size_t len;
	const char *text = jbuf_cstr(&j, &len);
	TT_CHECK_RC(json_parse(&d, text, len, NULL), 0); /* strict: NaN became null */
	TT_CHECK(json_type(json_get(json_get(json_root(d), "baseline"), "val_loss")) == JSON_NULL);
	json_doc_free(d);
	jbuf_free(&j);
}

int main(void)
{
	TT_RUN(test_all_pass);
	TT_RUN(test_each_gate_fails);
	TT_RUN(test_timeout_is_failure);
	TT_RUN(test_nonfinite);
	TT_RUN(test_improvement_above_noise);
	TT_RUN(test_rules_hash_moves);
	TT_RUN(test_verdict_json);
	return TT_DONE();
}
