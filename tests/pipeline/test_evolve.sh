#!/bin/sh
# test_evolve.sh - the self-evolving loop end to end on a tiny model, then
# tamper tests for `tend audit verify`: a commit made on main by hand, an
# edited audit row, an edited gate. Real workspace, real git repository,
# real SQLite file, real trainer processes.
set -u
TEND=${TEND_BIN:?}
T=$(mktemp -d /tmp/tend-test-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1" >&2; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; return 1; fi; }
export OMP_WAIT_POLICY=passive

cat > "$T/tend.yaml" <<'YAML'
version: 1
run: {steps: 40, eval_every: 20, checkpoint_every: 10, keep_last: 10, keep_every: 10}
trainer: {layers: 1, d_model: 32, heads: 2, context: 32, experts: 4, top_k: 2,
          batch: 4, threads: 1, inject: ["nan@25"]}
proposer: {kind: builtin, auto: false}
evaluation: {steps: 12, noise_runs: 1, max_wall_s: 120}
gates: {val_loss_tolerance: 0.05, throughput_ratio: 0.1, human_approval: false}
YAML
"$TEND" init "$T/ws" >/dev/null || { echo "init failed"; exit 1; }
cp "$T/tend.yaml" "$T/ws/tend.yaml"
cd "$T/ws" || exit 1
"$TEND" audit accept-gates --reason "test configuration" >/dev/null

# A run whose NaN at step 25 opens an incident, rolls back and finishes.
"$TEND" run r1 --no-status >"$T/run.log" 2>&1
check "run finished" "sqlite3 tend.db \"select state from runs where name='r1'\" | grep -qx finished"
inc=$(sqlite3 tend.db "select id from incidents where kind='nonfinite' order by id limit 1")
check "nonfinite incident recorded" "[ -n \"$inc\" ]"

# The builtin proposer, the branch, the A/B evaluation, the gates, promotion.
"$TEND" propose "$inc" >"$T/propose.log" 2>&1
check "proposal promoted" "sqlite3 tend.db \"select state from proposals where id=1\" | grep -qx promoted" ||
  cat "$T/propose.log" >&2
check "branch kept" "git -C scaffold branch --list 'proposals/*' | grep -q proposals/$inc-1"
check "merge commit has trailers" "git -C scaffold log -1 --format=%B main | grep -q '^Evaluation: 1'"
check "evaluation recorded both arms" "[ \$(sqlite3 tend.db \"select count(*) from runs where name like 'eval-1-%'\") -eq 2 ]"
check "gate table shown" "grep -q 'val_loss' \"$T/propose.log\""
check "audit verify passes" "\"$TEND\" audit verify >/dev/null 2>&1"

# The same proposal again is recognised and not evaluated.
"$TEND" propose "$inc" >"$T/propose2.log" 2>&1
check "second proposal differs or is a duplicate" \
  "sqlite3 tend.db \"select state from proposals where id=2\" | grep -Eqx 'promoted|duplicate|failed|awaiting_approval|passed'"

# Tamper 1: a commit made on main by hand.
cp -a "$T/ws" "$T/ws-hand"
git -C "$T/ws-hand/scaffold" -c user.name=x -c user.email=x@y commit -q --allow-empty -m "sneaky"
out=$(cd "$T/ws-hand" && "$TEND" audit verify 2>&1); rc=$?
check "hand commit: verify fails" "[ $rc -eq 1 ]"
check "hand commit: named" "echo \"\$out\" | grep -q 'did not come through a recorded, passing evaluation'"

# Tamper 2: an audit row edited in the database. The table refuses updates
# through its triggers, so a tamperer drops them first.
cp -a "$T/ws" "$T/ws-row"
check "audit table refuses an update" \
  "! sqlite3 \"$T/ws-row/tend.db\" \"update audit set actor='mallory' where seq=2\" 2>/dev/null"
sqlite3 "$T/ws-row/tend.db" "drop trigger audit_no_update; update audit set actor='mallory' where seq=2"
out=$(cd "$T/ws-row" && "$TEND" audit verify 2>&1); rc=$?
check "edited audit row: verify fails" "[ $rc -eq 1 ]"
check "edited audit row: named" "echo \"\$out\" | grep -q 'audit log'"

# Tamper 3: a gate edited in tend.yaml; an audited acceptance clears it.
cp -a "$T/ws" "$T/ws-gate"
sed -i 's/val_loss_tolerance: 0.05/val_loss_tolerance: 0.9/' "$T/ws-gate/tend.yaml"
out=$(cd "$T/ws-gate" && "$TEND" audit verify 2>&1); rc=$?
check "edited gate: verify fails" "[ $rc -eq 1 ]"
check "edited gate: named" "echo \"\$out\" | grep -q 'gates changed'"
(cd "$T/ws-gate" && "$TEND" audit accept-gates --reason "loosened on purpose" >/dev/null)
check "accepted gate: verify passes" "(cd \"$T/ws-gate\" && \"$TEND\" audit verify >/dev/null 2>&1)"

# Rollback of the promotion goes through the audited path.
main=$(git -C scaffold rev-parse main)
"$TEND" rollback "$main" --reason "test" >/dev/null 2>&1
check "rollback commit on main" "git -C scaffold log -1 --format=%B main | grep -q '^Reverts: $main'"
check "audit verify passes after rollback" "\"$TEND\" audit verify >/dev/null 2>&1"

echo "tt: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
