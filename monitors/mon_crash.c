/*
 * mon_crash.c - classifies why a trainer exited, from its wait status and
 * the last lines of its output.
 *
 * Specific log evidence wins over the bare status, in the order of root
 * causes: an OOM often shows up as a CUDA or NCCL failure on other ranks,
 * and a CUDA fault as an NCCL failure, so OOM > CUDA > NCCL. Then the
 * signal: SIGSEGV/SIGBUS > a Python traceback (only when the process exited
 * or aborted by itself: a traceback in a process that was SIGKILLed did not
 * kill it) > SIGKILL/SIGTERM/SIGINT/SIGHUP > anything else. An exit code of
 * 128+N from a shell wrapper counts as signal N. Plain "NCCL INFO" lines
 * are not evidence: NCCL_DEBUG=INFO prints them in healthy runs.
 */
#include "mon_int.h"
#include "tend.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

static const char *const oom_pats[] = {
	"CUDA out of memory", "OutOfMemoryError", "out of memory",
	"std::bad_alloc", "MemoryError", "Cannot allocate memory", NULL,
};
static const char *const cuda_pats[] = {
	"CUDA error", "cudaError", "illegal memory access", "device-side assert",
	"CUBLAS_STATUS_", "CUDNN_STATUS_", "unspecified launch failure", NULL,
};
static const char *const nccl_pats[] = {
	"Watchdog caught collective operation timeout", "NCCL error", "NCCL WARN",
	"ncclSystemError", "ncclInternalError", "ncclRemoteError",
	"ncclInvalidUsage", "NCCL timeout", "NCCL communicator", NULL,
};

typedef struct exit_info {
	int sig;          /* terminating signal (or 128+N exit), 0 if none */
	int code;         /* exit code when it exited */
	char status[64];  /* "exit 1", "SIGKILL", "exit 137 = 128+SIGKILL" */
} exit_info;

static const char *signame(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGKILL: return "SIGKILL";
	case SIGTERM: return "SIGTERM";
	case SIGINT: return "SIGINT";
	case SIGHUP: return "SIGHUP";
	case SIGABRT: return "SIGABRT";
	case SIGFPE: return "SIGFPE";
	case SIGILL: return "SIGILL";
	case SIGPIPE: return "SIGPIPE";
	default: return NULL;
	}
}

static void exit_decode(exit_info *x, int st)
{
	memset(x, 0, sizeof *x);
	if (WIFSIGNALED(st)) {
		x->sig = WTERMSIG(st);
		const char *n = signame(x->sig);
		if (n)
			snprintf(x->status, sizeof x->status, "%s", n);
		else
			snprintf(x->status, sizeof x->status, "signal %d", x->sig);
		return;
	}
	x->code = WIFEXITED(st) ? WEXITSTATUS(st) : st;
	snprintf(x->status, sizeof x->status, "exit %d", x->code);
	if (x->code > 128 && signame(x->code - 128)) {
		x->sig = x->code - 128;
		snprintf(x->status, sizeof x->status, "exit %d = 128+%s", x->code,
			 signame(x->sig));
	}
}

/* Index of the newest line containing any of pats, or -1. */
static long find_any(const char *const *lines, size_t n, const char *const *pats)
{
	for (size_t i = n; i-- > 0;) {
		if (!lines[i])
			continue;
		for (const char *const *p = pats; *p; p++)
			if (strcasestr(lines[i], *p))
				return (long)i;
	}
	return -1;
}

static long find_exact(const char *const *lines, size_t n, const char *needle)
{
	for (size_t i = n; i-- > 0;)
		if (lines[i] && strstr(lines[i], needle))
			return (long)i;
	return -1;
}

/* Skips a launcher's "[rank0]: " prefix so indentation can be read. */
static const char *unprefix(const char *s)
{
	if (s[0] != '[')
		return s;
	const char *e = strstr(s, "]: ");
	return e && e - s < 32 ? e + 3 : s;
}

/* The exception line of the newest traceback ("ValueError: bad"), or NULL. */
static const char *exception_line(const char *const *lines, size_t n)
{
	long tb = find_exact(lines, n, "Traceback (most recent call last):");
	if (tb < 0)
		return NULL;
	for (size_t i = (size_t)tb + 1; i < n; i++) {
		if (!lines[i])
			continue;
		const char *s = unprefix(lines[i]);
		if (*s && !isspace((unsigned char)*s))
			return s;
	}
	return "";
}

/* Copies the exception's type name ("torch.OutOfMemoryError") into out. */
static void exception_type(char *out, size_t cap, const char *line)
{
	size_t k = 0;
	for (; *line && k + 1 < cap; line++) {
		unsigned char c = (unsigned char)*line;
		if (!(isalnum(c) || c == '_' || c == '.'))
			break;
		out[k++] = (char)c;
	}
	out[k] = '\0';
	if (k == 0)
		snprintf(out, cap, "unknown");
}

/* "text" without its trailing newline, bounded, for a summary. */
static void clean_line(char *out, size_t cap, const char *s)
{
	snprintf(out, cap, "%s", s ? s : "");
	size_t k = strlen(out);
	while (k > 0 && (out[k - 1] == '\n' || out[k - 1] == '\r' || out[k - 1] == ' '))
		out[--k] = '\0';
}

static void crash_set(mon_incident *out, mon_kind kind, const exit_info *x)
{
	mon__incident_init(out, kind, MON_CRITICAL, -1, -1);
	out->value = x->sig ? x->sig : x->code;
}

/* Log patterns first; returns 1 when one decided. */
static int by_log(mon_incident *out, const exit_info *x,
		  const char *const *lines, size_t n)
{
	static const struct {
		const char *const *pats;
		mon_kind kind;
		const char *what;
	} groups[] = {
		{oom_pats, MON_CRASH_OOM, "out of memory"},
		{cuda_pats, MON_CRASH_CUDA, "CUDA error"},
		{nccl_pats, MON_CRASH_NCCL, "NCCL failure"},
	};
	char line[200];
	/* the shell's "Killed" next to a SIGKILL: what the OOM killer leaves */
	if (x->sig == SIGKILL && find_any(lines, n, oom_pats) < 0 &&
	    find_exact(lines, n, "Killed") >= 0) {
		crash_set(out, MON_CRASH_OOM, x);
		mon__summary(out, "killed (%s) with \"Killed\" in the log: the kernel "
			     "OOM killer likely", x->status);
		return 1;
	}
	for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
		long i = find_any(lines, n, groups[g].pats);
		if (i < 0)
			continue;
		crash_set(out, groups[g].kind, x);
		clean_line(line, sizeof line, unprefix(lines[i]));
		mon__summary(out, "%s (%s): %s", groups[g].what, x->status, line);
		return 1;
	}
	return 0;
}

static void by_status(mon_incident *out, const exit_info *x,
		      const char *const *lines, size_t n)
{
	const char *exc = exception_line(lines, n);
	char line[200], type[48];
	if (x->sig == SIGSEGV || x->sig == SIGBUS) {
		crash_set(out, MON_CRASH_SEGFAULT, x);
		mon__sig(out, "crash_segfault:%s", signame(x->sig));
		mon__summary(out, "memory fault (%s): a native extension or kernel crashed",
			     x->status);
	} else if (exc && (x->sig == 0 || x->sig == SIGABRT)) {
		crash_set(out, MON_CRASH_PYTHON, x);
		exception_type(type, sizeof type, exc);
		clean_line(line, sizeof line, exc);
		mon__sig(out, "crash_python:%s", type);
		mon__summary(out, "Python exception (%s): %s", x->status,
			     *line ? line : "(no exception line in the log tail)");
	} else if (x->sig == SIGKILL || x->sig == SIGTERM || x->sig == SIGINT ||
		   x->sig == SIGHUP) {
		crash_set(out, MON_CRASH_KILLED, x);
		mon__sig(out, "crash_killed:%s", signame(x->sig));
		mon__summary(out, "killed (%s) with no sign of running out of memory in "
			     "the log", x->status);
	} else {
		crash_set(out, MON_CRASH_OTHER, x);
		if (x->sig && signame(x->sig))
			mon__sig(out, "crash_other:%s", signame(x->sig));
		else if (x->sig)
			mon__sig(out, "crash_other:signal%d", x->sig);
		else
			mon__sig(out, "crash_other:exit%d", x->code);
		mon__summary(out, "exited abnormally (%s) with no known pattern in the log",
			     x->status);
	}
}

int mon_classify_exit(mon_incident *out, int wait_status,
		      const char *const *log_tail, size_t n_lines)
{
	if (!out || (n_lines > 0 && !log_tail))
		return tend_error_set(TEND_EINVAL, "monitors: classify_exit needs an "
				      "incident and the log lines it counts");
	if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
		return 0;
	exit_info x;
	exit_decode(&x, wait_status);
	if (!by_log(out, &x, log_tail, n_lines))
		by_status(out, &x, log_tail, n_lines);
	return 1;
}
