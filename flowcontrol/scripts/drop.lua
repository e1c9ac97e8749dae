-- drop.lua: takes an instance out of a line it no longer waits in (it was
-- cancelled, or moved on, while it waited).
--
-- KEYS[1]  waiters     of:flow:{c:<step>:<field>:<value>}:w
-- KEYS[2]  deadlines   of:flow:{c:...}:d
-- ARGV[1]  instance ID
--
-- Returns 1 when it waited.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
