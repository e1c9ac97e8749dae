-- reserve.lua: reserve stock for an order once per idempotency key, at one
-- warehouse, from that warehouse's stock hash. A SKU is limited when it has
-- a field in the stock hash, or when ARGV[8] gives an initial stock (the
-- field is then created from it); other SKUs are unlimited. Either every limited SKU has enough units and all are taken,
-- or none is taken and the answer is out_of_stock. (prelude.lua is
-- prepended.)
--
-- KEYS[1], KEYS[2], ARGV[1] to ARGV[3] as in prelude.lua
-- KEYS[3] the provider's ledger:   {sim:inventory}:ledger
-- KEYS[4] the order's ledger:      {sim:inventory}:ledger:order:<order_id>
-- KEYS[5] the warehouse's stock hash: {sim:inventory}:stock[:wh:<warehouse>]
--         (sku -> units available)
-- KEYS[6] the initial stock:       {sim:inventory}:initial_stock
-- KEYS[7] the reservation hash:    {sim:inventory}:reservation:<reservation_id>
-- ARGV[4] the success body, {"reservation_id": ...}
-- ARGV[5] the out-of-stock body, {"error": "out_of_stock"}
-- ARGV[6] the ledger entry as JSON
-- ARGV[7] the order ID
-- ARGV[8] the initial stock per SKU; 0 or less leaves new SKUs unlimited
-- ARGV[9] "1" to answer out_of_stock whatever the stock (a decline fault)
-- ARGV[10] "1" to reserve what there is even when declining (broken mode
--          apply-declines): the answer stays out_of_stock
-- ARGV[11] the warehouse, or "" for the default one
-- ARGV[12], ARGV[13], ... pairs of sku and units, each sku once
--
-- Returns {status, body}: the first answer given to the key, 200 with the
-- success body or 409 with the out-of-stock body; or 409 in progress.
local prev = settled()
if prev then
  return prev
end

local initial = tonumber(ARGV[8])
if initial > 0 then
  redis.call('SET', KEYS[6], initial)
end

local declined = ARGV[9] == '1'
local limited = {}
for i = 12, #ARGV, 2 do
  local available = redis.call('HGET', KEYS[5], ARGV[i])
  if available then
    available = tonumber(available)
  elseif initial > 0 then
    available = initial
  end
  if available then
    if available < tonumber(ARGV[i + 1]) then
      declined = true
    end
    limited[#limited + 1] = {i, available}
  end
end
if declined and ARGV[10] ~= '1' then
  return answer(409, ARGV[5])
end

redis.call('HSET', KEYS[7], 'order_id', ARGV[7], 'state', 'reserved')
if ARGV[11] ~= '' then
  redis.call('HSET', KEYS[7], 'warehouse', ARGV[11])
end
for _, l in ipairs(limited) do
  local sku = ARGV[l[1]]
  local take = math.max(0, math.min(l[2], tonumber(ARGV[l[1] + 1])))
  redis.call('HSETNX', KEYS[5], sku, initial)
  if take > 0 then
    redis.call('HINCRBY', KEYS[5], sku, -take)
    redis.call('HSET', KEYS[7], 'took:' .. sku, take)
  end
end
append_entry(KEYS[3], KEYS[4], ARGV[6])
if declined then
  return answer(409, ARGV[5])
end
return answer(200, ARGV[4])
