/*
 * lsb.h - sandboxed Lua 5.4 states for model-writable code.
 *
 * A sandbox is one lua_State whose code sees only a whitelisted _ENV (never
 * the real globals), loads text chunks only, allocates through a counting
 * allocator with a cap, and runs under a count hook that enforces an
 * instruction budget and a wall-clock deadline per lsb_call. What is in the
 * whitelist and why is in docs/lua-api.md.
 *
 * Rule for C code that touches the state: any Lua API call that allocates
 * (lua_newtable, lua_pushstring, lua_getfield with a new key...) can raise
 * once the heap is at its cap, and a raise outside lua_pcall would reach the
 * panic handler. So push a function and arguments (pushing a light C
 * function, a number, a boolean or a light userdata never allocates) and go
 * through lsb_call, or put the work in a C function and use lsb_cpcall.
 */
#ifndef LSB_H
#define LSB_H

#include <lua.h>
#include <stddef.h>

typedef struct lsb lsb;

#define LSB_DEFAULT_MEM ((size_t)64 << 20)      /* bytes of Lua heap */
#define LSB_DEFAULT_INSTRUCTIONS 10000000LL     /* VM instructions per call */
#define LSB_DEFAULT_DEADLINE_S 1.0              /* wall-clock s per call */

/* Limits; a zero field takes its default. */
typedef struct lsb_limits {
	size_t mem_bytes;        /* cap on the Lua heap */
	long long instructions;  /* budget per lsb_call (counted per 1000) */
	double deadline_s;       /* wall-clock deadline per lsb_call */
} lsb_limits;

/* Called by the sandbox's print() with one line (tab-joined tostring()s and
 * a '\n'); text is not NUL-terminated and is valid only during the call. */
typedef void (*lsb_print_fn)(const char *text, size_t len, void *ud);

/* Creates a sandbox; lim NULL = all defaults. Returns 0, TEND_ENOMEM (the
 * cap is too small to open the libraries, or malloc failed) or TEND_EINVAL
 * (a negative limit). Free with lsb_free. */
int lsb_new(lsb **out, const lsb_limits *lim);

/* Closes the state and frees everything. Accepts NULL. */
void lsb_free(lsb *sb);

/* The state, for pushing values and reading results (see the rule above). */
lua_State *lsb_state(lsb *sb);

/* Pushes the sandbox's _ENV table (the one chunks see). Never raises. */
void lsb_push_env(lsb *sb);

/* Loads src as a text chunk named chunkname into the sandbox _ENV and runs
 * it with no arguments through lsb_call. A chunkname not starting with '@'
 * or '=' gets an '@' so that messages read "name:LINE: ...". Bytecode is
 * refused. On success returns 0 and leaves all the chunk's results on the
 * stack (lua_gettop grows by their number); on failure returns the code of
 * lsb_call (TEND_EINVAL also for a syntax error) and leaves nothing. */
int lsb_load(lsb *sb, const char *chunkname, const char *src, size_t len);

/* Calls the function below nargs arguments on the stack, as lua_pcall,
 * with a fresh instruction budget and deadline (a nested lsb_call, from a C
 * function that Lua called on the main thread, shares the outer one's; C
 * functions that may run inside a coroutine use lua_call instead, which
 * stays under the outer call's limits). On success returns 0
 * with nresults results (or all, for LUA_MULTRET) on the stack. On failure
 * pops the function and arguments, leaves nothing, sets the message
 * ("<error>\nstack traceback:\n...") and returns TEND_ETIMEOUT (budget or
 * deadline), TEND_ENOMEM (the heap cap was hit in this call and the call
 * failed) or TEND_EINVAL (any other error). */
int lsb_call(lsb *sb, int nargs, int nresults);

/* Runs fn(L) with ud as its only argument (a light userdata) under lsb_call,
 * keeping nresults of its results. Returns as lsb_call. */
int lsb_cpcall(lsb *sb, lua_CFunction fn, void *ud, int nresults);

/* Sends print() output to fn; NULL (the default) keeps it in a buffer of at
 * most 64 KiB (later output is dropped and a note says so). */
void lsb_set_print(lsb *sb, lsb_print_fn fn, void *ud);

/* The buffered print() output, NUL-terminated; len may be NULL. The text
 * belongs to sb and is valid until the next call into sb. */
const char *lsb_output(const lsb *sb, size_t *len);
void lsb_output_clear(lsb *sb);

/* Bytes the Lua heap holds now. */
size_t lsb_mem_used(const lsb *sb);

#endif
