-- unindex.lua: removes a limit key from the index of keys with waiters,
-- unless a waiter joined it since the janitor read the index (its score,
-- which counts the waits, changed).
--
-- KEYS[1]  the index   of:flow:waiting (zset: limit key -> waits counted)
-- ARGV[1]  the limit key's tag
-- ARGV[2]  the score the janitor read
--
-- Returns 1 when removed.
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
