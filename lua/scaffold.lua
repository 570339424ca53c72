-- scaffold.lua - the default training scaffold (scaffold API 1).
--
-- The trainer asks it, every step, for the learning rate, the gradient
-- clip and the MoE loss coefficients, and shows it the step's metrics.
-- What each function must return is in docs/lua-api.md; the host checks
-- every value. Runs in the tend sandbox: no io, os.execute, require;
-- import("name") loads name.lua from this directory.

local S = { api = 1 }

S.config = {
  lr = 3e-4,        -- peak learning rate, reached at the end of warmup
  min_lr = 3e-5,    -- floor of the cosine decay
  warmup = 100,     -- steps of linear warmup
  clip = 1.0,       -- gradient-norm clip (0 = none)
  aux_coef = 1e-2,  -- MoE load-balancing loss coefficient
  z_coef = 1e-3,    -- router z-loss coefficient
  -- Data windows to step over, {from = a, to = b} in steps of an unskipped
  -- run: known-bad batches (a proposal adds them after a poisoned window).
  skip_windows = {},
}

-- Linear warmup from lr/warmup to lr, then cosine decay to min_lr at the
-- last step. Steps count from 0.
function S.lr(step, total_steps)
  local c = S.config
  if step < c.warmup then
    return c.lr * (step + 1) / c.warmup
  end
  local span = math.max(1, total_steps - c.warmup)
  local progress = math.min(1, (step - c.warmup) / span)
  return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * progress))
end

function S.clip(step)
  return S.config.clip
end

function S.coeffs(step)
  return { aux = S.config.aux_coef, z = S.config.z_coef }
end

-- Hooks: functions hook(m) -> nil or an actions table. None by default;
-- policies append to S.hooks. on_step merges what they ask for.
S.hooks = {}

-- The data-skip hook: at the step before a window, skip its batches.
local function skip_windows(m)
  for _, w in ipairs(S.config.skip_windows) do
    if m.step == w.from - 1 then
      return { skip = w.to - w.from + 1,
               reason = "skip window " .. w.from .. "-" .. w.to }
    end
  end
end

local function merge(into, a)
  into = into or {}
  if a.skip then into.skip = math.max(into.skip or 0, a.skip) end
  into.checkpoint = into.checkpoint or a.checkpoint
  into.stop = into.stop or a.stop
  if a.reason then
    into.reason = into.reason and (into.reason .. "; " .. a.reason) or a.reason
  end
  return into
end

function S.on_step(m)
  local actions = skip_windows(m)
  for _, hook in ipairs(S.hooks) do
    local a = hook(m)
    if a then actions = merge(actions, a) end
  end
  return actions
end

-- Run by the host at load: a patched scaffold that breaks these is refused.
function S.selftest()
  local c, total = S.config, 1000
  assert(c.lr > 0 and c.min_lr >= 0 and c.min_lr <= c.lr, "config: need 0 <= min_lr <= lr")
  assert(S.lr(0, total) > 0, "lr must start above 0")
  assert(math.abs(S.lr(c.warmup - 1, total) - c.lr) < 1e-12, "warmup must end at lr")
  local prev = S.lr(c.warmup, total)
  for step = c.warmup + 1, total, 37 do
    local lr = S.lr(step, total)
    assert(lr <= prev + 1e-15, "lr must not rise after warmup (step " .. step .. ")")
    prev = lr
  end
  assert(math.abs(S.lr(total, total) - c.min_lr) < 1e-12, "decay must end at min_lr")
  assert(S.clip(0) >= 0, "clip must be >= 0")
  local k = S.coeffs(0)
  assert(k.aux >= 0 and k.z >= 0, "coeffs must be >= 0")
  local hooks = S.hooks
  S.hooks = {
    function() return { skip = 2, reason = "a" } end,
    function(m) return m.loss > 2 and { stop = true, skip = 1, reason = "b" } end,
  }
  local a = S.on_step({ step = 0, loss = 2.5, grad_norm = 1, lr = c.lr, tokens_per_s = 1,
                        step_time_s = 1, moe = {} })
  S.hooks = hooks
  assert(a.skip == 2 and a.stop and a.reason == "a; b", "on_step must merge what hooks ask")
  for _, w in ipairs(c.skip_windows) do
    assert(type(w.from) == "number" and type(w.to) == "number" and w.from >= 1 and
           w.to >= w.from, "skip_windows: need 1 <= from <= to")
  end
  return true
end

return S
