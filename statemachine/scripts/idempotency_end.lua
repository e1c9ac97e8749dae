-- idempotency_end.lua: settles a claimed Idempotency-Key, once the request
-- succeeded (kept for replays) or failed (forgotten, so a retry may run).
--
-- KEYS[1]  idempotency record  of:idem:{<sha256 of the key>}
-- ARGV[1]  fingerprint the claim was made with
-- ARGV[2]  "done" or "abort"
-- ARGV[3]  with "done": how long to keep the record for replays, ms
--
-- Returns 1 when settled, 0 when the claim was not found or not ours.
local fp = redis.call("HGET", KEYS[1], "fp")
if fp ~= ARGV[1] or redis.call("HGET", KEYS[1], "done") == "1" then
  return 0
end
if ARGV[2] == "done" then
  redis.call("HSET", KEYS[1], "done", "1")
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
else
  redis.call("DEL", KEYS[1])
end
return 1
