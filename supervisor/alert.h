/*
 * alert.h - Slack-compatible webhooks for incidents, recoveries, give-ups
 * and promotions: a JSON POST {"text": ..., "tend": {...}} through the
 * non-blocking HTTP client, retried with backoff, de-duplicated by key.
 */
#ifndef ALERT_H
#define ALERT_H

#include "config.h"
#include "http.h"

typedef struct alert alert;

/* Told once per webhook delivery: rc 0 when delivered, else the error. */
typedef void (*alert_result_fn)(const char *url, const char *key, int rc,
				const char *error, void *ud);

/* The caller owns *out; http and cfg must outlive it. dedup_s: a second
 * alert with the same key within this many seconds is dropped. */
int alert_new(alert **out, http_client *http, const cfg_alerts *cfg,
	      double dedup_s, alert_result_fn fn, void *ud);
void alert_free(alert *a);

/* Sends to every webhook subscribed to kind (a CFG_EVENT_* bit). now is
 * monotonic seconds. Returns the number of webhooks posted to (0 when the
 * key was a recent duplicate or nobody subscribes), or a negative code. */
int alert_post(alert *a, unsigned kind, const char *key, const char *text, double now);

/* Counters since alert_new. */
typedef struct alert_stats {
	int posted, delivered, failed, deduped;
} alert_stats;
void alert_get_stats(const alert *a, alert_stats *out);

/* The name of a CFG_EVENT_* bit: "incident", "recovery", ... */
const char *alert_kind_name(unsigned kind);

#endif
