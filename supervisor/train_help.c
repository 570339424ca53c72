/*
 * train_help.c - the help of `tend train`, in one place for the two
 * binaries that print it: tend (`tend help train`) and tend-train.
 */
#include "cli.h"

const char cli_train_help[] =
	"usage: tend train [options]\n\n"
	"Trains the in-tree model, steered by the Lua scaffold, writing one JSON\n"
	"metrics line per step (docs/metrics.md) and checkpoints. Inside a\n"
	"workspace the trainer and run sections of tend.yaml give the defaults.\n\n"
	"  --run-dir DIR          metrics.jsonl, checkpoints/ (default runs/train)\n"
	"  --scaffold DIR         the Lua scaffold (default the workspace's)\n"
	"  --steps N              total optimizer steps\n"
	"  --resume CKPT|latest   continue from a checkpoint\n"
	"  --skip-batches N       skip N batches after start/resume\n"
	"  --lr-scale F           multiply the scaffold's learning rate\n"
	"  --inject SPEC[,SPEC]   fault injection (docs/trainer.md), e.g. nan@300, spike@200:10,\n"
	"                         gradblow@150, hang@400, slow@100:4, crash@250:11,\n"
	"                         oom@300, collapse@200\n"
	"  --seed N  --data DIR|synthetic  --batch N  --context N  --layers N\n"
	"  --d-model N  --heads N  --experts N  --top-k N  --moe-every N\n"
	"  --grad-accum N  --eval-every N  --checkpoint-every N  --threads N\n"
	"  --heartbeat SECONDS    heartbeat interval (0 = none)\n"
	"  --stop-after N         stop after N steps of this process (testing)\n"
	"  --no-checkpoints       write none (evaluation runs)\n"
	"  --no-machine-faults    inject only the data faults (evaluation runs)\n";
