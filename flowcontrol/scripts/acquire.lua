-- acquire.lua: an attempt asks for a slot of a concurrency limit (one key
-- value, such as one customer). Holders whose lease ran out (a killed
-- worker's) and waiters that stopped asking are dropped first. A free slot
-- goes to the caller only if nobody waits, or the caller is among the
-- first waiters (first come, first served); else the caller waits in line.
-- An instance whose earlier attempt still holds a slot waits for it like
-- anyone: two attempts of one instance never run at once either.
--
-- KEYS[1]  holders     of:flow:{c:<step>:<field>:<value>}:h (zset: instance -> lease end, ms)
-- KEYS[2]  nonces      of:flow:{c:...}:n (hash: instance -> the holding attempt's ID)
-- KEYS[3]  waiters     of:flow:{c:...}:w (zset: instance -> first arrival, µs)
-- KEYS[4]  deadlines   of:flow:{c:...}:d (zset: instance -> when its wait lapses, ms)
-- ARGV[1]  instance ID
-- ARGV[2]  attempt ID
-- ARGV[3]  the limit (slots)
-- ARGV[4]  lease, ms
-- ARGV[5]  how long a waiter stays in line without asking again, ms
--
-- Returns {granted, position, heads...}: granted 1 or 0; position, the
-- caller's place in line (0 first) when not granted; heads, when slots
-- came free by expiry while others wait, the waiters to wake.
local function n(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nowus = tonumber(t[1]) * 1000000 + tonumber(t[2])
local id, lease, ttl = ARGV[1], tonumber(ARGV[4]), tonumber(ARGV[5])
local limit = tonumber(ARGV[3])

local purged = 0
for _, h in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', n(now))) do
  redis.call('ZREM', KEYS[1], h)
  redis.call('HDEL', KEYS[2], h)
  purged = purged + 1
end
for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', n(now))) do
  redis.call('ZREM', KEYS[3], w)
  redis.call('ZREM', KEYS[4], w)
  purged = purged + 1
end

local waiting = redis.call('ZCARD', KEYS[3])

local function grant()
  redis.call('ZADD', KEYS[1], n(now + lease), id)
  redis.call('HSET', KEYS[2], id, ARGV[2])
  if waiting > 0 then
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', KEYS[4], id)
  end
  redis.call('PEXPIRE', KEYS[1], n(lease * 2))
  redis.call('PEXPIRE', KEYS[2], n(lease * 2))
  return {1, 0}
end

local free = limit - redis.call('ZCARD', KEYS[1])
if free > 0 and not redis.call('ZSCORE', KEYS[1], id) then
  if waiting == 0 then
    return grant()
  end
  local rank = redis.call('ZRANK', KEYS[3], id)
  if rank and rank < free then
    return grant()
  end
end
redis.call('ZADD', KEYS[3], 'NX', n(nowus), id)
redis.call('ZADD', KEYS[4], n(now + ttl), id)
redis.call('PEXPIRE', KEYS[3], n(ttl * 2))
redis.call('PEXPIRE', KEYS[4], n(ttl * 2))
local out = {0, redis.call('ZRANK', KEYS[3], id)}
if purged > 0 and free > 0 then
  for _, w in ipairs(redis.call('ZRANGE', KEYS[3], 0, free - 1)) do
    if w ~= id then
      table.insert(out, w)
    end
  end
end
return out
