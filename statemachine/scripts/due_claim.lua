-- due_claim.lua: lets exactly one reaper take a due entry, by moving its
-- score forward only if it is still the score the reaper saw.
--
-- KEYS[1]  due set  of:due
-- ARGV[1]  instance ID
-- ARGV[2]  the score the reaper read, Unix ms
-- ARGV[3]  the new score, Unix ms
--
-- Returns 1 when taken, 0 when another reaper or a worker moved it first.
local s = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) then
  return 0
end
redis.call("ZADD", KEYS[1], ARGV[3], ARGV[1])
return 1
