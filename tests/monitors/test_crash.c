/*
 * test_crash.c - mon_classify_exit, table-driven: wait statuses as the
 * kernel encodes them, log tails as trainers, PyTorch, NCCL, launchers and
 * shells print them.
 */
#include "mon.h"
#include "tend.h"
#include "tt.h"

#include <signal.h>
#include <sys/wait.h>

#define EXITED(code) (((code) & 0xff) << 8)
#define SIGNALED(sig) ((sig) & 0x7f)
#define MAXL 8

typedef struct row {
	int status;
	const char *lines[MAXL];
	mon_kind kind;
	const char *sig;
	const char *summary;   /* a substring of the summary */
} row;

static const row rows[] = {
	{EXITED(1), {"Traceback (most recent call last):", "  File \"train.py\", line 9",
		"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"},
	 MON_CRASH_OOM, "crash_oom",
	 "out of memory (exit 1): torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"},
	{SIGNALED(SIGABRT), {"terminate called after throwing an instance of 'std::bad_alloc'",
		"  what():  std::bad_alloc"},
	 MON_CRASH_OOM, "crash_oom", "out of memory (SIGABRT): "},
	{EXITED(1), {"Traceback (most recent call last):", "MemoryError"},
	 MON_CRASH_OOM, "crash_oom", "(exit 1): MemoryError"},
	{EXITED(1), {"OSError: [Errno 12] cannot allocate memory"},
	 MON_CRASH_OOM, "crash_oom", "Errno 12"},
	{SIGNALED(SIGKILL), {"step 400 loss 3.1", "Killed"},
	 MON_CRASH_OOM, "crash_oom",
	 "killed (SIGKILL) with \"Killed\" in the log: the kernel OOM killer likely"},
	{EXITED(137), {"/bin/sh: line 1: 4242 Killed  python train.py"},
	 MON_CRASH_OOM, "crash_oom", "killed (exit 137 = 128+SIGKILL)"},
	{EXITED(1), {"Traceback (most recent call last):",
		"RuntimeError: CUDA error: an illegal memory access was encountered"},
	 MON_CRASH_CUDA, "crash_cuda",
	 "CUDA error (exit 1): RuntimeError: CUDA error: an illegal memory access was encountered"},
	{SIGNALED(SIGABRT), {"../aten/src/ATen/native/cuda/Indexing.cu:1141: block: [0,0,0] "
		"Assertion `srcIndex < srcSelectDimSize` failed.",
		"RuntimeError: CUDA error: device-side assert triggered"},
	 MON_CRASH_CUDA, "crash_cuda", "device-side assert triggered"},
	{EXITED(1), {"[E ProcessGroupNCCL.cpp:475] [Rank 3] Watchdog caught collective "
		"operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE) ran for 1800812 ms"},
	 MON_CRASH_NCCL, "crash_nccl", "NCCL failure (exit 1): [E ProcessGroupNCCL.cpp:475]"},
	{SIGNALED(SIGABRT), {"node1:42:42 [0] NCCL WARN Net : Connection closed by remote peer"},
	 MON_CRASH_NCCL, "crash_nccl", "NCCL WARN"},
	/* root cause first: an OOM on one rank, timeouts on the others */
	{EXITED(1), {"torch.OutOfMemoryError: CUDA out of memory.",
		"Watchdog caught collective operation timeout"},
	 MON_CRASH_OOM, "crash_oom", "CUDA out of memory."},
	/* NCCL INFO lines are normal chatter, not evidence */
	{EXITED(1), {"node1:42:42 [0] NCCL INFO Bootstrap : Using eth0",
		"Traceback (most recent call last):", "  File \"train.py\", line 3, in <module>",
		"    x = shapes[4]", "ValueError: bad shape (3, 4)", "", "wandb: finished"},
	 MON_CRASH_PYTHON, "crash_python:ValueError",
	 "Python exception (exit 1): ValueError: bad shape (3, 4)"},
	{EXITED(1), {"Traceback (most recent call last):", "KeyError: 'a'",
		"", "During handling of the above exception, another exception occurred:", "",
		"Traceback (most recent call last):", "  File \"x.py\", line 2",
		"torch.distributed.DistBackendError: store closed"},
	 MON_CRASH_PYTHON, "crash_python:torch.distributed.DistBackendError",
	 "(exit 1): torch.distributed.DistBackendError: store closed"},
	{EXITED(1), {"[rank0]: Traceback (most recent call last):",
		"[rank0]:   File \"train.py\", line 7, in <module>",
		"[rank0]: ZeroDivisionError: division by zero"},
	 MON_CRASH_PYTHON, "crash_python:ZeroDivisionError",
	 "Python exception (exit 1): ZeroDivisionError: division by zero"},
	{EXITED(1), {"Traceback (most recent call last):", "  File \"x.py\", line 2"},
	 MON_CRASH_PYTHON, "crash_python:unknown", "(no exception line in the log tail)"},
	{SIGNALED(SIGSEGV), {"Fatal Python error: Segmentation fault",
		"Traceback (most recent call last):", "ValueError: earlier, handled"},
	 MON_CRASH_SEGFAULT, "crash_segfault:SIGSEGV", "memory fault (SIGSEGV)"},
	{EXITED(139), {""}, MON_CRASH_SEGFAULT, "crash_segfault:SIGSEGV",
	 "memory fault (exit 139 = 128+SIGSEGV)"},
	{SIGNALED(SIGBUS), {NULL}, MON_CRASH_SEGFAULT, "crash_segfault:SIGBUS", "(SIGBUS)"},
	{SIGNALED(SIGKILL), {NULL}, MON_CRASH_KILLED, "crash_killed:SIGKILL",
	 "killed (SIGKILL) with no sign of running out of memory in the log"},
	/* a traceback does not explain a process something else killed */
	{SIGNALED(SIGTERM), {"Traceback (most recent call last):", "ValueError: x"},
	 MON_CRASH_KILLED, "crash_killed:SIGTERM", "killed (SIGTERM)"},
	{EXITED(2), {"usage: train.py [-h]"}, MON_CRASH_OTHER, "crash_other:exit2",
	 "exited abnormally (exit 2) with no known pattern in the log"},
	{SIGNALED(SIGABRT), {NULL}, MON_CRASH_OTHER, "crash_other:SIGABRT", "(SIGABRT)"},
	{SIGNALED(SIGUSR1), {NULL}, MON_CRASH_OTHER, "crash_other:signal10", "(signal 10)"},
};

static size_t count_lines(const row *r)
{
	size_t n = 0;
	while (n < MAXL && r->lines[n])
		n++;
	return n;
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const row *r = &rows[i];
		mon_incident inc;
		int rc = mon_classify_exit(&inc, r->status, r->lines, count_lines(r));
		bool ok = rc == 1 && inc.kind == r->kind &&
			  strcmp(inc.signature, r->sig) == 0 &&
			  strstr(inc.summary, r->summary) && inc.severity == MON_CRITICAL &&
			  inc.onset_step == -1;
		if (!ok)
			fprintf(stderr, "row %zu: rc %d %s \"%s\"\n", i, rc,
				rc == 1 ? inc.signature : "-", rc == 1 ? inc.summary : "-");
		TT_CHECK(ok);
	}
}

static void test_clean_exit_is_not_a_crash(void)
{
	const char *lines[] = {"CUDA out of memory (recovered by halving the batch)"};
	mon_incident inc;
	inc.kind = MON_STALL;
	TT_CHECK(mon_classify_exit(&inc, EXITED(0), lines, 1) == 0);
	TT_CHECK(inc.kind == MON_STALL);   /* untouched */
	TT_CHECK(mon_classify_exit(&inc, EXITED(0), NULL, 0) == 0);
}

static void test_bad_arguments(void)
{
	mon_incident inc;
	TT_CHECK_RC(mon_classify_exit(NULL, EXITED(1), NULL, 0), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(),
		     "monitors: classify_exit needs an incident and the log lines it counts");
	TT_CHECK_RC(mon_classify_exit(&inc, EXITED(1), NULL, 3), TEND_EINVAL);
	TT_CHECK(mon_classify_exit(&inc, EXITED(1), NULL, 0) == 1);
	TT_CHECK_STR(inc.signature, "crash_other:exit1");
}

int main(void)
{
	TT_RUN(test_table);
	TT_RUN(test_clean_exit_is_not_a_crash);
	TT_RUN(test_bad_arguments);
	return TT_DONE();
}
