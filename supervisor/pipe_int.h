/*
 * pipe_int.h - what pipeline.c and pipe_eval.c share: the opened
 * workspace (config, store, scaffold repository) and small helpers.
 */
#ifndef PIPE_INT_H
#define PIPE_INT_H

#include "config.h"
#include "patch.h"
#include "pipeline.h"
#include "store.h"

#include <limits.h>

typedef struct pipe_ws {
	const pipe_opts *o;
	char ws[PATH_MAX];
	cfg *cfg;
	store *st;
	patch_repo *repo;
} pipe_ws;

int pipe__open(pipe_ws *w, const pipe_opts *o);
void pipe__close(pipe_ws *w);
void pipe__say(const pipe_ws *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Rejects proposal id with reason: state, store, audit, log line. */
int pipe__reject(pipe_ws *w, int64_t id, const char *state, const char *reason);
/* Tells the workspace's supervisor (if any) that main changed. */
void pipe__notify(const pipe_ws *w);
/* The checks every candidate scaffold must pass before it runs anywhere:
 * scaffold.lua loads and self-tests, the other Lua files load in the
 * sandbox and pass their selftest() if they have one. */
int pipe__static_check(const char *dir);

#endif
