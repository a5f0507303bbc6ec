-- Argo CD health of a NoETL Execution (noetl.io/Execution), after Argo CD's own check for
-- argoproj.io/Workflow: the phase decides, the message of the Succeeded condition (else
-- status.error) explains. A status written for an older generation says nothing about the
-- current spec, so until the operator catches up the Execution is Progressing.
local hs = {}
local status = obj.status
local generation = obj.metadata.generation or 0

if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to start the execution"
  return hs
end
if (status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local phase = status.phase
local message = status.error or status.message or phase
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Succeeded" and condition.message ~= nil then
      message = condition.message
    end
  end
end

if phase == "Pending" or phase == "Queued" or phase == "Running" then
  hs.status = "Progressing"
elseif phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Failed" then
  hs.status = "Degraded"
elseif phase == "Cancelled" or phase == "Suspended" then
  -- Stopped on purpose (cancelled, or suspended until someone resumes it): not a fault to
  -- page anyone about, and it will not go on by itself.
  hs.status = "Suspended"
else
  hs.status = "Unknown"
  message = "Unknown phase " .. phase
end
hs.message = message
return hs
