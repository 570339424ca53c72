/*
 * sup_umon.c - the supervisor's use of the scaffold's Lua monitors: loaded
 * at start and again when the scaffold changes (SIGHUP after a promotion;
 * a broken new file keeps the old monitors), run once per ingest batch.
 */
#include "sup_int.h"
#include "tend.h"

#include <stdio.h>

int sup__user_monitors_open(sup *s)
{
	char dir[PATH_MAX + 16];
	umon *u = NULL;
	if (!s->cfg->monitors.lua.enabled)
		return 0;
	snprintf(dir, sizeof dir, "%s/scaffold", s->ws);
	if (umon_open(&u, dir) < 0) {
		if (!s->umon)
			return TEND_EINVAL; /* at start: a broken file is a config error */
		if (s->st)
			sup__event(s, s->last_step, "user_monitor_error", tend_error_last());
		return 0; /* on reload: keep the monitors that worked */
	}
	umon_free(s->umon);
	s->umon = u;
	return 0;
}

void sup__user_monitors(sup *s)
{
	if (s->umon && umon_flush(s->umon, sup__incident_emit, s) < 0)
		sup__event(s, s->last_step, "user_monitor_error", tend_error_last());
}
