/*
 * train_main.c - the tend-train entry point: the in-tree trainer as its own
 * executable. `tend train` and the supervisor run it; it takes the same
 * --workspace option and `tend train`'s options, and prints the versions of
 * the libraries only it links for `tend version`.
 */
#include "cli.h"
#include "tend.h"
#include "tend_build.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if TEND_HAVE_BLAS
#include <cblas.h>
#endif
#if TEND_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

/* Thread settings are read once, as the libraries load, so they are set by
 * re-executing when whoever started us did not set them (`tend train` and
 * the supervisor do). OpenBLAS starts a pool of threads at load with the
 * default signal mask; the trainer splits matmuls over its own OpenMP
 * threads anyway, so the pool has one thread. libgomp's default lets idle
 * threads spin at barriers and take the core their partner needs (the CPU
 * trainer ran at 37% of peak instead of 59% on two cores), so the trainer
 * waits passively, unless the user chose. */
static void tune_threads(char **argv)
{
	bool changed = false;
	if (!getenv("OPENBLAS_NUM_THREADS")) {
		setenv("OPENBLAS_NUM_THREADS", "1", 1);
		changed = true;
	}
	if (!getenv("OMP_WAIT_POLICY")) {
		setenv("OMP_WAIT_POLICY", "passive", 1);
		changed = true;
	}
	if (changed)
		execv("/proc/self/exe", argv); /* on failure: go on as we are */
}

/* "name<TAB>version" lines, read by `tend version`. */
static int versions(void)
{
#if TEND_HAVE_BLAS
	printf("blas\t%s\n", openblas_get_config());
#else
	printf("blas\tnot built\n");
#endif
#if TEND_HAVE_CUDA
	int rt = 0, drv = 0;
	cudaRuntimeGetVersion(&rt);
	if (cudaDriverGetVersion(&drv) != cudaSuccess || drv == 0)
		printf("cuda\truntime %d.%d (no driver)\n", rt / 1000, rt % 1000 / 10);
	else
		printf("cuda\truntime %d.%d, driver %d.%d\n", rt / 1000, rt % 1000 / 10,
		       drv / 1000, drv % 1000 / 10);
#else
	printf("cuda\tnot built\n");
#endif
	return CLI_OK;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--versions") == 0)
		return versions();
	tune_threads(argv);
	if (cli_take_workspace(&argc, argv) < 0)
		return CLI_USAGE;
	if (cli_wants_help(argc, argv)) {
		fputs(cli_train_help, stdout);
		return CLI_OK;
	}
	return cli_train_run(argc, argv);
}
