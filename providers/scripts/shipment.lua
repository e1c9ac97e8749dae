-- shipment.lua: start a long-running shipment once per idempotency key:
-- store the shipment's record and its 202 answer, and, unless it is
-- declined (it will end failed, nothing having left the warehouse), append
-- its ledger entry: the goods are committed at creation. (prelude.lua is
-- prepended.)
--
-- KEYS[1], KEYS[2], ARGV[1] to ARGV[3] as in prelude.lua
-- KEYS[3] the provider's ledger:   {sim:shipping}:ledger
-- KEYS[4] the order's ledger:      {sim:shipping}:ledger:order:<order_id>
-- KEYS[5] the shipment hash:       {sim:shipping}:shipment:<shipment_id>
-- ARGV[4] the answer's HTTP status, 202
-- ARGV[5] the answer's JSON body, {"shipment_id": ..., "status": "pending"}
-- ARGV[6] the ledger entry as JSON, or "" when the shipment applies
--         nothing (declined)
-- ARGV[7], ARGV[8], ... field and value pairs of the shipment hash
--
-- Returns {status, body}: the first answer given to the key, or 409 in
-- progress.
local prev = settled()
if prev then
  return prev
end
if ARGV[6] ~= '' then
  append_entry(KEYS[3], KEYS[4], ARGV[6])
end
redis.call('HSET', KEYS[5], unpack(ARGV, 7))
return answer(tonumber(ARGV[4]), ARGV[5])
