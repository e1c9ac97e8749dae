-- unplace.lua: an attempt that had a place in a provider's line of
-- rate-limited waiters was let through: its place goes.
--
-- KEYS[1]  the places     of:flow:{<provider>}:places
-- ARGV[1]  instance ID
--
-- Returns 1 when it had a place.
return redis.call('ZREM', KEYS[1], ARGV[1])
