/*
 * mon.h - tend's detectors over a training run's metric stream, and the
 * classification of a trainer's exit.
 *
 * Pure computation: no I/O, no clock, no store. The supervisor feeds each
 * metrics row in as a mon_sample and receives mon_incidents through a
 * callback; `tend replay` feeds recorded rows through the same code, so a
 * live run and its replay raise the same incidents. Time-based checks
 * (stall, heartbeat) use the monotonic time the caller passes in, so tests
 * drive them with synthetic time.
 *
 * Every rule, parameter and default is documented in docs/monitors.md.
 */
#ifndef MON_H
#define MON_H

#include <stdbool.h>
#include <stddef.h>

/* ---- incidents --------------------------------------------------------- */

typedef enum mon_kind {
	MON_NONFINITE,
	MON_LOSS_SPIKE,
	MON_GRAD_SPIKE,
	MON_DIVERGENCE,
	MON_PLATEAU,
	MON_STALL,
	MON_HEARTBEAT,
	MON_THROUGHPUT,
	MON_MOE_IMBALANCE,
	MON_MOE_DEAD_EXPERT,
	MON_MOE_ENTROPY_COLLAPSE,
	MON_MOE_DROPPED,
	MON_USER,          /* raised by a Lua monitor of the scaffold */
	MON_CRASH_OOM,     /* the crash kinds stay last: >= MON_CRASH_OOM */
	MON_CRASH_CUDA,
	MON_CRASH_NCCL,
	MON_CRASH_PYTHON,
	MON_CRASH_SEGFAULT,
	MON_CRASH_KILLED,
	MON_CRASH_OTHER,
	MON_KIND_COUNT
} mon_kind;

typedef enum mon_severity {
	MON_INFO,
	MON_WARNING,
	MON_CRITICAL
} mon_severity;

/* "nonfinite", "loss_spike", ... "crash_other"; "unknown" out of range. */
const char *mon_kind_name(mon_kind kind);
/* The kind named name, or TEND_ENOTFOUND. */
int mon_kind_from_name(const char *name);
/* "info", "warning", "critical"; "unknown" out of range. */
const char *mon_severity_name(mon_severity sev);

#define MON_SIG_MAX 96
#define MON_SUMMARY_MAX 320
#define MON_EVIDENCE_MAX 64

/* One observation of an anomaly. Fixed size, owns no memory: the emit
 * callback reads it and copies what it keeps. Observations of the same
 * condition carry the same signature so the store folds them into one
 * incident. */
typedef struct mon_incident {
	mon_kind kind;
	mon_severity severity;
	long onset_step;     /* first step of the condition; -1 when unknown */
	long last_step;      /* the step of this observation; -1 when unknown */
	double value;        /* the figure that tripped the rule (NaN if none) */
	double baseline;     /* what it was compared with (NaN if none) */
	double threshold;    /* the bound it crossed, in value's units */
	char signature[MON_SIG_MAX];  /* kind[:part...], e.g. "moe_dead_expert:layer1:expert5" */
	char summary[MON_SUMMARY_MAX]; /* one human line with the figures */
	int n_evidence;      /* entries in ev_step/ev_value, oldest first */
	long ev_step[MON_EVIDENCE_MAX];
	double ev_value[MON_EVIDENCE_MAX];
} mon_incident;

/* Writes the incident's figures as one JSON object into buf:
 * {"value":..,"baseline":..,"threshold":..,"steps":[..],"values":[..]},
 * NaN as null and infinities as the strings "inf"/"-inf". Returns the
 * length, or TEND_EINVAL when cap is too small (buf then holds "{}" if
 * cap >= 3). */
int mon_incident_evidence_json(char *buf, size_t cap, const mon_incident *inc);

/* Receives each incident. Return 0 to go on; a negative code is kept and
 * returned by the mon_feed/mon_tick that emitted (the detectors still
 * finish the sample so their state stays consistent). */
typedef int (*mon_emit_fn)(const mon_incident *inc, void *ud);

/* ---- samples ----------------------------------------------------------- */

typedef enum mon_sample_type {
	MON_SAMPLE_STEP,      /* a training step's metrics row */
	MON_SAMPLE_EVAL,      /* an evaluation result (val_loss) */
	MON_SAMPLE_HEARTBEAT  /* any other sign of life */
} mon_sample_type;

#define MON_MOE_MAX_EXPERTS 64
#define MON_MOE_MAX_LAYERS 256

/* Router statistics of one MoE layer for one step. Absent figures are NaN;
 * load may be NULL. */
typedef struct mon_moe_layer {
	int layer;             /* the model's layer index; used in signatures */
	int n_experts;         /* E, 0..MON_MOE_MAX_EXPERTS */
	const double *load;    /* E values: tokens (or fractions) per expert */
	double max_over_mean;  /* computed from load when NaN */
	double entropy;        /* routing entropy in nats; from load when NaN */
	double dropped;        /* tokens dropped (a fraction if tokens is NaN) */
	double tokens;         /* token assignments routed in the layer */
	int top_k;             /* experts each token goes to; 0 unknown (taken as 1) */
} mon_moe_layer;

/* Bits of mon_sample.present: the trainer reported the field. They only
 * matter for NaN: a NaN field with its bit clear is absent, with its bit
 * set it is a non-finite value. An infinity is never "absent". */
enum {
	MON_F_LOSS = 1u << 0,
	MON_F_GRAD_NORM = 1u << 1,
	MON_F_LR = 1u << 2,
	MON_F_VAL_LOSS = 1u << 3,
};

typedef struct mon_sample {
	mon_sample_type type;
	long step;
	double t;              /* caller's monotonic seconds; NaN skips time checks */
	unsigned present;      /* MON_F_* */
	double loss, grad_norm, lr, tokens_per_s, step_time_s, val_loss;
	int n_moe;             /* entries in moe */
	const mon_moe_layer *moe;
} mon_sample;

/* Fills s with type, step and t, every figure NaN, no MoE layers. */
void mon_sample_init(mon_sample *s, mon_sample_type type, long step, double t);

/* ---- parameters -------------------------------------------------------- */

/* Windows and patience count samples (metric rows), not optimizer steps;
 * a trainer that logs every k steps sees them k times longer. Fields named
 * *_steps count step numbers. */
typedef struct mon_spike_params {
	bool on;
	int window;            /* rolling window for median and MAD */
	int warmup;            /* samples in the window before testing */
	double threshold;      /* robust sigmas above the median */
	int patience;          /* consecutive hits before emitting */
	double min_scale_rel;  /* sigma floor, relative to |median| */
} mon_spike_params;

typedef struct mon_params {
	long reemit_steps;     /* a signature is emitted at most every N steps */
	double reemit_s;       /* the same for the time-based detectors */
	int history;           /* samples kept past each window, for rollbacks */

	bool nonfinite;

	mon_spike_params loss_spike, grad_spike;

	struct {
		bool on;
		int window;        /* rolling median of loss over this many samples */
		double min_rise;   /* relative rise of the median over its minimum */
		int patience;
	} divergence;

	struct {
		bool on;           /* uses divergence.window's rolling median */
		long steps;        /* steps without improvement */
		double min_improvement; /* relative, of the reference median */
	} plateau;

	struct {
		bool on;
		double timeout_s;  /* floor on the no-progress limit */
		double k;          /* limit is k x the slowest recent step gap */
		int recent;        /* step gaps that count as recent */
		double startup_s;  /* limit before the first step */
	} stall;

	struct {
		bool on;
		double timeout_s;  /* no sample of any type for this long */
	} heartbeat;

	struct {
		bool on;
		int window;        /* rolling median of tokens/s */
		int warmup;        /* samples before testing (also after a restart) */
		double drop_ratio; /* hit when tokens/s < drop_ratio x median */
		int patience;
	} throughput;

	struct {
		bool on;
		double max_over_mean;  /* bound is min(this, (1 + E) / 2) */
		double entropy_ratio;  /* collapse below ratio x log(E), or the load's
					* entropy below ln k + ratio x (ln E - ln k) */
		double dead_share;     /* dead below dead_share x fair share 1/E */
		int dead_patience;     /* samples an expert must stay dead */
		double dropped_max;    /* fraction of tokens dropped */
		int patience;          /* for imbalance, entropy, dropped */
	} moe;
} mon_params;

/* The documented defaults (docs/monitors.md says where each comes from). */
void mon_params_default(mon_params *p);

/* ---- the detector set -------------------------------------------------- */

typedef struct mon_set mon_set;

/* A set of every builtin detector configured by p (NULL: defaults).
 * TEND_EINVAL names the first bad parameter; TEND_ENOMEM. Free with
 * mon_set_free. */
int mon_set_new(mon_set **out, const mon_params *p);
void mon_set_free(mon_set *set);

/* Runs every detector over one sample, in order of arrival. A step sample
 * whose step is below the last step seen is read as a restart (as if
 * mon_reset_after_restart(set, step - 1) had been called first).
 * Returns 0, TEND_EINVAL for a malformed sample (nothing is fed), or the
 * first negative value emit returned. emit may be NULL. */
int mon_feed(mon_set *set, const mon_sample *s, mon_emit_fn emit, void *ud);

/* The time-based checks (stall, heartbeat) at monotonic time now, between
 * samples. Returns 0 or the first negative value emit returned. */
int mon_tick(mon_set *set, double now, mon_emit_fn emit, void *ud);

/* The trainer restarted from a checkpoint at from_step: values recorded
 * after from_step belong to an abandoned timeline and leave every window;
 * what was there at from_step comes back (within params.history samples);
 * throughput warms up again; the stall and heartbeat clocks start over at
 * the next sample or tick; re-emission limits are forgotten. */
void mon_reset_after_restart(mon_set *set, long from_step);

/* ---- crashes ----------------------------------------------------------- */

/* Classifies a trainer's exit from its waitpid status and the last lines
 * of its output (log patterns win over the bare status where specific).
 * Returns 1 and fills out (onset/last step -1: the caller knows them) for
 * a crash; 0 for a clean exit (status 0), out untouched; TEND_EINVAL when
 * out is NULL or lines are missing. */
int mon_classify_exit(mon_incident *out, int wait_status,
		      const char *const *log_tail, size_t n_lines);

#endif
