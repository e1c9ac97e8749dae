-- lock.lua: takes or keeps the janitor's turn. The caller gets it when
-- nobody holds it, when its holder's time ran out (judged by the Redis
-- clock), or when the caller holds it already.
--
-- KEYS[1]  the turn    of:flow:janitor (string: "<worker>|<until ms>")
-- ARGV[1]  worker ID
-- ARGV[2]  how long the turn lasts, ms
--
-- Returns 1 when the caller holds the turn.
local function n(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('GET', KEYS[1])
if v then
  local owner, expiry = string.match(v, '^(.*)|(%d+)$')
  if owner and owner ~= ARGV[1] and tonumber(expiry) > now then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. n(now + tonumber(ARGV[2])), 'PX', ARGV[2])
return 1
