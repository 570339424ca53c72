/*
 * lsb_int.h - what the sandbox's files share with each other; not public.
 */
#ifndef LSB_INT_H
#define LSB_INT_H

#include <lua.h>

/* Adds steps of C work (pattern matching) to the running call's
 * instruction count; raises the budget or deadline error when spent. */
void lsb__charge(lua_State *L, long long steps);

/* Replaces find, match, gmatch and gsub in the string table on top of the
 * stack with the budgeted matcher (lsb_pat.c). */
void lsb__open_patterns(lua_State *L);

#endif
