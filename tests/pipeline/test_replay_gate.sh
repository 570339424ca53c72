#!/bin/sh
# test_replay_gate.sh - a patch to the supervisor's own monitors is judged
# by replaying the recorded runs, not by training: a harmless change to
# monitors.lua passes, one that raises false positives on a clean run
# fails, and neither touches a trainer. The proposer is an OpenAI-
# compatible endpoint: the loopback test server with scripted answers.
set -u
TEND=${TEND_BIN:?}
HTTPD=${TEND_TEST_HTTPD:?}
T=$(mktemp -d /tmp/tend-test-XXXXXX)
srv=0
trap '[ $srv -gt 0 ] && kill $srv; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1" >&2; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; return 1; fi; }
export OMP_WAIT_POLICY=passive

mkdir -p "$T/srv"
"$HTTPD" "$T/srv" >"$T/port" &
srv=$!
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$T/port" ] && break; sleep 0.2; done
port=$(cat "$T/port")

"$TEND" init "$T/ws" >/dev/null || exit 1
cd "$T/ws" || exit 1
cat > tend.yaml <<YAML
version: 1
run: {steps: 40, eval_every: 20, checkpoint_every: 10}
trainer: {layers: 1, d_model: 32, heads: 2, context: 32, experts: 4, top_k: 2,
          batch: 4, threads: 1, inject: ["nan@25"]}
monitors: {plateau: {enabled: false}}
proposer: {kind: openai, auto: false, endpoint: "http://127.0.0.1:$port/file/answer",
           model: "test-model", deadline_s: 20, run_max_requests: 2}
gates: {human_approval: false}
YAML
"$TEND" audit accept-gates --reason "test configuration" >/dev/null
"$TEND" run bad --no-status >/dev/null 2>&1
sed -i 's/inject: \["nan@25"\]/inject: []/' tend.yaml
"$TEND" run clean --no-status >/dev/null 2>&1
check "two runs recorded" "[ \$(sqlite3 tend.db 'select count(*) from runs') -eq 2 ]"
"$TEND" incident label 1 real >/dev/null
check "label stored" "sqlite3 tend.db 'select label from incidents where id=1' | grep -qx real"

# answer FILE DIFF: a chat completion whose content is a proposal with DIFF.
answer() {
  python3 - "$1" "$2" <<'PY'
import json, sys
diff = open(sys.argv[2]).read()
content = json.dumps({"diagnosis": "test", "confidence": 0.5, "diff": diff,
                      "rationale": "test", "expected_effect": "test"})
json.dump({"choices": [{"message": {"role": "assistant", "content": content}}],
           "usage": {"prompt_tokens": 10, "completion_tokens": 10}}, open(sys.argv[1], "w"))
PY
}
# mkdiff SED: a unified diff of monitors.lua with SED applied.
mkdiff() {
  mkdir -p "$T/a" "$T/b"
  cp scaffold/monitors.lua "$T/a/monitors.lua"
  sed "$1" scaffold/monitors.lua > "$T/b/monitors.lua"
  (cd "$T" && diff -u --label a/monitors.lua --label b/monitors.lua a/monitors.lua b/monitors.lua) > "$T/diff"
}

main0=$(git -C scaffold rev-parse main)
mkdiff 's/^local MARGIN = 1.2 .*/local MARGIN = 1.25   -- loss above 1.25 x the initial loss/'
answer "$T/srv/answer" "$T/diff"
"$TEND" propose 1 >"$T/p1.log" 2>&1
check "harmless monitor patch promoted" \
  "sqlite3 tend.db 'select state from proposals where id=1' | grep -qx promoted" || cat "$T/p1.log" >&2
check "judged by replay" "sqlite3 tend.db 'select stage from evaluations where proposal_id=1' | grep -qx replay"
check "no evaluation runs" "[ \$(sqlite3 tend.db \"select count(*) from runs where name like 'eval-%'\") -eq 0 ]"
check "replay figures recorded" "sqlite3 tend.db 'select figures from evaluations where proposal_id=1' | grep -q '\"real\":1'"

mkdiff 's/^local PATIENCE = 20 .*/local PATIENCE = 1 local WARMUP = 0 MARGIN = 0/'
answer "$T/srv/answer" "$T/diff"
"$TEND" propose 1 >"$T/p2.log" 2>&1
check "noisy monitor patch fails the gates" \
  "sqlite3 tend.db 'select state from proposals where id=2' | grep -qx failed" || cat "$T/p2.log" >&2
check "reason names false positives" \
  "sqlite3 tend.db 'select reject_reason from proposals where id=2' | grep -q 'more false positives'"
check "main moved only once" "[ \$(git -C scaffold rev-list --count $main0..main) -eq 2 ]"
# The run's budget (proposer.run_max_requests: 2) is spent: no request.
sent=$(wc -l < "$T/srv/requests.log")
"$TEND" propose 1 >"$T/p3.log" 2>&1
check "third proposal refused: budget spent" "grep -q \"the run's proposer budget is spent: 2 requests\" \"$T/p3.log\""
check "no request sent over budget" "[ \$(wc -l < \"$T/srv/requests.log\") -eq $sent ]"
check "budget refusal audited" "sqlite3 tend.db \"select count(*) from audit where action='proposer_failed'\" | grep -qx 1"
check "audit verify passes" "\"$TEND\" audit verify >/dev/null 2>&1"

echo "tt: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
