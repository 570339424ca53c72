/*
 * mon_int.h - what the files of monitors/ share and nobody else uses: the
 * rolling window (incremental median, MAD, max), the evidence ring, the
 * alarm that turns hits into emissions, the rollback records, the state of
 * each detector and the mon_set that holds them.
 */
#ifndef MON_INT_H
#define MON_INT_H

#include "mon.h"

#include <limits.h>

#define MON__NONE LONG_MIN

/* ---- rolling window ---------------------------------------------------- */

/* The last `window` finite values kept sorted (binary search + memmove:
 * O(log w) compares and one short move per push, no sort), plus a ring of
 * (step, value) in arrival order that also keeps `history` older entries so
 * that a rollback can bring back the window as it was. */
typedef struct mon__win {
	int window, cap;   /* cap = window + history */
	int n, head;       /* ring entries, index of the oldest */
	int ns;            /* values in sorted: min(n, window) */
	long *steps;
	double *vals;
	double *sorted;
} mon__win;

int mon__win_init(mon__win *w, int window, int history);
void mon__win_free(mon__win *w);
void mon__win_push(mon__win *w, long step, double v);
/* Statistics of the values in the window; NaN when it is empty. */
double mon__win_median(const mon__win *w);
double mon__win_mad(const mon__win *w, double median);
double mon__win_max(const mon__win *w);
/* Drops entries with step > from_step and refills the window from the
 * history that remains. */
void mon__win_rollback(mon__win *w, long from_step);
void mon__win_clear(mon__win *w);
/* Copies the newest entries (up to MON_EVIDENCE_MAX) into inc's evidence. */
void mon__win_evidence(const mon__win *w, mon_incident *inc);

/* ---- evidence ring ----------------------------------------------------- */

typedef struct mon__ring {
	int n, head;
	long step[MON_EVIDENCE_MAX];
	double val[MON_EVIDENCE_MAX];
} mon__ring;

void mon__ring_push(mon__ring *r, long step, double v);
void mon__ring_rollback(mon__ring *r, long from_step);
void mon__ring_evidence(const mon__ring *r, mon_incident *inc);

/* ---- rollback records -------------------------------------------------- */

/* A log of (step, value) marks in step order, e.g. each new minimum. When
 * full, every other record goes and from then on only every stride-th mark
 * is kept, so the records stay spread evenly over the whole run; what comes
 * back after a rollback is a true earlier mark, possibly a slightly older
 * one. */
#define MON__RECS_MAX 256
typedef struct mon__recs {
	int n;
	long stride, seen;  /* keep marks whose count is a multiple of stride */
	long step[MON__RECS_MAX];
	double v[MON__RECS_MAX];
} mon__recs;

void mon__recs_push(mon__recs *r, long step, double v);
/* Forgets records after from_step; the newest remaining one, or false. */
bool mon__recs_rollback(mon__recs *r, long from_step, long *step, double *v);

/* ---- alarms ------------------------------------------------------------ */

/* Consecutive hits of one condition (one signature) and when it last
 * emitted. A signature emits at most every reemit steps (or seconds), so
 * that a condition that persists or flaps folds into one incident. */
typedef struct mon__alarm {
	int hits;
	long onset;        /* step of the first hit of the current run */
	long last_emit;    /* step of the last emission, MON__NONE if none */
	double last_emit_t; /* time of the last emission, NaN if none */
} mon__alarm;

void mon__alarm_init(mon__alarm *a);
void mon__alarm_hit(mon__alarm *a, long step);
void mon__alarm_miss(mon__alarm *a);
/* True (and marks the emission) when hits reached patience and the
 * signature has not emitted within reemit steps. */
bool mon__alarm_due(mon__alarm *a, long step, int patience, long reemit);
/* The same on time: true when not emitted within reemit_s seconds. */
bool mon__alarm_due_t(mon__alarm *a, double t, double reemit_s);

/* ---- detector state ---------------------------------------------------- */

enum { MON__NF_LOSS, MON__NF_GRAD, MON__NF_LR, MON__NF_VAL, MON__NF_COUNT };

typedef struct mon__nonfinite {
	mon__ring ring[MON__NF_COUNT];
	mon__alarm alarm[MON__NF_COUNT];
} mon__nonfinite;

typedef struct mon__spike {
	const mon_spike_params *p;
	mon_kind kind;
	const char *metric;
	mon__win win;
	mon__alarm alarm;
} mon__spike;

typedef struct mon__trend {
	mon__win win;
	mon__ring meds;        /* rolling medians, the evidence */
	double min_med;        /* lowest rolling median, NaN before the first */
	long min_step;
	mon__recs min_recs;
	double ref;            /* median at the last real improvement */
	long ref_step;
	mon__recs ref_recs;
	mon__alarm div, plat;
} mon__trend;

typedef struct mon__tput {
	mon__win win;          /* healthy values only: hits stay out */
	mon__ring raw;
	int skip;              /* samples left untested after a restart */
	mon__alarm alarm;
} mon__tput;

typedef struct mon__live {
	bool started;          /* a sample or tick gave a time */
	double first_t, last_any_t;
	long last_any_step;
	bool have_progress;
	double last_progress_t;
	long progress_step;
	bool stalled;          /* the current gap was reported as a stall */
	mon__win gaps;         /* seconds between progress reports */
	mon__ring seen;        /* (step, t) of recent samples */
	mon__alarm stall, hb;
} mon__live;

typedef struct mon__moe_layer {
	int n_experts;         /* E this state was built for, 0 when unused */
	mon__ring mom, ent, lent, drop;  /* lent: the entropy of the load */
	mon__alarm imb, col, drp;
	mon__alarm dead[MON_MOE_MAX_EXPERTS];
	float *share_hist;     /* E x MON_EVIDENCE_MAX, ring by hist_head */
	long hist_step[MON_EVIDENCE_MAX];
	int hist_n, hist_head;
} mon__moe_layer;

typedef struct mon__moe {
	mon__moe_layer **layers;
	int n_layers;
} mon__moe;

struct mon_set {
	mon_params p;
	mon_emit_fn emit;
	void *ud;
	int emit_rc;           /* first negative emit return of this call */
	bool have_step;
	long last_step;
	mon__nonfinite nf;
	mon__spike loss, grad;
	mon__trend trend;
	mon__tput tput;
	mon__live live;
	mon__moe moe;
};

/* ---- emission helpers -------------------------------------------------- */

/* Resets inc for kind: figures NaN, no evidence, signature = kind name. */
void mon__incident_init(mon_incident *inc, mon_kind kind, mon_severity sev,
			long onset, long last);
void mon__sig(mon_incident *inc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void mon__summary(mon_incident *inc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Hands inc to the caller's callback, keeping its first error. */
void mon__emit(mon_set *set, const mon_incident *inc);

/* ---- detectors (one file each) ----------------------------------------- */

void mon__nonfinite_init(mon__nonfinite *nf);
void mon__nonfinite_feed(mon_set *set, const mon_sample *s);
void mon__nonfinite_restart(mon__nonfinite *nf, long from_step);

int mon__spike_init(mon__spike *sp, const mon_spike_params *p, mon_kind kind,
		    const char *metric, int history);
void mon__spike_free(mon__spike *sp);
void mon__spike_feed(mon_set *set, mon__spike *sp, long step, double v);
void mon__spike_restart(mon__spike *sp, long from_step);

int mon__trend_init(mon__trend *tr, const mon_params *p);
void mon__trend_free(mon__trend *tr);
void mon__trend_feed(mon_set *set, long step, double loss);
void mon__trend_restart(mon__trend *tr, long from_step);

int mon__tput_init(mon__tput *tp, const mon_params *p);
void mon__tput_free(mon__tput *tp);
void mon__tput_feed(mon_set *set, long step, double tps);
void mon__tput_restart(mon__tput *tp, const mon_params *p, long from_step);

int mon__live_init(mon__live *lv, const mon_params *p);
void mon__live_free(mon__live *lv);
void mon__live_feed(mon_set *set, const mon_sample *s);
void mon__live_check(mon_set *set, double now);
void mon__live_restart(mon__live *lv, long from_step);

void mon__moe_free(mon__moe *m);
/* TEND_ENOMEM when a new layer's state cannot be allocated. */
int mon__moe_feed(mon_set *set, const mon_sample *s);
void mon__moe_restart(mon__moe *m, long from_step);

#endif
