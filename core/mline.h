/*
 * mline.h - one line of the metrics protocol (docs/metrics.md): a JSON
 * object per line that a trainer writes to metrics.jsonl. The supervisor's
 * ingest and replay both read lines through mline_parse, so what counts as
 * malformed is decided here and only here.
 *
 * An mline is caller-owned and reused from line to line: its buffers grow
 * to the largest line seen and are not freed between lines, so parsing a
 * stream does not allocate once it has settled.
 */
#ifndef TEND_MLINE_H
#define TEND_MLINE_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"

/* A line may hold at most this many bytes (newline excluded). */
#define MLINE_MAX_BYTES ((size_t)1 << 20)

typedef enum {
	MLINE_STEP, MLINE_EVAL, MLINE_HEARTBEAT, MLINE_CHECKPOINT, MLINE_EVENT
} mline_type;

typedef struct mline_metric {
	const char *name; /* valid until the next mline_parse or mline_free */
	double value;     /* may be NaN or +-Infinity */
} mline_metric;

typedef struct mline {
	/* the last parsed line; all pointers valid until the next parse */
	mline_type type;
	int64_t step;
	double t;                /* wall seconds, NAN when absent */
	mline_metric *metrics;   /* in line order; moe metrics flattened */
	size_t n_metrics;
	const char *scaffold;    /* strings: NULL when absent */
	const char *path, *sha256;        /* checkpoint lines */
	const char *event, *message;      /* event lines */
	int ok;                  /* event lines: 1 or 0; -1 when absent */

	/* private: the reused buffers */
	json_doc *doc_;
	char *names_;            /* flattened moe metric names */
	size_t names_len_, names_cap_;
	uint32_t *name_off_;     /* per metric: offset into names_, or UINT32_MAX */
	size_t metrics_cap_;
} mline;

void mline_init(mline *m);
/* Frees the buffers; m can be initialised again. Accepts NULL. */
void mline_free(mline *m);

/* Parses one line (a trailing "\n" or "\r\n" is ignored) into m. Returns 0;
 * TEND_EINVAL when the line is malformed, with the reason as the message
 * ("truncated JSON", "binary data", "line over 1 MiB", "missing step",
 * "field loss: expected a number, got a string", ...); or TEND_ENOMEM. After
 * a failure m holds an empty line (no metrics, no strings). */
int mline_parse(mline *m, const char *line, size_t len);

/* The value of metric name in the last parsed line: 0, or TEND_ENOTFOUND. */
int mline_get(const mline *m, const char *name, double *out);

/* "step", "eval", "heartbeat", "checkpoint", "event". */
const char *mline_type_name(mline_type t);

#endif
