-- gate.lua: the provider gate. It says whether an attempt that calls the
-- provider may begin now: not while an operator paused the provider, not
-- while a 429's Retry-After holds it, not while its circuit is open, and
-- one probe at a time while it is half-open. An admitted attempt is marked
-- in flight until it reports (record.lua) or its mark expires.
--
-- KEYS[1]  provider state hash   of:flow:{<provider>}:state
-- KEYS[2]  in-flight marks       of:flow:{<provider>}:inflight (zset: attempt -> expiry ms)
-- ARGV[1]  attempt ID
-- ARGV[2]  mark lease, ms
-- ARGV[3]  "1" when the breaker is on
-- ARGV[4]  probe timeout, ms: how long a probe that never reports blocks the next
-- ARGV[5]  ramp length, ms
-- ARGV[6]  "1" when the attempt may be a probe: its instance has most of its
--          attempts left (a failed probe uses one)
-- ARGV[7]  how long after the circuit turned half-open any attempt may probe, ms
--
-- Returns {verdict, wait_ms, probe, ramp_elapsed_ms, transition}:
--   verdict "ok", "paused", "hold", "open" or "probing";
--   probe 1 when the attempt is the half-open circuit's probe;
--   ramp_elapsed_ms, -1 outside the ramp that follows a recovery;
--   transition "" or "open>half_open".
local function n(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[1], 'paused', 'hold_until', 'state', 'open_until', 'next_probe', 'closed_at', 'half_open_at')
if st[1] == '1' then
  return {'paused', 0, 0, -1, ''}
end
local hold = tonumber(st[2] or 0) or 0
if hold > now then
  return {'hold', hold - now, 0, -1, ''}
end
local probe, trans = 0, ''
if ARGV[3] == '1' then
  local state = st[3] or 'closed'
  if state == 'open' then
    local reopen = tonumber(st[4] or 0) or 0
    if now < reopen then
      return {'open', reopen - now, 0, -1, ''}
    end
    state = 'half_open'
    st[5] = '0'
    st[7] = n(now)
    redis.call('HSET', KEYS[1], 'state', 'half_open', 'next_probe', '0', 'half_open_at', n(now))
    trans = 'open>half_open'
  end
  if state == 'half_open' then
    local np = tonumber(st[5] or 0) or 0
    if now < np then
      return {'probing', np - now, 0, -1, trans}
    end
    if ARGV[6] ~= '1' and now - (tonumber(st[7] or 0) or 0) < tonumber(ARGV[7]) then
      -- Leave the probe to an attempt with attempts to spare, for a while.
      return {'probing', tonumber(ARGV[7]), 0, -1, trans}
    end
    redis.call('HSET', KEYS[1], 'next_probe', n(now + tonumber(ARGV[4])))
    probe = 1
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', n(now))
redis.call('ZADD', KEYS[2], n(now + tonumber(ARGV[2])), ARGV[1])
redis.call('PEXPIRE', KEYS[2], n(tonumber(ARGV[2]) * 2))
local ramp = -1
local closed = tonumber(st[6] or 0) or 0
if closed > 0 and now - closed < tonumber(ARGV[5]) then
  ramp = now - closed
end
return {'ok', 0, probe, ramp, trans}
