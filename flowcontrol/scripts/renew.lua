-- renew.lua: a running attempt extends its slot (a heartbeat), while the
-- slot is still the attempt's.
--
-- KEYS[1]  holders     of:flow:{c:<step>:<field>:<value>}:h
-- KEYS[2]  nonces      of:flow:{c:...}:n
-- ARGV[1]  instance ID
-- ARGV[2]  attempt ID
-- ARGV[3]  lease, ms
--
-- Returns 1 when renewed, 0 when the slot is no longer the attempt's.
local function n(x) return string.format('%.0f', x) end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], n(now + lease), ARGV[1])
redis.call('PEXPIRE', KEYS[1], n(lease * 2))
redis.call('PEXPIRE', KEYS[2], n(lease * 2))
return 1
