-- transition.lua: the compare-and-set behind every change of an instance.
-- It checks the expected state and revision (and the lease), then writes the
-- new state, the step results and flags, and appends the history event, all
-- in one atomic call. No state is ever written from Go after a separate read.
--
-- The caller sends every field to write, the new revision (expected + 1)
-- included, so the script does no work beyond the compare and the writes.
--
-- KEYS[1]  record hash   of:{o:<id>}
-- KEYS[2]  history list  of:{o:<id>}:h
-- ARGV[1]  expected state
-- ARGV[2]  expected revision
-- ARGV[3]  lease check: "hold" (the token must hold the lease), "acquire"
--          (the lease must be free, expired or ours), or "none" (signals,
--          which do not need the lease)
-- ARGV[4]  lease token
-- ARGV[5]  now, Unix milliseconds (to tell an expired lease)
-- ARGV[6]  history event to append (JSON), or "" to append none
-- ARGV[7]  retention in seconds; when not "0" both keys expire after it
-- ARGV[8]  channel to PUBLISH the instance ID on when someone waits for it
--          (the record's "w" flag is set), or "" to notify nobody
-- ARGV[9]  the instance ID, the message of that notification
-- ARGV[10 ..] field/value pairs to set: st, stt, rev, ut, the lease fields
--          and the step's fields ("" clears a field)
--
-- Returns {1, history_length} on success, or
--         {0, state, revision, lease_token, lease_expiry_ms} when the
--         compare fails and nothing was written.
local cur = redis.call("HMGET", KEYS[1], "st", "rev", "lt", "lu", "w")
local ok = cur[1] == ARGV[1] and cur[2] == ARGV[2]
if ok then
  local lease = ARGV[3]
  if lease == "hold" then
    ok = cur[3] == ARGV[4]
  elseif lease == "acquire" then
    ok = not cur[3] or cur[3] == "" or cur[3] == ARGV[4] or tonumber(cur[4] or "0") <= tonumber(ARGV[5])
  end
end
if not ok then
  return {0, cur[1] or "", tonumber(cur[2] or "0"), cur[3] or "", tonumber(cur[4] or "0")}
end
redis.call("HSET", KEYS[1], unpack(ARGV, 10))
local len = 0
if ARGV[6] ~= "" then
  len = redis.call("RPUSH", KEYS[2], ARGV[6])
end
if ARGV[7] ~= "0" then
  redis.call("EXPIRE", KEYS[1], ARGV[7])
  redis.call("EXPIRE", KEYS[2], ARGV[7])
end
if ARGV[8] ~= "" and cur[5] == "1" then
  redis.call("PUBLISH", ARGV[8], ARGV[9])
end
return {1, len}
