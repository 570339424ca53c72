-- playbook.lua - the builtin proposer: from an incident to a scaffold patch,
-- offline and deterministic (docs/proposals.md).
--
-- tend calls PB.propose(ctx) in the sandbox, with ctx the proposal context
-- (incident, evidence, metrics, logs, files, history, memory). It returns
-- nil when it has no idea, or
--   { diagnosis = "...", confidence = 0..1, rationale = "...",
--     expected_effect = "...",
--     edits = { { file = "scaffold.lua", find = "...", replace = "..." }, ... } }
-- The host applies each edit (find must occur exactly once in the file),
-- writes the diff itself and checks it as it checks a model's answer.
-- Values are read from the current files, so a second proposal for the
-- same kind on an already patched scaffold moves them further.
local PB = { api = 1 }

local LR_FLOOR = 1e-7      -- below this, lowering the LR again is pointless
local CLIP_FLOOR = 0.05    -- tighter clipping than this stops learning
local AUX_CAP = 0.1        -- above this the balance loss swamps the LM loss
local WARMUP_CAP = 100000

-- Rounds to 4 significant digits, so values stay readable ("0.00015").
local function round(x)
  return tonumber(string.format("%.4g", x))
end

local function fmt(x)
  if math.type(x) == "integer" then return string.format("%d", x) end
  return string.format("%.4g", x)
end

-- Finds `name = <number>` on its own line in the S.config table of text.
-- Returns the value, the exact text to find (from the newline before the
-- name to the spaces after the comma), and a function that writes the line
-- with another number, keeping the comment after it aligned.
local function setting(text, name)
  local block = text and text:match("S%.config%s*=%s*(%b{})")
  if not block then return nil end
  local prefix, num, comma, pad = block:match("(\n[ \t]*" .. name
    .. "[ \t]*=[ \t]*)([%d][%d%.eE+%-]*)(,?)( *)")
  local v = num and tonumber(num)
  if not v then return nil end
  local function with(s)
    local n = #pad > 0 and math.max(1, #pad + #num - #s) or 0
    return prefix .. s .. comma .. string.rep(" ", n)
  end
  return v, prefix .. num .. comma .. pad, with
end

-- Adds an edit that sets name to the value f(old); returns old, new or nil.
local function change(p, name, f)
  local old, find, with = setting(p.text, name)
  if not old then return nil end
  local new = f(old)
  if new == nil or new == old then return nil end
  local replace = with(fmt(new))
  p.edits[#p.edits + 1] = { file = "scaffold.lua", find = find, replace = replace }
  local i, j = p.text:find(find, 1, true)
  p.text = p.text:sub(1, i - 1) .. replace .. p.text:sub(j + 1)
  p.notes[#p.notes + 1] = string.format("%s %s -> %s", name, fmt(old), fmt(new))
  return old, new
end

local function lower_lr(p)
  local _, lr = change(p, "lr", function(v)
    local n = round(v / 2)
    return n >= LR_FLOOR and n or nil
  end)
  if not lr then return false end
  -- The selftest wants min_lr <= lr: keep the floor of the decay below it.
  change(p, "min_lr", function(v) return v > lr and round(lr / 10) or nil end)
  return true
end

local function tighten_clip(p)
  return change(p, "clip", function(v)
    if v == 0 then return 1.0 end          -- no clipping yet: start at 1.0
    local n = round(v / 2)
    return n >= CLIP_FLOOR and n or nil
  end) ~= nil
end

local function longer_warmup(p)
  return change(p, "warmup", function(v)
    local n = math.min(WARMUP_CAP, math.max(10, math.tointeger(v * 2) or 10))
    return n
  end) ~= nil
end

local function raise_aux(p, factor)
  return change(p, "aux_coef", function(v)
    if v >= AUX_CAP then return nil end
    if v == 0 then return 1e-2 end
    return math.min(AUX_CAP, round(v * factor))
  end) ~= nil
end

-- kind -> function(p, inc) that adds edits and returns confidence, the
-- diagnosis' cause, the rationale and the expected effect.
local rules = {}

local function spike(p, inc)
  local clipped = tighten_clip(p)
  local lowered = false
  if not clipped or (inc.count or 1) >= 3 then lowered = lower_lr(p) end
  if not clipped and not lowered then return nil end
  return 0.6, "updates too large for the loss surface (clipping too loose"
      .. (lowered and ", peak learning rate too high)" or ")"),
    "tighter gradient clipping bounds the size of a single bad update"
      .. (lowered and "; a lower peak learning rate shrinks every update" or ""),
    "no repeat of the spike at the same data position; grad_norm stays near its median"
end
rules.loss_spike = spike
rules.grad_spike = spike

rules.divergence = function(p)
  local lowered = lower_lr(p)
  local longer = longer_warmup(p)
  if not lowered and not longer then return nil end
  return 0.6, "the learning rate is too high for this model and batch (loss rises steadily)",
    "a 2x lower peak learning rate and a 2x longer warmup keep the optimizer in a stable region",
    "the rolling median of the loss stops rising and falls below its pre-onset minimum"
end

-- Adds {from, to} to S.config.skip_windows, unless a window covers it.
local function skip_window(p, from, to)
  local block = p.text:match("S%.config%s*=%s*(%b{})")
  local prefix, list, comma = (block or ""):match("(\n[ \t]*skip_windows[ \t]*=[ \t]*)(%b{})(,?)")
  if not list then return false end
  for a, b in list:gmatch("from%s*=%s*(%d+)%s*,%s*to%s*=%s*(%d+)") do
    if tonumber(a) <= from and tonumber(b) >= to then return false end
  end
  local inner = list:sub(2, -2):gsub("%s+$", "")
  local entry = string.format("{ from = %d, to = %d }", from, to)
  local new = "{ " .. (inner:match("%S") and inner:gsub("^%s+", "") .. ", " or "") .. entry .. " }"
  local find, replace = prefix .. list .. comma, prefix .. new .. comma
  p.edits[#p.edits + 1] = { file = "scaffold.lua", find = find, replace = replace }
  local i, j = p.text:find(find, 1, true)
  p.text = p.text:sub(1, i - 1) .. replace .. p.text:sub(j + 1)
  p.notes[#p.notes + 1] = string.format("skip_windows += %d-%d", from, to)
  return true
end

-- A NaN that appears at once, from finite values, is a poisoned batch far
-- more often than an optimizer setting: practice restarts before it and
-- skips the window. Step over it in every future run; only when the window
-- is already skipped, bound the update instead.
rules.nonfinite = function(p, inc)
  local onset = math.tointeger(inc.onset_step) or 0
  if onset >= 2 and skip_window(p, onset - 1, onset + 1) then
    return 0.7, "a poisoned data window: the values were finite up to the step before",
      "skipping the batches around the onset keeps every run, and every restart from an "
        .. "earlier checkpoint, off the window that produced the non-finite values",
      "no NaN or Inf at the window's steps; the loss continues from the step before"
  end
  local lowered = lower_lr(p)
  local clipped = tighten_clip(p)
  if not lowered and not clipped then return nil end
  return 0.5, "an update overflowed (non-finite loss or gradient)",
    "a lower learning rate and tighter clipping bound the update that overflowed",
    "no NaN or Inf in loss and grad_norm; loss resumes from the rollback point"
end

local function router(factor)
  return function(p)
    if not raise_aux(p, factor) then return nil end
    return 0.5, "the router collapses onto few experts (load balancing too weak)",
      "a larger load-balancing loss coefficient pushes the router back towards uniform load",
      "max_over_mean falls towards 1, routing entropy rises, no expert stays dead"
  end
end
rules.moe_imbalance = router(3)
rules.moe_dead_expert = router(3)
rules.moe_entropy_collapse = router(3)
rules.dead_expert = rules.moe_dead_expert
rules.entropy_collapse = rules.moe_entropy_collapse
rules.moe_dropped = function(p)
  if not raise_aux(p, 2) then return nil end
  return 0.4, "tokens are dropped over expert capacity (load concentrated on few experts)",
    "a larger load-balancing loss spreads tokens so fewer exceed capacity",
    "the dropped fraction falls below the monitor's threshold"
end
-- plateau, stall, heartbeat, throughput, crash_*: not the scaffold's to fix.

function PB.propose(ctx)
  local inc = ctx.incident or {}
  local rule = rules[inc.kind]
  local text = ctx.files and ctx.files["scaffold.lua"]
  if not rule or not text then return nil end
  local p = { text = text, edits = {}, notes = {} }
  local confidence, cause, rationale, effect = rule(p, inc)
  if not confidence or #p.edits == 0 then return nil end
  local summary = tostring(inc.summary or ""):sub(1, 500)
  return {
    diagnosis = string.format("%s at step %s: %s. Likely cause: %s.", inc.kind,
      tostring(inc.onset_step), summary, cause),
    confidence = confidence,
    rationale = rationale .. " (" .. table.concat(p.notes, ", ") .. ").",
    expected_effect = effect .. ".",
    edits = p.edits,
  }
end

-- Checks the mapping on a small scaffold: values move, repeat, and stop.
function PB.selftest()
  local sample = "local S = { api = 1 }\nS.config = {\n  lr = 3e-4,\n  min_lr = 3e-5,\n"
    .. "  warmup = 100,\n  clip = 1.0,\n  aux_coef = 1e-2,\n}\nreturn S\n"
  local function apply(text, a)
    for _, e in ipairs(a.edits) do
      local i, j = text:find(e.find, 1, true)
      assert(i and not text:find(e.find, j + 1, true), "find must occur once: " .. e.find)
      text = text:sub(1, i - 1) .. e.replace .. text:sub(j + 1)
    end
    return text
  end
  local function ask(kind, text, count)
    return PB.propose({ incident = { kind = kind, onset_step = 10, summary = "x",
                                     count = count or 1 },
                        files = { ["scaffold.lua"] = text } })
  end
  local t = apply(sample, ask("divergence", sample))
  assert(setting(t, "lr") == 1.5e-4 and setting(t, "warmup") == 200, "divergence")
  t = apply(t, ask("divergence", t))
  assert(setting(t, "lr") == 7.5e-5 and setting(t, "warmup") == 400, "divergence again")
  t = apply(sample, ask("grad_spike", sample))
  assert(setting(t, "clip") == 0.5 and setting(t, "lr") == 3e-4, "grad_spike")
  t = apply(sample, ask("loss_spike", sample, 3))
  assert(setting(t, "clip") == 0.5 and setting(t, "lr") == 1.5e-4, "repeated loss_spike")
  t = apply(sample, ask("moe_imbalance", sample))
  assert(setting(t, "aux_coef") == 0.03, "moe_imbalance")
  t = apply(t, ask("moe_imbalance", t))
  assert(setting(t, "aux_coef") == 0.09, "moe_imbalance again")
  t = apply(t, ask("moe_imbalance", t))
  assert(setting(t, "aux_coef") == AUX_CAP and ask("moe_imbalance", t) == nil, "aux cap")
  t = sample
  for _ = 1, 4 do t = apply(t, ask("nonfinite", t)) end
  assert(setting(t, "min_lr") <= setting(t, "lr"), "min_lr stays below lr")
  local windows = sample:gsub("  aux_coef", "  skip_windows = {},\n  aux_coef")
  t = apply(windows, ask("nonfinite", windows))
  assert(t:find("skip_windows = { { from = 9, to = 11 } },", 1, true), "nonfinite: skip window")
  assert(setting(t, "lr") == 3e-4, "nonfinite: a window, not the lr")
  t = apply(t, ask("nonfinite", t))
  assert(setting(t, "clip") == 0.5, "nonfinite twice at one step: bound the update")
  assert(ask("plateau", sample) == nil and ask("stall", sample) == nil, "no patch")
  return true
end

return PB
