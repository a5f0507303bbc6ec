-- Argo CD health of a NoETL Playbook (noetl.io/Playbook): the operator validates each new
-- generation and reports it in the Ready condition. Healthy when valid, Degraded when invalid
-- (the message names the bad fields), Progressing until the current generation is checked.
local hs = {}
local status = obj.status
local generation = obj.metadata.generation or 0

if status == nil or (status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to validate generation " .. generation
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
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Valid"
elseif ready.status == "False" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "Invalid") .. ": " .. (ready.message or "")
else
  hs.status = "Progressing"
  hs.message = ready.message or ""
end
return hs
