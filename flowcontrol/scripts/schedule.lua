-- schedule.lua: gives an attempt that a rate limit held back its place in
-- the provider's line of waiters, one emission interval after the one
-- before, so that the waiters come back spread out as the limit lets them
-- through, instead of all asking again at every interval. The rate limit
-- itself still decides when they go.
--
-- KEYS[1]  the schedule   of:flow:{<provider>}:sched (string: the next free moment, ms)
-- KEYS[2]  the places     of:flow:{<provider>}:places (zset: instance -> its place, ms; see line.lua)
-- ARGV[1]  the emission interval, ms (may be fractional)
-- ARGV[2]  tokens the attempt takes
-- ARGV[3]  the furthest ahead a place is given, ms
-- ARGV[4]  when the limit lets the next call through, ms from now
-- ARGV[5]  instance ID: its place is recorded
--
-- Returns how long the caller waits for its place, ms.
local function n(x) return string.format('%.3f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local at = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
local first = now + tonumber(ARGV[4])
if at < first then
  at = first
end
local horizon = tonumber(ARGV[3])
local mine = math.min(at, now + horizon)
redis.call('SET', KEYS[1], n(math.min(at + tonumber(ARGV[1]) * tonumber(ARGV[2]), now + horizon)), 'PX', math.floor(horizon * 2))
redis.call('ZADD', KEYS[2], n(mine), ARGV[5])
redis.call('PEXPIRE', KEYS[2], math.floor(horizon * 2))
return math.floor(mine - now)
