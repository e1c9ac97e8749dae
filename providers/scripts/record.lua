-- record.lua: answer a call once per idempotency key and, for an applied
-- effect, append its ledger entry. Declines are stored the same way, so a
-- repeat is declined the same way. (prelude.lua is prepended.)
--
-- KEYS[1], KEYS[2], ARGV[1] to ARGV[3] as in prelude.lua
-- KEYS[3] the provider's ledger:   {sim:<provider>}:ledger
-- KEYS[4] the order's ledger:      {sim:<provider>}:ledger:order:<order_id>
-- KEYS[5] optional: a hash to write with the effect, such as
--         {sim:payment}:transaction:<transaction_id>
-- ARGV[4] the answer's HTTP status
-- ARGV[5] the answer's JSON body
-- ARGV[6] the ledger entry as JSON, or "" when the call applies nothing
--         (a decline)
-- ARGV[7], ARGV[8], ... field and value pairs for KEYS[5]
--
-- Returns {status, body}: the first answer given to the key, or 409 in
-- progress.
local prev = settled()
if prev then
  return prev
end
if ARGV[6] ~= '' then
  append_entry(KEYS[3], KEYS[4], ARGV[6])
  if KEYS[5] and #ARGV >= 8 then
    redis.call('HSET', KEYS[5], unpack(ARGV, 7))
  end
end
return answer(tonumber(ARGV[4]), ARGV[5])
