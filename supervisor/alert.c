/*
 * alert.c - webhook fan-out with de-duplication. The key remembered for
 * de-duplication is the incident signature (or similar), so a flapping
 * detector cannot flood a channel.
 */
#include "alert.h"
#include "cli.h"
#include "tend.h"

#include <stdlib.h>
#include <string.h>

#define DEDUP_SLOTS 256

typedef struct {
	char key[160];
	double at;
} seen_key;

struct alert {
	http_client *http;
	const cfg_alerts *cfg;
	double dedup_s;
	alert_result_fn fn;
	void *ud;
	seen_key seen[DEDUP_SLOTS];
	size_t next_slot;
	alert_stats stats;
};

typedef struct {
	alert *a;
	char url[512];
	char key[160];
} delivery;

const char *alert_kind_name(unsigned kind)
{
	switch (kind) {
	case CFG_EVENT_INCIDENT: return "incident";
	case CFG_EVENT_RECOVERY: return "recovery";
	case CFG_EVENT_GIVEUP: return "giveup";
	case CFG_EVENT_PROMOTION: return "promotion";
	default: return "other";
	}
}

int alert_new(alert **out, http_client *http, const cfg_alerts *cfg,
	      double dedup_s, alert_result_fn fn, void *ud)
{
	alert *a = calloc(1, sizeof *a);
	if (!a)
		return tend_error_set(TEND_ENOMEM, "alerts: out of memory");
	a->http = http;
	a->cfg = cfg;
	a->dedup_s = dedup_s;
	a->fn = fn;
	a->ud = ud;
	*out = a;
	return 0;
}

void alert_free(alert *a)
{
	free(a);
}

void alert_get_stats(const alert *a, alert_stats *out)
{
	*out = a->stats;
}

/* True when key was seen within dedup_s; remembers it otherwise. */
static bool is_duplicate(alert *a, const char *key, double now)
{
	for (size_t i = 0; i < DEDUP_SLOTS; i++) {
		seen_key *s = &a->seen[i];
		if (s->key[0] && strcmp(s->key, key) == 0) {
			if (now - s->at < a->dedup_s)
				return true;
			s->at = now;
			return false;
		}
	}
	seen_key *s = &a->seen[a->next_slot++ % DEDUP_SLOTS];
	snprintf(s->key, sizeof s->key, "%s", key);
	s->at = now;
	return false;
}

static void on_delivered(const http_response *r, void *ud)
{
	delivery *d = ud;
	alert *a = d->a;
	bool ok = r->rc == 0 && r->status >= 200 && r->status < 300;
	if (ok)
		a->stats.delivered++;
	else
		a->stats.failed++;
	if (a->fn) {
		char why[600];
		if (r->rc == 0 && !ok)
			snprintf(why, sizeof why, "%s: HTTP %ld", d->url, r->status);
		else
			snprintf(why, sizeof why, "%s", r->error ? r->error : "");
		a->fn(d->url, d->key, ok ? 0 : (r->rc ? r->rc : TEND_EIO), ok ? NULL : why, a->ud);
	}
	free(d);
}

/* Builds the Slack-compatible body into a malloc'd string. */
static char *make_body(unsigned kind, const char *key, const char *text)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs("{\"text\":", f);
	cli_json_str(f, text);
	fprintf(f, ",\"tend\":{\"kind\":\"%s\",\"key\":", alert_kind_name(kind));
	cli_json_str(f, key);
	fputs("}}", f);
	fclose(f);
	return buf;
}

int alert_post(alert *a, unsigned kind, const char *key, const char *text, double now)
{
	int sent = 0;
	if (is_duplicate(a, key, now)) {
		a->stats.deduped++;
		return 0;
	}
	char *body = make_body(kind, key, text);
	if (!body)
		return tend_error_set(TEND_ENOMEM, "alerts: out of memory");
	const char *hdr[] = {"Content-Type: application/json", NULL};
	for (size_t i = 0; i < a->cfg->webhooks.n; i++) {
		const cfg_webhook *w = &a->cfg->webhooks.v[i];
		if (!(w->events & kind))
			continue;
		delivery *d = calloc(1, sizeof *d);
		if (!d)
			break;
		d->a = a;
		snprintf(d->url, sizeof d->url, "%s", w->url);
		snprintf(d->key, sizeof d->key, "%s", key);
		http_request req = {
			.url = w->url, .headers = hdr, .body = body, .body_len = strlen(body),
			.deadline_ms = (long)(w->timeout_s * 1000.0),
			.max_attempts = (int)a->cfg->retries + 1,
			.backoff_ms = (long)(a->cfg->backoff_s * 1000.0),
			.max_response_bytes = 64 * 1024,
		};
		if (http_send(a->http, &req, on_delivered, d) < 0) {
			free(d);
			a->stats.failed++;
			continue;
		}
		a->stats.posted++;
		sent++;
	}
	free(body);
	return sent;
}
