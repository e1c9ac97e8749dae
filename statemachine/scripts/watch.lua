-- watch.lua: marks an instance as waited for, so that the transition that
-- finishes it publishes its ID on the finished channel.
--
-- KEYS[1]  record hash   of:{o:<id>}
--
-- Returns the instance's status ("running", "completed", ...), or "" when
-- there is no such instance.
local status = redis.call("HGET", KEYS[1], "stt")
if not status then
  return ""
end
if status == "running" then
  redis.call("HSET", KEYS[1], "w", "1")
end
return status
