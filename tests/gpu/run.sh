#!/usr/bin/env bash
# tests/gpu/run.sh - the GPU checks in one go, for a machine with a CUDA
# device: the kernel test, the trainer test, then the throughput benchmark
# (docs/cuda.md). Builds nothing: give it the build directory that holds
# the binaries (default $TEND_BUILD, else build-cuda at the repository
# root). With OUT set, each step's output is also written to
# $OUT/gpu-<step>.log. Benchmark arguments (B T steps) come from
# $TEND_BENCH_ARGS. Exit status: 0 all passed, 77 no device (skip), 1 else.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-${TEND_BUILD:-$root/build-cuda}}
bin=$build/tests/gpu
out=${OUT:-}
[ -n "$out" ] && mkdir -p "$out"

# step NAME SECONDS COMMAND...: runs it under a time limit, logs, returns rc
step() {
	local name=$1 limit=$2
	shift 2
	echo "== $name: $*"
	if [ -n "$out" ]; then
		timeout "$limit" "$@" 2>&1 | tee "$out/gpu-$name.log"
	else
		timeout "$limit" "$@" 2>&1
	fi
}

for b in test_gpu_kernels test_gpu_train bench_gpu_gpt; do
	if [ ! -x "$bin/$b" ]; then
		echo "run.sh: $bin/$b is missing: build with -Dcuda=enabled" >&2
		exit 1
	fi
done
if command -v nvidia-smi >/dev/null 2>&1; then
	step nvidia-smi 30 nvidia-smi || true
fi
step kernels 180 "$bin/test_gpu_kernels"
rc_k=$?
if [ "$rc_k" -eq 77 ]; then
	echo "run.sh: no CUDA device: skip"
	exit 77
fi
step train 300 "$bin/test_gpu_train"
rc_t=$?
# shellcheck disable=SC2086 # TEND_BENCH_ARGS is a word list on purpose
step bench 300 "$bin/bench_gpu_gpt" ${TEND_BENCH_ARGS:-}
rc_b=$?
echo "== result: kernels rc=$rc_k, train rc=$rc_t, bench rc=$rc_b"
[ "$rc_k" -eq 0 ] && [ "$rc_t" -eq 0 ] && [ "$rc_b" -eq 0 ] && exit 0
exit 1
