-- idempotency_begin.lua: claims a client Idempotency-Key for one request.
--
-- KEYS[1]  idempotency record  of:idem:{<sha256 of the key>}
-- ARGV[1]  fingerprint of the request body
-- ARGV[2]  instance ID the request creates
-- ARGV[3]  time to keep the claim while the request is in flight, ms
--
-- Returns {"new", id} when the key is now claimed for this request,
--         {"mismatch", id} when it was used with a different body,
--         {"inflight", id} when a request with it is still running,
--         {"done", id} when a request with it completed (a replay).
local cur = redis.call("HMGET", KEYS[1], "fp", "id", "done")
if not cur[1] then
  redis.call("HSET", KEYS[1], "fp", ARGV[1], "id", ARGV[2])
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
  return {"new", ARGV[2]}
end
if cur[1] ~= ARGV[1] then
  return {"mismatch", cur[2] or ""}
end
if cur[3] == "1" then
  return {"done", cur[2] or ""}
end
return {"inflight", cur[2] or ""}
