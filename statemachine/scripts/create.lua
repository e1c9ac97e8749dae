-- create.lua: creates an instance unless one with the same ID exists.
-- The caller has already queued the instance's first task, so an instance
-- that exists has a task: nothing half-written is ever visible.
--
-- Each creation under an ID counts one incarnation in KEYS[3], which
-- outlives the record (see transition.lua). An ID reused after its record
-- expired gets the next incarnation, recorded in the field "inc", so its
-- provider idempotency keys differ from the earlier instance's.
--
-- KEYS[1]  record hash          of:{o:<id>}
-- KEYS[2]  history list         of:{o:<id>}:h
-- KEYS[3]  incarnation counter  of:{o:<id>}:n
-- ARGV[1]  fingerprint of the input
-- ARGV[2]  the "created" history event (JSON; it carries the input)
-- ARGV[3 ..] field/value pairs of the new record (rev 1, fp, st, ...)
--
-- Returns {1, 1, incarnation} when the instance was created, or
--         {0, same_fingerprint (0|1), revision, state, created_us, version}
--         when an instance with this ID already exists.
if redis.call("HSETNX", KEYS[1], "rev", "1") == 0 then
  local cur = redis.call("HMGET", KEYS[1], "fp", "rev", "st", "ct", "v")
  return {0, (cur[1] == ARGV[1]) and 1 or 0, tonumber(cur[2]), cur[3] or "", cur[4] or "0", cur[5] or "0"}
end
redis.call("HSET", KEYS[1], unpack(ARGV, 3))
local inc = redis.call("INCR", KEYS[3])
if inc > 1 then
  redis.call("PERSIST", KEYS[3])
  redis.call("HSET", KEYS[1], "inc", inc)
end
if redis.call("RPUSH", KEYS[2], ARGV[2]) > 1 then
  -- A history outlived an expired record of the same ID: start it afresh.
  redis.call("DEL", KEYS[2])
  redis.call("RPUSH", KEYS[2], ARGV[2])
end
return {1, 1, inc}
