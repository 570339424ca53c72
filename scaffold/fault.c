/*
 * fault.c - parsing and lookup of injected faults (see fault.h).
 */
#include "fault.h"
#include "tend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
	const char *name;
	double def;
	bool from_on; /* applies from its step on, not once */
} kinds[FAULT_NKINDS] = {
	[FAULT_NAN] = {"nan", 0, false},
	[FAULT_SPIKE] = {"spike", 10, false},
	[FAULT_GRADBLOW] = {"gradblow", 1000, false},
	[FAULT_HANG] = {"hang", 0, false},
	[FAULT_SLOW] = {"slow", 4, true},
	[FAULT_CRASH] = {"crash", 11, false},
	[FAULT_OOM] = {"oom", 0, false},
	[FAULT_COLLAPSE] = {"collapse", 0, true},
};

const char *fault_kind_name(fault_kind k)
{
	return k < FAULT_NKINDS ? kinds[k].name : "?";
}

int fault_add(fault_set *s, const char *spec)
{
	char name[32];
	long step;
	double arg;
	int used = 0;
	if (s->n == FAULT_MAX)
		return tend_error_set(TEND_EINVAL, "fault '%s': at most %d faults", spec, FAULT_MAX);
	if (sscanf(spec, "%31[a-z]@%ld%n", name, &step, &used) != 2 || step < 0)
		return tend_error_set(TEND_EINVAL,
			"fault '%s': expected KIND@STEP[:ARG], e.g. spike@200:10", spec);
	int k;
	for (k = 0; k < FAULT_NKINDS && strcmp(kinds[k].name, name) != 0; k++)
		;
	if (k == FAULT_NKINDS)
		return tend_error_set(TEND_EINVAL, "fault '%s': unknown kind '%s' (known: "
			"nan spike gradblow hang slow crash oom collapse)", spec, name);
	arg = kinds[k].def;
	if (spec[used] == ':') {
		char *end;
		arg = strtod(spec + used + 1, &end);
		if (end == spec + used + 1 || *end || !(arg > 0))
			return tend_error_set(TEND_EINVAL, "fault '%s': argument must be a "
					      "positive number", spec);
	} else if (spec[used]) {
		return tend_error_set(TEND_EINVAL, "fault '%s': unexpected '%s'", spec, spec + used);
	}
	/* raise() refuses a number that is no signal, and the trainer cannot
	 * sleep a negative time: both would leave the fault silently undone */
	if (k == FAULT_CRASH && (arg != (double)(int)arg || arg > 64))
		return tend_error_set(TEND_EINVAL, "fault '%s': the signal must be a whole "
				      "number from 1 to 64", spec);
	if (k == FAULT_SLOW && arg < 1)
		return tend_error_set(TEND_EINVAL, "fault '%s': the slowdown must be at least 1",
				      spec);
	s->f[s->n++] = (fault){(fault_kind)k, step, arg};
	return 0;
}

int fault_add_list(fault_set *s, const char *list)
{
	char buf[512];
	if (!list || !*list)
		return 0;
	if (strlen(list) >= sizeof buf)
		return tend_error_set(TEND_EINVAL, "fault list too long");
	strcpy(buf, list);
	for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		int rc = fault_add(s, t);
		if (rc < 0)
			return rc;
	}
	return 0;
}

const fault *fault_at(const fault_set *s, fault_kind kind, long step)
{
	for (int i = 0; i < s->n; i++) {
		const fault *f = &s->f[i];
		if (f->kind != kind)
			continue;
		if (kinds[kind].from_on ? step >= f->step : step == f->step)
			return f;
	}
	return NULL;
}

bool fault_is_data(fault_kind k)
{
	return k == FAULT_NAN || k == FAULT_SPIKE || k == FAULT_GRADBLOW;
}

void fault_spec(const fault *f, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s@%ld:%g", fault_kind_name(f->kind), f->step, f->arg);
}

int fault_drop_fired(fault_set *s, const char *path)
{
	char line[128], spec[128];
	FILE *fp = fopen(path, "r");
	if (!fp)
		return 0;
	while (fgets(line, sizeof line, fp)) {
		line[strcspn(line, "\n")] = '\0';
		for (int i = 0; i < s->n; i++) {
			fault_spec(&s->f[i], spec, sizeof spec);
			if (strcmp(spec, line) == 0) {
				s->f[i--] = s->f[--s->n];
			}
		}
	}
	fclose(fp);
	return 0;
}

int fault_mark_fired(const fault *f, const char *path)
{
	char spec[128];
	FILE *fp = fopen(path, "a");
	if (!fp)
		return tend_error_os("%s", path);
	fault_spec(f, spec, sizeof spec);
	fprintf(fp, "%s\n", spec);
	fflush(fp);
	fsync(fileno(fp));
	fclose(fp);
	return 0;
}
