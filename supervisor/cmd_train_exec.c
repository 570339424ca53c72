/*
 * cmd_train_exec.c - `tend train` in the tend binary: replaces this process
 * with tend-train, which alone links the model, BLAS, OpenMP and CUDA.
 * Every other command then starts without loading them (the supervisor's
 * start-up was mostly the dynamic loader mapping those libraries).
 */
#include "cli.h"
#include "tend.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static int cmd_train(int argc, char **argv)
{
	char exe[PATH_MAX];
	if (cli_trainer_exe(exe, sizeof exe) < 0)
		return cli_fail(CLI_FAIL, "train");
	char **v = calloc((size_t)argc + 3, sizeof *v);
	if (!v) {
		fputs("tend: train: out of memory\n", stderr);
		return CLI_FAIL;
	}
	int n = 0;
	v[n++] = exe;
	if (cli_workspace_opt) {
		v[n++] = "--workspace";
		v[n++] = (char *)cli_workspace_opt;
	}
	for (int i = 1; i < argc; i++)
		v[n++] = argv[i];
	v[n] = NULL;
	/* Set here so that tend-train need not re-execute itself to set them
	 * (train_main.c says why they matter); a user's choice stands. */
	setenv("OPENBLAS_NUM_THREADS", "1", 0);
	setenv("OMP_WAIT_POLICY", "passive", 0);
	execv(exe, v);
	tend_error_os("%s", exe);
	free(v);
	return cli_fail(CLI_FAIL, "train: cannot run the trainer (is %s installed beside tend?)",
			CLI_TRAINER);
}

const cli_cmd cli_train_cmd = {
	"train", "run the in-tree GPT+MoE trainer (what `tend run` supervises)",
	cli_train_help, cmd_train,
};
