-- record.lua: an attempt admitted by gate.lua reports its outcome. Its
-- in-flight mark goes; a 429 holds the whole provider for its Retry-After,
-- scaled by the share of 429s among the window's calls (in full once that
-- share reaches ARGV[12]): a provider that pushes back on much of the
-- traffic stops every worker for as long as it asks, while a stray 429
-- among many answered calls slows them only a little;
-- the outcome counts in the provider's error rate (one bucket per tenth of
-- the window); and the breaker moves: closed to open when the error rate
-- over the window reaches the threshold with enough calls, half-open to
-- closed when the probe succeeds (the ramp starts), half-open to open when
-- it fails (open twice as long, up to a maximum).
--
-- KEYS[1]  provider state hash   of:flow:{<provider>}:state
-- KEYS[2]  in-flight marks       of:flow:{<provider>}:inflight
-- KEYS[3]  outcome counts        of:flow:{<provider>}:stats (hash: "<bucket>:n", "<bucket>:e", "<bucket>:l" (429s),
--          and "cur", "bucket_ms", "window_ms": the current bucket and the sizes they count by)
-- ARGV[1]  attempt ID
-- ARGV[2]  outcome: "ok", "err", "limited" (a 429) or "none" (no call, or one that says nothing about the provider)
-- ARGV[3]  hold, ms (for "limited")
-- ARGV[4]  "1" when the attempt was the probe
-- ARGV[5]  "1" when the breaker is on
-- ARGV[6]  error-rate threshold (0..1)
-- ARGV[7]  minimum calls in the window
-- ARGV[8]  window, ms
-- ARGV[9]  bucket, ms
-- ARGV[10] first open period, ms
-- ARGV[11] longest open period, ms
-- ARGV[12] the share of 429s among the window's calls from which a 429 holds for its whole Retry-After (0..1]
--
-- Returns the breaker's transition: "", "closed>open", "half_open>closed"
-- or "half_open>open".
local function n(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
local outcome = ARGV[2]
local probe = ARGV[4] == '1'
local breaker = ARGV[5] == '1'
if outcome == 'none' then
  if probe and redis.call('HGET', KEYS[1], 'state') == 'half_open' then
    -- The probe made no call: another may go now.
    redis.call('HSET', KEYS[1], 'next_probe', '0')
  end
  return ''
end
local window, bucket = tonumber(ARGV[8]), tonumber(ARGV[9])
local nb = math.max(1, math.floor(window / bucket))
local b = math.floor(now / bucket)
local failed = outcome ~= 'ok'
redis.call('HINCRBY', KEYS[3], n(b) .. ':n', 1)
if failed then
  redis.call('HINCRBY', KEYS[3], n(b) .. ':e', 1)
end
if outcome == 'limited' then
  redis.call('HINCRBY', KEYS[3], n(b) .. ':l', 1)
  local calls, limited = 0, 0
  for i = 0, nb - 1 do
    local v = redis.call('HMGET', KEYS[3], n(b - i) .. ':n', n(b - i) .. ':l')
    calls = calls + (tonumber(v[1] or 0) or 0)
    limited = limited + (tonumber(v[2] or 0) or 0)
  end
  local share = math.min(1, (limited / math.max(calls, 1)) / tonumber(ARGV[12]))
  local hold = now + math.ceil(tonumber(ARGV[3]) * share)
  local cur = tonumber(redis.call('HGET', KEYS[1], 'hold_until') or 0) or 0
  if hold > cur then
    redis.call('HSET', KEYS[1], 'hold_until', n(hold))
  end
end
if redis.call('HGET', KEYS[3], 'cur') ~= n(b) then
  -- A new bucket: drop the ones that left the window.
  redis.call('HSET', KEYS[3], 'cur', n(b), 'bucket_ms', n(bucket), 'window_ms', n(window))
  for _, f in ipairs(redis.call('HKEYS', KEYS[3])) do
    local m = string.match(f, '^(%d+):')
    if m and tonumber(m) <= b - nb then
      redis.call('HDEL', KEYS[3], f)
    end
  end
  redis.call('PEXPIRE', KEYS[3], n(window * 2))
end
if not breaker then
  return ''
end
local st = redis.call('HMGET', KEYS[1], 'state', 'open_ms', 'since')
local state = st[1] or 'closed'
local base, longest = tonumber(ARGV[10]), tonumber(ARGV[11])
if probe and state == 'half_open' then
  if not failed then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', n(now), 'since', n(now), 'open_ms', '0')
    redis.call('HDEL', KEYS[1], 'opened_at', 'open_until', 'next_probe', 'half_open_at')
    return 'half_open>closed'
  end
  local open_ms = math.min(math.max((tonumber(st[2] or 0) or 0) * 2, base), longest)
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_ms', n(open_ms), 'open_until', n(now + open_ms))
  return 'half_open>open'
end
if state ~= 'closed' or not failed then
  -- Only an error can take the rate over the threshold.
  return ''
end
-- The error rate over the window's buckets, counting none from before the
-- last recovery.
local since = tonumber(st[3] or 0) or 0
local calls, errors = 0, 0
for i = 0, nb - 1 do
  local bi = b - i
  if bi * bucket >= since then
    local v = redis.call('HMGET', KEYS[3], n(bi) .. ':n', n(bi) .. ':e')
    calls = calls + (tonumber(v[1] or 0) or 0)
    errors = errors + (tonumber(v[2] or 0) or 0)
  end
end
if calls >= tonumber(ARGV[7]) and errors / calls >= tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', n(now), 'open_ms', n(base), 'open_until', n(now + base))
  return 'closed>open'
end
return ''
