-- release.lua: an attempt gives its slot back (when the slot is still the
-- attempt's: a later run of the same instance may have taken it over), and
-- learns which waiters the free slots now belong to, first in line first,
-- so that it wakes them. With no instance ID it only sweeps: the janitor
-- uses it for lines whose slots came free by expiry.
--
-- KEYS[1]  holders     of:flow:{c:<step>:<field>:<value>}:h
-- KEYS[2]  nonces      of:flow:{c:...}:n
-- KEYS[3]  waiters     of:flow:{c:...}:w
-- KEYS[4]  deadlines   of:flow:{c:...}:d
-- ARGV[1]  instance ID ("" to release nothing)
-- ARGV[2]  attempt ID
-- ARGV[3]  the limit (slots)
--
-- Returns {waiting, lapsed, heads...}: how many wait, how many holders'
-- leases had run out (a dead worker's slots, freed now), and the first
-- waiters, as many as there are free slots, each followed by when its wait
-- lapses (ms).
local function n(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] ~= '' and redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local lapsed = 0
for _, h in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', n(now))) do
  redis.call('ZREM', KEYS[1], h)
  redis.call('HDEL', KEYS[2], h)
  lapsed = lapsed + 1
end
for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', n(now))) do
  redis.call('ZREM', KEYS[3], w)
  redis.call('ZREM', KEYS[4], w)
end
local waiting = redis.call('ZCARD', KEYS[3])
local out = {waiting, lapsed}
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
if free > 0 and waiting > 0 then
  for _, w in ipairs(redis.call('ZRANGE', KEYS[3], 0, free - 1)) do
    table.insert(out, w)
    table.insert(out, redis.call('ZSCORE', KEYS[4], w) or '0')
  end
end
return out
