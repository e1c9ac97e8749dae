-- release.lua: release a reservation, answering once per idempotency key.
-- Only the first release of a reserved reservation gives its units back to
-- limited stock and appends a ledger entry; releasing again, or releasing
-- an unknown reservation, changes nothing, and every release answers
-- success. (prelude.lua is prepended.)
--
-- KEYS[1], KEYS[2], ARGV[1] to ARGV[3] as in prelude.lua
-- KEYS[3] the reservation hash:    {sim:inventory}:reservation:<reservation_id>
-- KEYS[4] the stock hash:          {sim:inventory}:stock (sku -> units available)
-- KEYS[5] the provider's ledger:   {sim:inventory}:ledger
-- KEYS[6] the order's ledger:      {sim:inventory}:ledger:order:<order_id>
-- ARGV[4] the success body, {"released": true}
-- ARGV[5] the ledger entry as JSON
-- ARGV[6] "1" to apply nothing (broken mode drop-compensations)
--
-- Returns {status, body}: the first answer given to the key, or 409 in
-- progress.
local prev = settled()
if prev then
  return prev
end
local state = redis.call('HGET', KEYS[3], 'state')
-- A provider that forgets keys (ARGV[2]) releases a released one again.
local releasable = state == 'reserved' or (state and ARGV[2] == '1')
if releasable and ARGV[6] ~= '1' then
  local fields = redis.call('HGETALL', KEYS[3])
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 5) == 'took:' then
      redis.call('HINCRBY', KEYS[4], string.sub(fields[i], 6), fields[i + 1])
    end
  end
  redis.call('HSET', KEYS[3], 'state', 'released')
  append_entry(KEYS[5], KEYS[6], ARGV[5])
end
return answer(200, ARGV[4])
