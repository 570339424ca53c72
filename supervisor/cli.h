/*
 * cli.h - the `tend` command line: the command table, exit codes, and the
 * helpers every command shares (workspace lookup, option parsing, --json).
 *
 * Each command lives in its own cmd_<name>.c and returns a CLI_* exit code;
 * main() is the only place that turns it into the process status.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef struct cli_cmd {
	const char *name;
	const char *summary; /* one line for `tend help` */
	const char *help;    /* full text for `tend help NAME` and --help */
	int (*fn)(int argc, char **argv);
} cli_cmd;

/* The table, terminated by NULL (commands.c). */
extern const cli_cmd *const cli_commands[];

const cli_cmd *cli_find(const char *name);

/* The workspace given by --workspace (set by main), else TEND_WORKSPACE,
 * else the nearest directory holding tend.yaml walking up from the current
 * directory. Writes the absolute path into out (size cap). Returns 0, or
 * TEND_ENOTFOUND with a message naming what was tried. */
int cli_workspace(char *out, size_t cap);

/* Set by main from the global --workspace option; NULL when absent. */
extern const char *cli_workspace_opt;

/* Takes the global --workspace option out of argv wherever it appears
 * before "--", setting cli_workspace_opt. 0, or -1 (message printed). */
int cli_take_workspace(int *argc, char **argv);

/* The in-tree trainer is its own executable beside `tend`, so that the
 * supervisor and every other command load no BLAS, OpenMP or CUDA. */
#define CLI_TRAINER "tend-train"

/* Runs argv (argv[0] a path) with stdout and stderr captured into out
 * (cap bytes, NUL-terminated, cut with a note when longer); kills it past
 * timeout_s. *status gets the exit status (128+signal when killed).
 * 0, or TEND_EIO / TEND_ETIMEOUT (run_child.c). */
int cli_run_child(char *const argv[], double timeout_s, char *out, size_t cap, int *status);

/* The path of this executable (/proc/self/exe). */
int cli_self_exe(char *out, size_t cap);

/* The path of the tend-train next to this executable. */
int cli_trainer_exe(char *out, size_t cap);

/* The full help of `tend train` (train_help.c), shared by both binaries. */
extern const char cli_train_help[];

/* Runs the trainer with `tend train`'s options (cmd_train.c; tend-train
 * only). argv[0] is the program, options follow. A CLI_* code. */
int cli_train_run(int argc, char **argv);

/* The default Lua scaffold shipped with tend: TEND_LUA_DIR if set, else
 * the lua/ folder of the source tree tend was built from. */
const char *cli_lua_dir(void);

/* Creates a workspace in dir (see cmd_init.c) with config_text as its
 * tend.yaml (NULL: every default, commented); writes its absolute path
 * into abs_out. 0, TEND_EEXISTS (nothing changed) or another code. */
int cli_init_workspace(const char *dir, const char *config_text, char *abs_out, size_t cap);

/* Prints "tend: <message>" to stderr with tend_error_last(); returns code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when argv holds -h or --help: the command should print its help. */
bool cli_wants_help(int argc, char **argv);

/* Prints the list of commands to f. */
void cli_usage(FILE *f);

/* Prints a command's help to f. */
void cli_print_help(FILE *f, const cli_cmd *cmd);

/* Prints the gate table (baseline, candidate, bound, pass) held in an
 * evaluation's figures JSON; nothing when it has none. */
void cli_print_gate_table(const char *figures_json);

/* Writes s as a JSON string literal (quotes and escapes) to f. */
void cli_json_str(FILE *f, const char *s);

#endif
