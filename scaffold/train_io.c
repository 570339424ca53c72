/*
 * train_io.c - what the trainer writes and reads besides tensors: metrics
 * lines (docs/metrics.md), events, heartbeats from a side thread (so a hung
 * step is told apart from a dead process), evaluation, checkpoints with
 * retention, and resume.
 */
#include "trn_int.h"
#include "ckpt.h"
#include "tend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* JSON numbers; non-finite values as the NaN/Infinity tokens the metrics
 * protocol accepts, because a NaN loss is exactly what must get through. */
static void put_num(FILE *f, const char *key, double v)
{
	if (key)
		fprintf(f, ",\"%s\":", key);
	if (isnan(v))
		fputs("NaN", f);
	else if (isinf(v))
		fputs(v > 0 ? "Infinity" : "-Infinity", f);
	else
		fprintf(f, "%.9g", v);
}

static void put_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void *heartbeat_main(void *ud)
{
	trn_state *s = ud;
	double next = trn__now() + s->o->heartbeat_s;
	while (!s->hb_stop) {
		usleep(50000);
		if (trn__now() < next)
			continue;
		next = trn__now() + s->o->heartbeat_s;
		pthread_mutex_lock(&s->mu);
		fprintf(s->metrics, "{\"type\":\"heartbeat\",\"step\":%ld,\"t\":%.3f}\n",
			s->hb_step, trn__now());
		fflush(s->metrics);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

int trn__metrics_open(trn_state *s, const char *path)
{
	s->metrics = fopen(path, "a");
	if (!s->metrics)
		return tend_error_os("metrics file %s", path);
	pthread_mutex_init(&s->mu, NULL);
	if (s->o->heartbeat_s > 0 && pthread_create(&s->hb, NULL, heartbeat_main, s) == 0)
		s->hb_running = true;
	return 0;
}

void trn__metrics_close(trn_state *s)
{
	if (!s->metrics)
		return;
	if (s->hb_running) {
		s->hb_stop = 1;
		pthread_join(s->hb, NULL);
	}
	fclose(s->metrics);
	pthread_mutex_destroy(&s->mu);
	s->metrics = NULL;
}

static void put_moe(FILE *f, const gpt *g, int top_k, long tokens)
{
	gpt_moe_layer_stats st[16];
	int n = gpt_moe_stats(g, st, 16);
	if (n <= 0)
		return;
	fputs(",\"moe\":[", f);
	for (int i = 0; i < n && i < 16; i++) {
		const gpt_moe_layer_stats *m = &st[i];
		int dead = 0;
		fprintf(f, "%s{\"layer\":%d,\"load\":[", i ? "," : "", m->layer);
		for (int e = 0; e < m->experts; e++) {
			fprintf(f, "%s%.5g", e ? "," : "", (double)m->load[e]);
			dead += m->load[e] == 0.0f;
		}
		fputc(']', f);
		put_num(f, "max_over_mean", m->load_mean > 0 ? m->load_max / m->load_mean : NAN);
		put_num(f, "entropy", m->entropy * log((double)m->experts)); /* nats */
		fprintf(f, ",\"dropped\":%d,\"tokens\":%ld,\"top_k\":%d,\"dead\":%d", m->dropped,
			tokens, top_k, dead);
		put_num(f, "aux_loss", m->aux_loss);
		put_num(f, "z_loss", m->z_loss);
		fputc('}', f);
	}
	fputc(']', f);
}

void trn__metrics_step(trn_state *s, long step, const trn_step_out *o)
{
	FILE *f = s->metrics;
	pthread_mutex_lock(&s->mu);
	fprintf(f, "{\"type\":\"step\",\"step\":%ld,\"t\":%.3f", step, trn__now());
	put_num(f, "loss", o->loss);
	put_num(f, "lr", o->lr);
	put_num(f, "grad_norm", o->grad_norm);
	put_num(f, "tokens_per_s", o->tokens_per_s);
	put_num(f, "step_time_s", o->step_time);
	put_num(f, "clip", o->clip);
	put_moe(f, s->g, s->o->model.top_k,
		(long)s->o->batch * s->o->context * s->o->model.top_k);
	fputs(",\"scaffold\":", f);
	put_str(f, s->commit);
	fputs("}\n", f);
	fflush(f);
	s->hb_step = step;
	s->last_step = step;
	s->last_loss = o->loss;
	s->last_grad_norm = o->grad_norm;
	pthread_mutex_unlock(&s->mu);
}

void trn__event(trn_state *s, long step, const char *event, const char *message, bool ok)
{
	FILE *f = s->metrics;
	if (!f)
		return;
	pthread_mutex_lock(&s->mu);
	fprintf(f, "{\"type\":\"event\",\"step\":%ld,\"t\":%.3f,\"event\":", step < 0 ? 0 : step,
		trn__now());
	put_str(f, event);
	fputs(",\"message\":", f);
	put_str(f, message);
	fprintf(f, ",\"ok\":%s,\"scaffold\":", ok ? "true" : "false");
	put_str(f, s->commit);
	fputs("}\n", f);
	fflush(f);
	pthread_mutex_unlock(&s->mu);
}

int trn__on_step(trn_state *s, long step, const trn_step_out *o, scf_actions *acts)
{
	scf_metrics m = {0};
	gpt_moe_layer_stats st[16];
	scf_moe moe[16];
	memset(acts, 0, sizeof *acts);
	m.step = step;
	m.loss = o->loss;
	m.grad_norm = o->grad_norm;
	m.lr = o->lr;
	m.tokens_per_s = o->tokens_per_s;
	m.step_time_s = o->step_time;
	m.val_loss = NAN;
	int n = gpt_moe_stats(s->g, st, 16);
	m.n_moe = n < 16 ? n : 16;
	m.moe = moe;
	for (int i = 0; i < m.n_moe; i++) {
		moe[i].max_over_mean = st[i].load_max / st[i].load_mean;
		moe[i].entropy = st[i].entropy * log((double)st[i].experts);
		moe[i].dropped = st[i].dropped_frac;
	}
	if (scf_on_step(s->scf, &m, acts) < 0) {
		char msg[1024];
		snprintf(msg, sizeof msg, "on_step failed (ignored): %s", tend_error_last());
		trn__event(s, step, "scaffold_error", msg, false);
		memset(acts, 0, sizeof *acts);
	}
	return 0;
}

void trn__eval(trn_state *s, long step)
{
	const trn_opts *o = s->o;
	double sum = 0;
	int n = 0;
	if (!s->val)
		return;
	loader_reset(s->val);
	for (int i = 0; i < o->eval_batches; i++) {
		float loss;
		if (loader_next(s->val, s->inputs, s->targets) < 0 ||
		    gpt_forward(s->g, s->inputs, s->targets, o->batch, o->context, &loss) < 0)
			break;
		sum += loss;
		n++;
	}
	if (n == 0)
		return;
	s->last_eval = step;
	pthread_mutex_lock(&s->mu);
	fprintf(s->metrics, "{\"type\":\"eval\",\"step\":%ld,\"t\":%.3f", step, trn__now());
	put_num(s->metrics, "val_loss", sum / n);
	fputs("}\n", s->metrics);
	fflush(s->metrics);
	pthread_mutex_unlock(&s->mu);
}

static int write_ckpt(trn_state *s, long step, const char *path)
{
	ckpt_writer *w = NULL;
	char cfg[1024], num[32];
	uint8_t cur[LOADER_CURSOR_BYTES];
	loader_cursor c;
	size_t n = gpt_num_params(s->g);
	int rc;
	trn__config_text(s->o, cfg, sizeof cfg);
	loader_get_cursor(s->train, &c);
	loader_cursor_encode(&c, cur);
	if ((rc = ckpt_writer_new(&w, step)) < 0)
		return rc;
	snprintf(num, sizeof num, "%d", gpt_get_step(s->g));
	if ((rc = ckpt_writer_config(w, cfg)) < 0 ||
	    (rc = ckpt_writer_commit(w, s->commit)) < 0 ||
	    (rc = ckpt_writer_cursor(w, cur, sizeof cur)) < 0 ||
	    (rc = ckpt_writer_meta(w, "adam_t", num)) < 0)
		goto done;
	snprintf(num, sizeof num, "%ld", s->data_pos);
	if ((rc = ckpt_writer_meta(w, "data_pos", num)) < 0 ||
	    (rc = ckpt_writer_add(w, "params", gpt_params(s->g), n)) < 0 ||
	    (rc = ckpt_writer_add(w, "adam_m", gpt_adam_m(s->g), n)) < 0 ||
	    (rc = ckpt_writer_add(w, "adam_v", gpt_adam_v(s->g), n)) < 0)
		goto done;
	rc = ckpt_write(w, path);
done:
	ckpt_writer_free(w);
	return rc;
}

int trn__checkpoint(trn_state *s, long step)
{
	char path[PATH_MAX], msg[PATH_MAX + 128];
	int rc, deleted = 0;
	if (s->last_ckpt == step)
		return 0;
	if (!isfinite(s->last_loss) || !isfinite(s->last_grad_norm)) {
		/* Never write a poisoned checkpoint: rollback needs a good one. */
		trn__event(s, step, "checkpoint_skipped",
			   "loss or grad norm is not finite: not checkpointing", false);
		return 0;
	}
	ckpt_path(path, sizeof path, s->ckpt_dir, step);
	if ((rc = write_ckpt(s, step, path)) < 0) {
		snprintf(msg, sizeof msg, "checkpoint failed: %s", tend_error_last());
		trn__event(s, step, "checkpoint_failed", msg, false);
		return rc;
	}
	s->last_ckpt = step;
	ckpt_retain(s->ckpt_dir, s->o->keep_last, s->o->keep_every, &deleted);
	pthread_mutex_lock(&s->mu);
	fprintf(s->metrics, "{\"type\":\"checkpoint\",\"step\":%ld,\"t\":%.3f,\"path\":", step,
		trn__now());
	put_str(s->metrics, path);
	fputs("}\n", s->metrics);
	fflush(s->metrics);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static int load_ckpt(trn_state *s, const char *path, long *first)
{
	ckpt *c = NULL;
	char cfg[1024];
	size_t n = gpt_num_params(s->g), cn = 0;
	loader_cursor cur;
	int rc;
	trn__config_text(s->o, cfg, sizeof cfg);
	if ((rc = ckpt_open(&c, path)) < 0 || (rc = ckpt_check_config(c, cfg)) < 0)
		goto done;
	const void *cb = ckpt_cursor(c, &cn);
	const char *t = ckpt_meta(c, "adam_t"), *dp = ckpt_meta(c, "data_pos");
	if (!cb || !t || !dp) {
		rc = tend_error_set(TEND_EINVAL, "%s: not a checkpoint of tend's trainer "
				    "(no data cursor or optimizer step)", path);
		goto done;
	}
	if ((rc = ckpt_section_copy(c, "params", gpt_params(s->g), n)) < 0 ||
	    (rc = ckpt_section_copy(c, "adam_m", gpt_adam_m(s->g), n)) < 0 ||
	    (rc = ckpt_section_copy(c, "adam_v", gpt_adam_v(s->g), n)) < 0 ||
	    (rc = loader_cursor_decode(&cur, cb, cn)) < 0 ||
	    (rc = loader_set_cursor(s->train, &cur)) < 0)
		goto done;
	gpt_set_step(s->g, atoi(t));
	s->data_pos = atol(dp);
	*first = ckpt_step(c) + 1;
	s->last_ckpt = s->last_step = ckpt_step(c);
	pthread_mutex_lock(&s->mu); /* the heartbeat thread is already running */
	s->hb_step = s->last_step;  /* a heartbeat names the last step done */
	pthread_mutex_unlock(&s->mu);
	s->last_loss = s->last_grad_norm = 0;
	snprintf(s->resumed_from, sizeof s->resumed_from, "resumed from %s", path);
done:
	ckpt_free(c);
	return rc < 0 ? tend_error_wrap(rc, "resume") : 0;
}

int trn__resume(trn_state *s, long *first)
{
	char path[PATH_MAX];
	const char *r = s->o->resume;
	*first = 1;
	if (!r || !*r)
		return 0;
	if (strcmp(r, "latest") == 0) {
		if (ckpt_latest_good(s->ckpt_dir, LONG_MAX, path, sizeof path) < 0)
			return 0; /* nothing to resume: a fresh start */
		r = path;
	}
	return load_ckpt(s, r, first);
}

void trn__collapse_routers(gpt *g)
{
	gpt_tensor t;
	for (int i = 0, n = gpt_num_tensors(g); i < n; i++)
		if (gpt_tensor_at(g, i, &t) == 0 && strcmp(t.name, "routerw") == 0)
			memset(gpt_params(g) + t.offset, 0, t.count * sizeof(float));
}

void trn_scaffold_commit(const char *dir, char *out, size_t cap)
{
	char path[PATH_MAX], line[256];
	const char *env = getenv("TEND_SCAFFOLD_COMMIT");
	snprintf(out, cap, "unknown");
	if (env && *env) {
		snprintf(out, cap, "%s", env);
		return;
	}
	snprintf(path, sizeof path, "%s/.git/HEAD", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(line, sizeof line, f)) {
		fclose(f);
		return;
	}
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	if (strncmp(line, "ref: ", 5) != 0) {
		snprintf(out, cap, "%.40s", line);
		return;
	}
	snprintf(path, sizeof path, "%s/.git/%s", dir, line + 5);
	if ((f = fopen(path, "r"))) {
		if (fgets(line, sizeof line, f)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, cap, "%.40s", line);
		}
		fclose(f);
	}
}
