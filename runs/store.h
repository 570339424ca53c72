/*
 * store.h - tend's SQLite store: one database per workspace (WS/tend.db)
 * holding runs and their attempts, metrics, logs, events, ingest offsets,
 * checkpoints, incidents, proposals, evaluations, promotions and the
 * hash-chained audit log. docs/store.md describes the tables.
 *
 * One store is one SQLite connection: use it from one thread at a time.
 * Other processes may open the same file; SQLite's WAL lets readers run
 * beside one writer, and a writer waits up to the busy timeout.
 *
 * Every function returns 0 or a negative TEND_E* code and leaves a message
 * naming the database file in tend_error_last(): TEND_EBUSY when another
 * process holds the lock, TEND_EIO when the disk fails or fills,
 * TEND_ENOMEM, TEND_ENOTFOUND for a missing row, TEND_EEXISTS for a
 * duplicate, TEND_EINVAL for a value the schema refuses, TEND_EVERSION for
 * a database from a newer tend.
 *
 * Transactions: a write outside a batch commits on its own. Between
 * store_batch_begin() and store_batch_commit() every write (of any kind)
 * joins one transaction, so rows and the ingest offset that covers them
 * land together or not at all.
 *
 * Values that are not set: ids 0, times 0, other integers -1 (STORE_NONE),
 * text NULL. Times are seconds since the Unix epoch.
 *
 * Structs returned through `**out` are owned by the caller and freed with
 * the matching _free function; structs passed to callbacks are valid only
 * during the call. A callback returning nonzero stops the listing and the
 * listing returns that value. A callback may use the store, but not the
 * listing function that is calling it.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct store store;

enum {
	STORE_CREATE = 1 << 0,   /* create the file if it does not exist */
	STORE_READONLY = 1 << 1, /* never write; refuses an unmigrated file */
};

#define STORE_NONE (-1)
#define STORE_BUSY_TIMEOUT_MS 5000

/* ---- opening ---------------------------------------------------------- */

/* Opens (with STORE_CREATE: creates) the database at path and brings its
 * schema up to date, each migration step in its own transaction. Refuses
 * with TEND_EVERSION, without writing, a database whose schema is newer
 * than this tend knows. path may be ":memory:". Free with store_close. */
int store_open(store **out, const char *path, int flags);

/* store_open with a busy timeout other than STORE_BUSY_TIMEOUT_MS, which
 * already applies while opening and migrating. */
int store_open_ex(store **out, const char *path, int flags, int busy_ms);

/* Closes the connection; accepts NULL. An open batch is rolled back. */
void store_close(store *s);

/* How long a statement waits for another process's lock before failing
 * with TEND_EBUSY. */
void store_set_busy_timeout(store *s, int ms);

/* The path the store was opened with. */
const char *store_path(const store *s);

/* The schema version this tend writes and understands. */
int store_schema_version(void);

/* 0 when PRAGMA integrity_check says ok; TEND_EINVAL with its first
 * complaint otherwise. */
int store_integrity_check(store *s);

/* ---- runs and attempts ------------------------------------------------ */

typedef struct store_run {
	int64_t id;
	const char *name;
	const char *state;           /* the supervisor's lifecycle state */
	double created_t, started_t, ended_t;
	const char *config;          /* the config snapshot the run started with */
	const char *scaffold_commit; /* the scaffold commit it runs, or NULL */
	const char *workdir;
	int64_t pid;                 /* STORE_NONE when not running */
	int exit_status;             /* STORE_NONE until it ended */
	const char *notes;
} store_run;

/* Creates a run in state "created". TEND_EEXISTS when the name is taken. */
int store_run_create(store *s, int64_t *out_id, const char *name,
		     const char *config_text, const char *workdir);
int store_run_get(store *s, store_run **out, int64_t id);
int store_run_get_by_name(store *s, store_run **out, const char *name);
void store_run_free(store_run *r);

/* All runs, oldest first, as one array of n; free with store_run_list_free. */
int store_run_list(store *s, store_run **out, size_t *n);
void store_run_list_free(store_run *runs, size_t n);

/* Setters: TEND_ENOTFOUND when the run does not exist. */
int store_run_set_state(store *s, int64_t run, const char *state);
int store_run_set_started(store *s, int64_t run, int64_t pid, double t);
int store_run_set_ended(store *s, int64_t run, int exit_status, double t);
int store_run_set_commit(store *s, int64_t run, const char *commit);
int store_run_set_notes(store *s, int64_t run, const char *notes);

/* One start of a run's trainer process; a restart is a new attempt. */
typedef struct store_attempt {
	int64_t run_id;
	int n;                       /* 1, 2, ... within the run */
	double started_t, ended_t;
	int exit_status;             /* STORE_NONE: running or killed */
	int signal;                  /* STORE_NONE: not killed by a signal */
	const char *reason;          /* why it started: "start", "crash", ... */
	const char *from_checkpoint; /* resumed from this file, or NULL */
	int64_t from_step;           /* STORE_NONE when started fresh */
	int64_t pid;
} store_attempt;

/* Records the next attempt of run and returns its number in *out_n. */
int store_attempt_begin(store *s, int *out_n, int64_t run, const char *reason,
			const char *from_checkpoint, int64_t from_step,
			int64_t pid, double t);
int store_attempt_end(store *s, int64_t run, int n, int exit_status,
		      int signal, double t);
typedef int (*store_attempt_cb)(const store_attempt *a, void *ud);
int store_attempt_list(store *s, int64_t run, store_attempt_cb cb, void *ud);

/* ---- ingest ----------------------------------------------------------- */

/* One write transaction (BEGIN IMMEDIATE); TEND_EINVAL if one is open. */
int store_batch_begin(store *s);
int store_batch_commit(store *s);
/* Undoes everything since store_batch_begin; harmless without a batch. */
int store_batch_rollback(store *s);

/* A metric value; NaN and infinities round-trip (NaN comes back as the
 * quiet NaN). Writing the same (run, attempt, step, name) again replaces
 * the value. step is 0..2^31-1 and attempt 0..1023 (TEND_EINVAL beyond).
 * (run, name) is looked up once per store, not per value; inside a batch
 * values are written many at a time, so an error may surface at a later
 * put or at the commit, and fails the batch either way. */
int store_metric_put(store *s, int64_t run, int attempt, int64_t step,
		     const char *name, double value, double t);

typedef enum store_stream {
	STORE_STDOUT,
	STORE_STDERR,
	STORE_EVENT,     /* a line tend wrote itself */
	STORE_MALFORMED, /* a metrics line that did not parse */
} store_stream;

/* A log line of len bytes (not necessarily NUL-terminated, any bytes). */
int store_log_put(store *s, int64_t run, int attempt, double t,
		  store_stream stream, const char *line, size_t len);

/* An event of the run's life: kind ("restart", "reload", ...), a short
 * reason, detail as JSON text or NULL. step STORE_NONE when not known. */
int store_event_put(store *s, int64_t run, int attempt, double t,
		    int64_t step, const char *kind, const char *reason,
		    const char *detail_json);

/* How far a source file (e.g. runs/NAME/metrics.jsonl) has been ingested;
 * set it in the same batch as the rows read up to it. An unknown source is
 * at offset 0. */
int store_offset_set(store *s, int64_t run, const char *source,
		     int64_t offset);
int store_offset_get(store *s, int64_t *out, int64_t run, const char *source);

/* ---- reading ---------------------------------------------------------- */

/* The values of one metric of one run with step >= since_step, by step and
 * then attempt (a step that a restart repeated comes once per attempt).
 * TEND_ENOTFOUND when the run has no metric of that name. */
typedef int (*store_metric_cb)(int64_t step, int attempt, double value,
			       double t, void *ud);
int store_metrics_read(store *s, int64_t run, const char *name,
		       int64_t since_step, store_metric_cb cb, void *ud);

/* The names of the metrics a run recorded, in byte order. */
typedef int (*store_name_cb)(const char *name, void *ud);
int store_metric_names(store *s, int64_t run, store_name_cb cb, void *ud);

typedef struct store_log {
	int64_t id; /* increasing; pass the last one seen as since_id */
	int attempt;
	double t;
	store_stream stream;
	const char *line;
	size_t len;
} store_log;

/* A run's log lines with id > since_id, oldest first. */
typedef int (*store_log_cb)(const store_log *l, void *ud);
int store_logs_read(store *s, int64_t run, int64_t since_id, store_log_cb cb,
		    void *ud);

typedef struct store_event {
	int64_t id, run_id;
	int attempt;
	double t;
	int64_t step;
	const char *kind, *reason, *detail;
} store_event;

/* A run's events with id > since_id, oldest first. */
typedef int (*store_event_cb)(const store_event *e, void *ud);
int store_events_read(store *s, int64_t run, int64_t since_id,
		      store_event_cb cb, void *ud);

/* ---- checkpoints ------------------------------------------------------ */

typedef struct store_checkpoint {
	int64_t id, run_id;
	int attempt;
	int64_t step;
	const char *path, *sha256;
	int64_t bytes;
	double t;
	int good; /* 1 verified good, 0 bad, STORE_NONE not yet checked */
} store_checkpoint;

/* Records c (its id is ignored). TEND_EEXISTS when the run already has a
 * checkpoint at that path. */
int store_checkpoint_add(store *s, int64_t *out_id, const store_checkpoint *c);
int store_checkpoint_set_good(store *s, int64_t id, int good);
/* The newest (highest step) checkpoint of run marked good. */
int store_checkpoint_latest_good(store *s, store_checkpoint **out,
				 int64_t run);
void store_checkpoint_free(store_checkpoint *c);
typedef int (*store_checkpoint_cb)(const store_checkpoint *c, void *ud);
int store_checkpoint_list(store *s, int64_t run, store_checkpoint_cb cb,
			  void *ud);

/* ---- incidents -------------------------------------------------------- */

typedef struct store_incident {
	int64_t id, run_id;
	const char *kind;      /* the detector: "nonfinite", "spike", ... */
	const char *severity;  /* "info", "warning" or "critical" */
	const char *signature; /* what makes two observations the same incident */
	int64_t onset_step, last_step;
	double first_t, last_t;
	int64_t count;         /* observations folded into it */
	const char *state;     /* "open" or "resolved" */
	const char *summary;   /* one line, from the first observation */
	const char *evidence;  /* JSON, from the first observation */
	double resolved_t;
	const char *resolution;
	const char *label;     /* "real", "false", or NULL: not judged yet */
	const char *label_by;  /* who judged it: a person, or "evaluation" */
} store_incident;

/* Opens an incident, or folds the observation into the run's open incident
 * with the same signature: count + 1, last_step and last_t move, severity
 * rises to the higher of the two. Reads run_id, kind, severity, signature,
 * summary, evidence (JSON, checked), and onset_step / first_t as the
 * observation's step (STORE_NONE if none) and time (0: now). *out_new is 1
 * when it opened a new incident; either out pointer may be NULL. */
int store_incident_upsert(store *s, int64_t *out_id, int *out_new,
			  const store_incident *in);
/* TEND_ENOTFOUND unless id is an open incident. */
int store_incident_resolve(store *s, int64_t id, double t,
			   const char *resolution);
int store_incident_get(store *s, store_incident **out, int64_t id);
/* Records a verdict on incident id: label "real" or "false", by whom.
 * TEND_ENOTFOUND for no such incident, TEND_EINVAL for another label. */
int store_incident_label(store *s, int64_t id, const char *label, const char *by);
void store_incident_free(store_incident *i);
/* Incidents of run (0: all runs) in state (NULL: any), oldest first. */
typedef int (*store_incident_cb)(const store_incident *i, void *ud);
int store_incident_list(store *s, int64_t run, const char *state,
			store_incident_cb cb, void *ud);

/* ---- proposals, evaluations, promotions ------------------------------- */

typedef struct store_proposal {
	int64_t id;
	int64_t incident_id;  /* 0 for a proposal no incident prompted */
	int n;                /* 1, 2, ... per incident (per NULL incident) */
	const char *proposer; /* "model", "human", "rule" */
	const char *model;    /* the model that wrote it, or NULL */
	const char *state;    /* the patcher's lifecycle state */
	const char *diagnosis;
	double confidence;    /* 0..1, or STORE_NONE */
	const char *diff;     /* the patch, unified diff text */
	const char *rationale, *expected_effect;
	const char *prompt_sha256, *response_sha256;
	const char *branch, *commit; /* where the patch was committed */
	const char *reject_reason;
	double created_t, updated_t;
} store_proposal;

/* Records p; id, n, created_t and updated_t are assigned. */
int store_proposal_insert(store *s, int64_t *out_id, const store_proposal *p);
int store_proposal_get(store *s, store_proposal **out, int64_t id);
void store_proposal_free(store_proposal *p);
/* reject_reason NULL leaves the recorded one. */
int store_proposal_set_state(store *s, int64_t id, const char *state,
			     const char *reject_reason);
int store_proposal_set_branch(store *s, int64_t id, const char *branch,
			      const char *commit);
/* Proposals for incident (0: all), oldest first. */
typedef int (*store_proposal_cb)(const store_proposal *p, void *ud);
int store_proposal_list(store *s, int64_t incident, store_proposal_cb cb,
			void *ud);

typedef struct store_evaluation {
	int64_t id, proposal_id;
	const char *stage;  /* "smoke", "short", "full", ... */
	const char *state;  /* "pending", "running", "done", "error" */
	int64_t baseline_run_id, candidate_run_id; /* 0 until created */
	const char *figures;      /* JSON: what the gates measured */
	const char *gates_sha256; /* the gate config the verdict used */
	const char *verdict;      /* "pass", "fail", or NULL before the end */
	const char *reason;
	double started_t, ended_t;
} store_evaluation;

/* Records e; id is assigned; started_t 0 means now. */
int store_evaluation_insert(store *s, int64_t *out_id,
			    const store_evaluation *e);
int store_evaluation_get(store *s, store_evaluation **out, int64_t id);
void store_evaluation_free(store_evaluation *e);
int store_evaluation_set_runs(store *s, int64_t id, int64_t baseline_run,
			      int64_t candidate_run);
/* Records the outcome: state, verdict, reason, figures, gates hash, end. */
int store_evaluation_finish(store *s, int64_t id, const char *state,
			    const char *verdict, const char *reason,
			    const char *figures_json, const char *gates_sha256,
			    double t);
typedef int (*store_evaluation_cb)(const store_evaluation *e, void *ud);
int store_evaluation_list(store *s, int64_t proposal, store_evaluation_cb cb,
			  void *ud);

typedef struct store_promotion {
	int64_t id, proposal_id, evaluation_id;
	const char *commit;        /* the proposal's commit */
	const char *merged_commit; /* the commit on main that took it */
	const char *approved_by;   /* "gates" or the human who approved */
	double t;
} store_promotion;

/* Records p; id is assigned; t 0 means now. */
int store_promotion_insert(store *s, int64_t *out_id, const store_promotion *p);
int store_promotion_get(store *s, store_promotion **out, int64_t id);
void store_promotion_free(store_promotion *p);
typedef int (*store_promotion_cb)(const store_promotion *p, void *ud);
int store_promotion_list(store *s, int64_t proposal, store_promotion_cb cb,
			 void *ud);

/* ---- audit ------------------------------------------------------------ */

typedef struct store_audit_row {
	int64_t seq;
	double t;
	const char *actor, *action, *subject, *detail;
	const char *prev_hash, *hash; /* 64 hex digits each */
} store_audit_row;

/* Appends a row to the hash chain: hash = SHA-256(prev_hash || canonical
 * text of the row), see docs/store.md. actor and action are required;
 * subject and detail_json may be NULL. */
int store_audit_append(store *s, const char *actor, const char *action,
		       const char *subject, const char *detail_json,
		       int64_t *out_seq);

/* Recomputes the chain. 0 when intact; TEND_EINVAL with a message naming
 * the first bad row (also in *bad_seq, which is 0 when intact) when a row
 * was altered, deleted, inserted or reordered. bad_seq may be NULL. */
int store_audit_verify(store *s, int64_t *bad_seq);

/* Rows with seq > since_seq, in order. */
typedef int (*store_audit_cb)(const store_audit_row *r, void *ud);
int store_audit_list(store *s, int64_t since_seq, store_audit_cb cb, void *ud);

#endif
