/*
 * fault.h - fault injection for tests and demos: the failures tend must
 * detect and handle, produced on purpose by the in-tree trainer.
 *
 * A spec is "KIND@STEP" or "KIND@STEP:ARG":
 *   nan@S          the loss (and so every gradient) is NaN at step S
 *   spike@S:F      the loss at step S is multiplied by F (default 10) before
 *                  backward: a real, clipped, bad update
 *   gradblow@S:F   the gradients at step S are multiplied by F (default
 *                  1000) before clipping: a grad-norm blow-up
 *   hang@S         the training thread stops at step S (heartbeats go on)
 *   slow@S:F       from step S on, each step takes F times as long (default 4)
 *   crash@S:SIG    raise signal SIG (default SIGSEGV = 11) at step S
 *   oom@S          print an out-of-memory error to stderr and exit 1
 *   collapse@S     from step S on, every router sends all tokens to the
 *                  lowest-numbered experts (router weights zeroed)
 * Data faults (nan, spike, gradblow) belong to the batch, as a poisoned
 * batch does: S counts batches of an unskipped run (the data position
 * divided by grad_accum), so a run rolled back and told to skip the window
 * no longer meets them, while one restarted without skipping meets them
 * again. Machine faults (hang, slow, crash, oom, collapse) are transient:
 * the trainer records each one in RUN_DIR/faults_fired before it fires, and
 * a restarted trainer does not fire it again.
 */
#ifndef FAULT_H
#define FAULT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum fault_kind {
	FAULT_NAN, FAULT_SPIKE, FAULT_GRADBLOW, FAULT_HANG, FAULT_SLOW,
	FAULT_CRASH, FAULT_OOM, FAULT_COLLAPSE, FAULT_NKINDS,
} fault_kind;

typedef struct fault {
	fault_kind kind;
	long step;
	double arg;
} fault;

#define FAULT_MAX 16

typedef struct fault_set {
	fault f[FAULT_MAX];
	int n;
} fault_set;

/* Parses one spec and adds it. 0, or TEND_EINVAL naming the spec and what
 * was expected. */
int fault_add(fault_set *s, const char *spec);

/* Parses a comma-separated list of specs. */
int fault_add_list(fault_set *s, const char *list);

/* The fault of this kind that applies at step (exact step for one-shot
 * kinds, step >= S for slow and collapse); NULL when none. Pass the data
 * step for data faults. */
const fault *fault_at(const fault_set *s, fault_kind kind, long step);

/* True for nan, spike and gradblow. */
bool fault_is_data(fault_kind k);

/* Writes the canonical spec ("crash@400:11") into buf. */
void fault_spec(const fault *f, char *buf, size_t cap);

/* Removes the faults whose canonical spec is a line of the file at path
 * (missing file: nothing removed). */
int fault_drop_fired(fault_set *s, const char *path);

/* Appends f's spec to the file at path, flushed to disk before return. */
int fault_mark_fired(const fault *f, const char *path);

const char *fault_kind_name(fault_kind k);

#endif
