-- release.lua: gives a lease up without changing the instance.
--
-- KEYS[1]  record hash   of:{o:<id>}
-- ARGV[1]  lease token
--
-- Returns 1 when released, 0 when the caller did not hold it.
if redis.call("HGET", KEYS[1], "lt") ~= ARGV[1] then
  return 0
end
redis.call("HSET", KEYS[1], "lt", "", "lu", "0")
return 1
