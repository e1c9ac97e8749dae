-- renew.lua: extends a lease its holder still holds (a heartbeat). The new
-- expiry is counted from the Redis server's clock (TIME).
--
-- KEYS[1]  record hash   of:{o:<id>}
-- ARGV[1]  lease token
-- ARGV[2]  lease length from now, milliseconds
--
-- Returns 1 when renewed, 0 when the lease is no longer the caller's.
if redis.call("HGET", KEYS[1], "lt") ~= ARGV[1] then
  return 0
end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("HSET", KEYS[1], "lu", string.format("%.0f", now + tonumber(ARGV[2])))
return 1
