-- accept.lua: marks a draft accepted, once its first task is durably queued.
-- Only accepted instances are listed, shown and run.
--
-- KEYS[1]  record hash   of:{o:<id>}
-- ARGV[1]  now, Unix microseconds
--
-- Returns {1, revision} when accepted now, {2, revision} when it already was,
--         {0, 0} when the record does not exist (a reaped draft).
local cur = redis.call("HMGET", KEYS[1], "acc", "rev")
if not cur[2] then
  return {0, 0}
end
if cur[1] == "1" then
  return {2, tonumber(cur[2])}
end
local rev = tonumber(cur[2]) + 1
redis.call("HSET", KEYS[1], "acc", "1", "rev", rev, "ut", ARGV[1])
return {1, rev}
