-- create.lua: creates a draft instance unless one with the same ID exists.
-- A draft is invisible and is never run until accept.lua marks it accepted.
--
-- KEYS[1]  record hash   of:{o:<id>}
-- KEYS[2]  history list  of:{o:<id>}:h
-- ARGV[1]  fingerprint of the input
-- ARGV[2]  now, Unix microseconds
-- ARGV[3]  workflow name
-- ARGV[4]  workflow version
-- ARGV[5]  initial state
-- ARGV[6]  the "created" history event (JSON; it carries the input)
-- ARGV[7]  ID of the asynq task that will drive the instance first
--
-- Returns {1, revision} when the draft was created, or
--         {0, same_fingerprint (0|1), accepted (0|1), revision, state,
--         created_us, version} when an instance with this ID already exists.
local cur = redis.call("HMGET", KEYS[1], "fp", "acc", "rev", "st", "ct", "v")
if cur[3] then
  return {0, (cur[1] == ARGV[1]) and 1 or 0, (cur[2] == "1") and 1 or 0, tonumber(cur[3]),
    cur[4] or "", cur[5] or "0", cur[6] or "0"}
end
redis.call("HSET", KEYS[1], "wf", ARGV[3], "v", ARGV[4], "st", ARGV[5], "stt", "running",
  "rev", 1, "fp", ARGV[1], "ct", ARGV[2], "ut", ARGV[2], "tk", ARGV[7])
if redis.call("RPUSH", KEYS[2], ARGV[6]) > 1 then
  -- A history outlived an expired record of the same ID: start it afresh.
  redis.call("DEL", KEYS[2])
  redis.call("RPUSH", KEYS[2], ARGV[6])
end
return {1, 1}
