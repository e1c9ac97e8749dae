-- refund.lua: refund a transaction, answering once per idempotency key. A
-- transaction is refunded at most once: refunding it again under another
-- key answers the first refund's ID and applies nothing. A transaction the
-- provider never issued is not refunded: the answer says so,
-- {"refund_id":"","refunded":false}. With no transaction ID the call
-- refunds the charge answered 200 under the charge key; while that charge
-- is held in progress it answers 409 in progress; with no such charge it
-- answers that nothing was refunded. (prelude.lua is prepended.)
--
-- KEYS[1], KEYS[2], ARGV[1] to ARGV[3] as in prelude.lua
-- KEYS[3] the provider's ledger:   {sim:payment}:ledger
-- KEYS[4] the order's ledger:      {sim:payment}:ledger:order:<order_id>
-- KEYS[5] the transaction hash:    {sim:payment}:transaction:<transaction_id>,
--         for a refund by key the ID the charge key gives
-- KEYS[6] the charge key's answer hash: {sim:payment}:answer:charge:<charge key>
-- KEYS[7] the charge key's marker: {sim:payment}:inprogress:charge:<charge key>
-- ARGV[4] the refund ID
-- ARGV[5] the ledger entry as JSON
-- ARGV[6] "1" for a refund by key (no transaction ID)
-- ARGV[7] "1" to answer success and apply nothing (broken mode
--         drop-compensations)
-- ARGV[8] the nothing-refunded body, {"refund_id":"","refunded":false}
-- ARGV[9] the success body, {"refund_id": ARGV[4]}
--
-- Returns {status, body}: the first answer given to the key, or 409 in
-- progress.
local prev = settled()
if prev then
  return prev
end
if ARGV[6] == '1' and redis.call('HGET', KEYS[6], 'status') ~= '200' then
  if redis.call('EXISTS', KEYS[6]) == 0 and redis.call('EXISTS', KEYS[7]) == 1 then
    return busy()
  end
  return answer(200, ARGV[8])
end
if ARGV[7] == '1' then
  return answer(200, ARGV[9])
end
if redis.call('EXISTS', KEYS[5]) == 0 then
  return answer(200, ARGV[8])
end
local refunded = redis.call('HGET', KEYS[5], 'refund')
-- A provider that forgets keys (ARGV[2]) refunds a refunded one again.
if refunded and ARGV[2] ~= '1' then
  return answer(200, '{"refund_id":"' .. refunded .. '"}')
end
redis.call('HSET', KEYS[5], 'refund', ARGV[4])
append_entry(KEYS[3], KEYS[4], ARGV[5])
return answer(200, ARGV[9])
