-- monitors.lua: user monitors, in Lua, beside tend's builtin detectors.
--
-- The supervisor calls M.check(samples) in the sandbox after each batch of
-- metrics lines; samples is a list of {step, type = "step"|"eval"|
-- "heartbeat", loss, grad_norm, lr, val_loss, tokens_per_s, step_time_s}
-- (absent figures are nil). It returns nil or a list of incidents:
--   {kind = "name", severity = "info"|"warning"|"critical", step = N,
--    onset_step = N, summary = "one line"}
-- which become incidents "user:<kind>" (docs/lua-api.md). State kept in
-- locals lives as long as the run's supervisor.
local M = { api = 1 }

-- A run whose loss climbs back above where it started has undone its
-- training: worse than the rollback any spike detector would ask for.
local WARMUP = 100    -- steps before the rule applies
local MARGIN = 1.2    -- loss above 1.2 x the initial loss
local PATIENCE = 20   -- samples in a row

local first = {}      -- the first losses seen
local initial         -- their mean, once there are 10
local hits = 0

function M.check(samples)
  local out
  for _, s in ipairs(samples) do
    if s.type == "step" and s.loss and s.loss == s.loss then
      if not initial then
        first[#first + 1] = s.loss
        if #first == 10 then
          local sum = 0
          for _, v in ipairs(first) do sum = sum + v end
          initial = sum / #first
        end
      elseif s.step >= WARMUP and s.loss > MARGIN * initial then
        hits = hits + 1
        if hits == PATIENCE then
          out = out or {}
          out[#out + 1] = { kind = "loss_above_initial", severity = "critical",
            step = s.step, onset_step = s.step - PATIENCE + 1,
            summary = string.format("loss %.3f at step %d is above %.1f x the initial %.3f",
                                    s.loss, s.step, MARGIN, initial) }
        end
      else
        hits = 0
      end
    end
  end
  return out
end

function M.selftest()
  assert(type(M.check({})) == "nil", "no samples, no incidents")
  return true
end

return M
