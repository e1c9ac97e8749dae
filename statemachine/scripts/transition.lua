-- transition.lua: the compare-and-set behind every change of an instance.
-- It checks the expected state and revision (and the lease), then writes the
-- new state, the step results and flags, and appends the history event, all
-- in one atomic call. No state is ever written from Go after a separate read.
--
-- KEYS[1]  record hash   of:{o:<id>}
-- KEYS[2]  history list  of:{o:<id>}:h
-- ARGV[1]  expected state
-- ARGV[2]  expected revision
-- ARGV[3]  lease check: "hold" (the token must hold the lease), "acquire"
--          (the lease must be free, expired or ours; it becomes ours), or
--          "none" (signals, which do not need the lease)
-- ARGV[4]  lease token
-- ARGV[5]  now, Unix microseconds
-- ARGV[6]  lease after the write: an expiry in Unix ms to hold it until,
--          "0" to release it, or "-" to leave it as it is
-- ARGV[7]  new state (may equal the expected state)
-- ARGV[8]  new status: running, completed, failed or cancelled
-- ARGV[9]  history event to append (JSON), or "" to append none
-- ARGV[10] retention in seconds; when > 0 both keys expire after it
-- ARGV[11] channel to PUBLISH the instance ID on when someone waits for it
--          (the record's "w" flag is set), or "" to notify nobody
-- ARGV[12] the instance ID, the message of that notification
-- ARGV[13] N, the number of field/value pairs that follow
-- ARGV[14 .. 13+2N] field/value pairs to set ("" clears a field)
--
-- Returns {1, new_revision, history_length} on success, or
--         {0, state, revision, lease_token, lease_expiry_ms} when the
--         compare fails and nothing was written.
local cur = redis.call("HMGET", KEYS[1], "st", "rev", "lt", "lu", "acc", "w")
local ok = cur[5] == "1" and cur[1] == ARGV[1] and cur[2] == ARGV[2]
local lease = ARGV[3]
local holder = cur[3] or ""
if ok and lease == "hold" then
  ok = holder == ARGV[4]
elseif ok and lease == "acquire" then
  local now_ms = math.floor(tonumber(ARGV[5]) / 1000)
  ok = holder == "" or holder == ARGV[4] or tonumber(cur[4] or "0") <= now_ms
end
if not ok then
  return {0, cur[1] or "", tonumber(cur[2] or "0"), holder, tonumber(cur[4] or "0")}
end
local rev = tonumber(cur[2]) + 1
local args = {"st", ARGV[7], "stt", ARGV[8], "rev", rev, "ut", ARGV[5]}
if ARGV[6] == "0" then
  args[#args + 1] = "lt"; args[#args + 1] = ""
  args[#args + 1] = "lu"; args[#args + 1] = "0"
elseif ARGV[6] ~= "-" then
  args[#args + 1] = "lt"; args[#args + 1] = ARGV[4]
  args[#args + 1] = "lu"; args[#args + 1] = ARGV[6]
end
local n = tonumber(ARGV[13])
for i = 14, 13 + 2 * n do
  args[#args + 1] = ARGV[i]
end
redis.call("HSET", KEYS[1], unpack(args))
local len = 0
if ARGV[9] ~= "" then
  len = redis.call("RPUSH", KEYS[2], ARGV[9])
end
local ttl = tonumber(ARGV[10])
if ttl > 0 then
  redis.call("EXPIRE", KEYS[1], ttl)
  redis.call("EXPIRE", KEYS[2], ttl)
end
if ARGV[11] ~= "" and cur[6] == "1" then
  redis.call("PUBLISH", ARGV[11], ARGV[12])
end
return {1, rev, len}
