-- idempotency_bind.lua: binds a client's Idempotency-Key to the request it
-- first came with, once and for good: SET-NX semantics. The binding is never
-- deleted when the request fails, so every retry, however the first attempt
-- ended, starts the same instance (starting an instance is idempotent on its
-- ID) and concurrent requests with one key converge on one instance.
--
-- KEYS[1]  binding  of:idem:{<hash of the caller-scoped key>}
-- ARGV[1]  fingerprint of the request body
-- ARGV[2]  instance ID the request would create
-- ARGV[3]  how long the binding is kept, ms
--
-- Returns {"new", id} when the key is now bound to this request (ARGV[2]),
--         {"same", id} when it was bound earlier with the same fingerprint,
--         {"mismatch", id} when it was bound with a different fingerprint;
--         id is the instance the key is bound to.
local cur = redis.call("HMGET", KEYS[1], "fp", "id")
if not cur[1] then
  redis.call("HSET", KEYS[1], "fp", ARGV[1], "id", ARGV[2])
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
  return {"new", ARGV[2]}
end
if cur[1] ~= ARGV[1] then
  return {"mismatch", cur[2] or ""}
end
return {"same", cur[2] or ""}
