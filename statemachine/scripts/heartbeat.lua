-- heartbeat.lua: a long step's heartbeat. It extends the lease its holder
-- still holds (counted from the Redis server's clock), records the step's
-- progress, and keeps its checkpoint as step results, so that a worker that
-- takes the step over goes on from there. The revision does not change:
-- a heartbeat is no transition.
--
-- KEYS[1]  record hash   of:{o:<id>}
-- ARGV[1]  lease token
-- ARGV[2]  lease length from now, milliseconds
-- ARGV[3]  progress (JSON)
-- ARGV[4 ..] checkpoint field/value pairs (r:<name>, value)
--
-- Returns 1 when recorded, 0 when the lease is no longer the caller's.
if redis.call("HGET", KEYS[1], "lt") ~= ARGV[1] then
  return 0
end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("HSET", KEYS[1], "lu", string.format("%.0f", now + tonumber(ARGV[2])), "pg", ARGV[3])
if #ARGV > 3 then
  redis.call("HSET", KEYS[1], unpack(ARGV, 4))
end
return 1
