-- Argo CD health of dbmigrate.io/DatabaseMigration (see health/README.md to install it).
-- Healthy: Succeeded. Degraded: Failed, RolledBack, or Stalled=True (also after Succeeded:
-- a regression the performance watch found).
-- Suspended: waiting for a manual approval or a maintenance window (a person or the clock must act).
-- Progressing: everything else, including a spec generation the operator has not acted on yet.
local hs = {}

local function find_condition(status, wanted)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == wanted then
      return condition
    end
  end
  return nil
end

local function describe(status, fallback)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  local ready = find_condition(status, "Ready")
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    return ready.message
  end
  return fallback
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the dbmigrate operator to pick up this migration"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "The operator has not acted on generation " .. tostring(generation) .. " yet"
  return hs
end

local phase = status.phase
local stalled = find_condition(status, "Stalled")
if phase == "Succeeded" and not (stalled ~= nil and stalled.status == "True") then
  hs.status = "Healthy"
  hs.message = describe(status, "Migrated and verified")
elseif phase == "Failed" or phase == "RolledBack" then
  hs.status = "Degraded"
  if stalled ~= nil and stalled.message ~= nil and stalled.message ~= "" then
    hs.message = phase .. ": " .. stalled.message
  else
    hs.message = phase .. ": " .. describe(status, "see kubectl describe")
  end
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(status, stalled.message or "Stalled")
elseif phase == "WaitingForApproval" then
  hs.status = "Suspended"
  hs.message = describe(status, "Waiting for approval")
  if status.approval ~= nil and status.approval.howToApprove ~= nil then
    hs.message = hs.message .. "; approve with: " .. status.approval.howToApprove
  end
elseif phase == "WaitingForWindow" then
  hs.status = "Suspended"
  hs.message = describe(status, "Waiting for the maintenance window")
  if status.window ~= nil and status.window.nextOpen ~= nil then
    hs.message = hs.message .. " (next window opens " .. status.window.nextOpen .. ")"
  end
else
  hs.status = "Progressing"
  hs.message = describe(status, phase)
end
return hs
