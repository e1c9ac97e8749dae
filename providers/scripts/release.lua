-- release.lua: release a reservation. Only the first release of a reserved
-- reservation gives its units back to limited stock and appends a ledger
-- entry; releasing again, or releasing an unknown reservation, changes
-- nothing.
--
-- KEYS[1] the reservation hash:    {sim:inventory}:reservation:<reservation_id>
-- KEYS[2] the stock hash:          {sim:inventory}:stock (sku -> units available)
-- KEYS[3] the provider's ledger:   {sim:inventory}:ledger
-- KEYS[4] the order's ledger:      {sim:inventory}:ledger:order:<order_id>
-- ARGV[1] the ledger entry as JSON
--
-- Returns 1 when this call released the reservation, else 0.
if redis.call('HGET', KEYS[1], 'state') ~= 'reserved' then
  return 0
end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 5) == 'took:' then
    redis.call('HINCRBY', KEYS[2], string.sub(fields[i], 6), fields[i + 1])
  end
end
redis.call('HSET', KEYS[1], 'state', 'released')
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[1])
return 1
