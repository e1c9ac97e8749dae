-- watch.lua: marks an instance as waited for, so that the transition that
-- finishes it publishes its ID on the finished channel.
--
-- KEYS[1]  record hash   of:{o:<id>}
--
-- Returns the instance's status ("running", "completed", ...), or "" when
-- there is no accepted instance.
local cur = redis.call("HMGET", KEYS[1], "acc", "stt")
if cur[1] ~= "1" then
  return ""
end
if cur[2] == "running" then
  redis.call("HSET", KEYS[1], "w", "1")
end
return cur[2]
