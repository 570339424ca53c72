-- policies.lua: what the supervisor does about an incident.
--
-- The supervisor calls decide(inc, ctx) once per incident it has not acted
-- on within the cooldown, in the sandbox, and validates the answer. This is
-- the default escalation ladder, from practice (docs/lua-api.md):
--   a spike            -> skip the offending batches
--   repeated spikes    -> lower the learning rate
--   more               -> roll back to a good checkpoint before the onset
--                         and skip a data window
--   NaN / Inf          -> stop before another checkpoint, roll back, skip
--   divergence         -> roll back and lower the learning rate
--   hang / stall       -> SIGTERM, grace, SIGKILL, restart from the latest
--   crash              -> restart with exponential backoff
--   slowdown           -> alert, then restart if it persists
--   MoE collapse       -> roll back to before the onset
-- Every restart and rollback counts against recovery.max_restarts_per_hour
-- (tend.yaml): past it the run stops and a human is alerted, so a fault
-- that comes back after each restart (a hang at the same step, NaN after
-- NaN) does not loop forever.
local P = {}
P.api = 1

-- inc: {kind, severity, signature, step, onset_step, summary}
-- ctx: {repeats (earlier actions on this kind within cooldown_steps),
--       restarts_last_hour, recovery = {max_restarts_per_hour,
--       rollback_steps, skip_batches, lr_cut, cooldown_steps}}
-- returns {action = "none"|"alert"|"skip"|"lower_lr"|"rollback"|"restart"
--          |"stop", skip = N, lr_scale = x, reason = "..."}
local function ladder(inc, ctx)
  local r = ctx.recovery
  local k = inc.kind
  if k == "loss_spike" or k == "grad_spike" then
    if ctx.repeats == 0 then
      return {action = "skip", skip = 10,
              reason = "first spike: skip the batches around it"}
    elseif ctx.repeats == 1 then
      return {action = "lower_lr", lr_scale = r.lr_cut,
              reason = "repeated spike: lower the learning rate"}
    end
    return {action = "rollback", skip = r.skip_batches,
            reason = "spikes keep coming: roll back before the onset and skip a data window"}
  elseif k == "nonfinite" then
    return {action = "rollback", skip = r.skip_batches,
            reason = "non-finite values: roll back to a good checkpoint and skip the data window"}
  elseif k == "divergence" then
    return {action = "rollback", skip = r.skip_batches, lr_scale = r.lr_cut,
            reason = "loss diverging: roll back and lower the learning rate"}
  elseif k == "stall" or k == "heartbeat" then
    return {action = "restart", reason = "no progress: restart from the latest checkpoint"}
  elseif k:sub(1, 6) == "crash_" then
    return {action = "restart", reason = "crashed: restart with backoff"}
  elseif k == "throughput" then
    if ctx.repeats == 0 then
      return {action = "alert", reason = "throughput dropped"}
    end
    return {action = "restart", reason = "throughput stays low: restart"}
  elseif k == "moe_imbalance" or k == "moe_dead_expert" or k == "moe_entropy_collapse" then
    return {action = "rollback", skip = r.skip_batches,
            reason = "router collapse: roll back to before the onset"}
  elseif k == "moe_dropped" then
    return {action = "alert", reason = "tokens dropped over capacity"}
  end
  return {action = "none", reason = "informational"}
end

function P.decide(inc, ctx)
  local d = ladder(inc, ctx)
  if (d.action == "restart" or d.action == "rollback")
      and ctx.restarts_last_hour >= ctx.recovery.max_restarts_per_hour then
    return {action = "stop", reason = "too many restarts in the last hour: giving up"}
  end
  return d
end

function P.selftest()
  local ctx = {repeats = 0, restarts_last_hour = 0,
               recovery = {max_restarts_per_hour = 6, rollback_steps = 100,
                           skip_batches = 300, lr_cut = 0.5, cooldown_steps = 50}}
  assert(P.decide({kind = "loss_spike"}, ctx).action == "skip")
  assert(P.decide({kind = "nonfinite"}, ctx).action == "rollback")
  ctx.restarts_last_hour = 6
  assert(P.decide({kind = "crash_oom"}, ctx).action == "stop")
  assert(P.decide({kind = "stall"}, ctx).action == "stop")
  assert(P.decide({kind = "nonfinite"}, ctx).action == "stop")
  assert(P.decide({kind = "loss_spike"}, ctx).action == "skip")
  return true
end

return P
