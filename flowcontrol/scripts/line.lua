-- line.lua: before an attempt asks a provider's rate limit, the line of
-- the attempts it held back decides whether it may ask now. An attempt
-- that has a place waits for it (asking again early, or twice, takes no
-- other place); one whose place came asks. A newcomer asks at once only
-- when nobody waits; else it takes the next place at the end of the line,
-- as schedule.lua gives, so that it never takes the token of a waiter
-- whose turn came. Places older than the horizon are dropped.
--
-- KEYS[1]  the schedule   of:flow:{<provider>}:sched (string: the next free moment, ms)
-- KEYS[2]  the places     of:flow:{<provider>}:places (zset: instance -> its place, ms)
-- ARGV[1]  instance ID
-- ARGV[2]  the emission interval, ms (may be fractional)
-- ARGV[3]  tokens the attempt takes
-- ARGV[4]  the furthest ahead a place is given, ms
--
-- Returns {ask, wait_ms}: ask 1 when the caller asks the rate limit now
-- (wait_ms 1 when it asks at its place, 0 with no place); ask 0 when it
-- waits wait_ms for its place.
local function n(x) return string.format('%.3f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local horizon = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', n(now - horizon))
local p = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]))
if p then
  if p <= now + 1 then
    return {1, 1}
  end
  return {0, math.ceil(p - now)}
end
local at = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if at <= now then
  return {1, 0}
end
local mine = math.min(at, now + horizon)
redis.call('SET', KEYS[1], n(math.min(at + tonumber(ARGV[2]) * tonumber(ARGV[3]), now + horizon)), 'PX', math.floor(horizon * 2))
redis.call('ZADD', KEYS[2], n(mine), ARGV[1])
redis.call('PEXPIRE', KEYS[2], math.floor(horizon * 2))
return {0, math.max(1, math.ceil(mine - now))}
