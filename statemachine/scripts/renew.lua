-- renew.lua: extends a lease its holder still holds (a heartbeat).
--
-- KEYS[1]  record hash   of:{o:<id>}
-- ARGV[1]  lease token
-- ARGV[2]  new lease expiry, Unix milliseconds
--
-- Returns 1 when renewed, 0 when the lease is no longer the caller's.
if redis.call("HGET", KEYS[1], "lt") ~= ARGV[1] then
  return 0
end
redis.call("HSET", KEYS[1], "lu", ARGV[2])
return 1
