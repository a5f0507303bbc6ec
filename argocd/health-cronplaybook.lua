-- Argo CD health of a NoETL CronPlaybook (noetl.io/CronPlaybook), after Argo CD's own check for
-- argoproj.io/CronWorkflow: a schedule the operator cannot read is Degraded (the Ready condition
-- says why), a suspended one Suspended, otherwise Healthy with the next run time. Until the
-- operator has seen the current generation, Progressing. A failed run is the Execution's
-- health, not the schedule's.
local hs = {}
local status = obj.status
local generation = obj.metadata.generation or 0

if status == nil or (status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local ready = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
elseif ready.status == "False" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
elseif obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = ready.message or "spec.suspend is true"
else
  hs.status = "Healthy"
  hs.message = ready.message or ""
end
return hs
