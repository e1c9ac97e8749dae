-- release.lua: release a reservation, answering once per idempotency key.
-- Only the first release of a reserved reservation gives its units back to
-- the limited stock of its warehouse and appends a ledger entry; releasing
-- again, or releasing an unknown reservation, changes nothing, and every
-- release answers success. The caller read the reservation's order ID and
-- warehouse to name the keys; a reservation written since with others is
-- refused, for the caller to read again. (prelude.lua is prepended.)
--
-- KEYS[1], KEYS[2], ARGV[1] to ARGV[3] as in prelude.lua
-- KEYS[3] the reservation hash:    {sim:inventory}:reservation:<reservation_id>
-- KEYS[4] the warehouse's stock hash: {sim:inventory}:stock[:wh:<warehouse>]
-- KEYS[5] the provider's ledger:   {sim:inventory}:ledger
-- KEYS[6] the order's ledger:      {sim:inventory}:ledger:order:<order_id>
-- ARGV[4] the success body, {"released": true}
-- ARGV[5] the ledger entry as JSON
-- ARGV[6] "1" to apply nothing (broken mode drop-compensations)
-- ARGV[7] the order ID the caller read, or the body's for an unknown
--         reservation
-- ARGV[8] the warehouse the caller read ("" for the default one)
--
-- Returns {status, body}: the first answer given to the key, or 409 in
-- progress; or {0, "stale"} when the reservation's order ID or warehouse
-- is not the caller's, having been written since it read them.
local prev = settled()
if prev then
  return prev
end
local known = redis.call('HMGET', KEYS[3], 'state', 'order_id', 'warehouse')
local state = known[1]
if state and (known[2] ~= ARGV[7] or (known[3] or '') ~= ARGV[8]) then
  return {0, 'stale'}
end
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
