-- transition.lua: the compare-and-set behind every change of an instance.
-- It checks the expected state and revision (and the lease), then writes the
-- new state, the step results and flags, and appends the history event, all
-- in one atomic call. No state is ever written from Go after a separate read.
--
-- The caller sends every field to write, the new revision (expected + 1)
-- included, so the script does no work beyond the compare and the writes.
-- Leases are judged and set by the Redis server's clock (TIME), so clock
-- skew between worker hosts cannot let a worker take a live lease.
--
-- KEYS[1]  record hash          of:{o:<id>}
-- KEYS[2]  history list         of:{o:<id>}:h
-- KEYS[3]  incarnation counter  of:{o:<id>}:n
-- ARGV[1]  expected state
-- ARGV[2]  expected revision
-- ARGV[3]  lease check: "hold" (the token must hold the lease), "acquire"
--          (the lease must be free, expired or ours), or "none" (signals,
--          which do not need the lease)
-- ARGV[4]  lease token
-- ARGV[5]  lease after the write: "" leaves it as it is, "0" releases it,
--          otherwise its length in ms from now, held by ARGV[4]
-- ARGV[6]  history event to append (JSON), or "" to append none
-- ARGV[7]  retention in seconds; when not "0" both keys expire after it
-- ARGV[8]  channel to PUBLISH the instance ID on when someone waits for it
--          (the record's "w" flag is set), or "" to publish nothing here
--          (with sharded indexes the caller publishes on its shard's
--          channel, another slot, after the write: see watched below)
-- ARGV[9]  the instance ID, the message of that notification
-- ARGV[10] with ARGV[7]: how long the incarnation counter outlives the
--          record, in seconds
-- ARGV[11] the input fingerprint the writer expects, or "" to not check:
--          a first task's hinted write must be about the order it was
--          queued for, not a later order under the same ID
-- ARGV[12 ..] field/value pairs to set: st, stt, rev, ut and the step's
--          fields ("" clears a field)
--
-- Returns {1, history_length, lease_expiry_ms, incarnation, watched} on
--         success (watched is 1 when the "w" flag is set), or
--         {0, state, revision, lease_token, lease_expiry_ms} when the
--         compare fails and nothing was written.
local cur = redis.call("HMGET", KEYS[1], "st", "rev", "lt", "lu", "w", "inc", "fp")
local ok = cur[1] == ARGV[1] and cur[2] == ARGV[2] and (ARGV[11] == "" or cur[7] == ARGV[11])
local now = nil
local function clock()
  if not now then
    local t = redis.call("TIME")
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
if ok then
  local lease = ARGV[3]
  if lease == "hold" then
    ok = cur[3] == ARGV[4]
  elseif lease == "acquire" then
    ok = not cur[3] or cur[3] == "" or cur[3] == ARGV[4] or tonumber(cur[4] or "0") <= clock()
  end
end
if not ok then
  return {0, cur[1] or "", tonumber(cur[2] or "0"), cur[3] or "", tonumber(cur[4] or "0")}
end
redis.call("HSET", KEYS[1], unpack(ARGV, 12))
local until_ms = tonumber(cur[4] or "0")
if ARGV[5] == "0" then
  redis.call("HSET", KEYS[1], "lt", "", "lu", "0")
  until_ms = 0
elseif ARGV[5] ~= "" then
  until_ms = clock() + tonumber(ARGV[5])
  redis.call("HSET", KEYS[1], "lt", ARGV[4], "lu", string.format("%.0f", until_ms))
end
local len = 0
if ARGV[6] ~= "" then
  len = redis.call("RPUSH", KEYS[2], ARGV[6])
end
if ARGV[7] ~= "0" then
  redis.call("EXPIRE", KEYS[1], ARGV[7])
  redis.call("EXPIRE", KEYS[2], ARGV[7])
  redis.call("EXPIRE", KEYS[3], tonumber(ARGV[7]) + tonumber(ARGV[10]))
end
if ARGV[8] ~= "" and cur[5] == "1" then
  redis.call("PUBLISH", ARGV[8], ARGV[9])
end
return {1, len, until_ms, tonumber(cur[6] or "1"), (cur[5] == "1") and 1 or 0}
