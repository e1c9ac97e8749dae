-- claim.lua: takes the engine's lease on an instance and returns it whole.
-- The lease is granted when it is free, expired, or already held with the
-- same token. Claiming does not change the revision.
--
-- Leases are judged by the Redis server's clock (TIME), never by the
-- caller's, so clock skew between worker hosts cannot let one worker take a
-- lease another still holds.
--
-- KEYS[1]  record hash   of:{o:<id>}
-- KEYS[2]  history list  of:{o:<id>}:h
-- ARGV[1]  lease token
-- ARGV[2]  lease length, milliseconds
--
-- Returns {"ok", {field, value, ...}, created_event} on success, or
--         {"missing"}, {"terminal"}, {"leased", lease_expiry_ms}.
local cur = redis.call("HMGET", KEYS[1], "stt", "lt", "lu")
if not cur[1] then
  return {"missing"}
end
if cur[1] ~= "running" then
  return {"terminal"}
end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if cur[2] and cur[2] ~= "" and cur[2] ~= ARGV[1] and tonumber(cur[3] or "0") > now then
  return {"leased", cur[3]}
end
redis.call("HSET", KEYS[1], "lt", ARGV[1], "lu", string.format("%.0f", now + tonumber(ARGV[2])))
return {"ok", redis.call("HGETALL", KEYS[1]), redis.call("LINDEX", KEYS[2], 0) or ""}
