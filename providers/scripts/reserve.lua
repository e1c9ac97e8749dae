-- reserve.lua: reserve stock for an order once per idempotency key. A key
-- seen before gets its stored first answer back and nothing is applied
-- again. A SKU is limited when it has a field in the stock hash, or when
-- ARGV[5] gives an initial stock (the field is then created from it); other
-- SKUs are unlimited. Either every limited SKU has enough units and all are
-- taken, or none is taken and the answer is out_of_stock.
--
-- KEYS[1] the key's answer hash:   {sim:inventory}:answer:reserve:<idempotency key>
-- KEYS[2] the provider's ledger:   {sim:inventory}:ledger
-- KEYS[3] the order's ledger:      {sim:inventory}:ledger:order:<order_id>
-- KEYS[4] the stock hash:          {sim:inventory}:stock (sku -> units available)
-- KEYS[5] the initial stock:       {sim:inventory}:initial_stock
-- KEYS[6] the reservation hash:    {sim:inventory}:reservation:<reservation_id>
-- ARGV[1] the success body, {"reservation_id": ...}
-- ARGV[2] the out-of-stock body, {"error": "out_of_stock"}
-- ARGV[3] the ledger entry as JSON
-- ARGV[4] the order ID
-- ARGV[5] the initial stock per SKU; 0 or less leaves new SKUs unlimited
-- ARGV[6] "1" to answer out_of_stock whatever the stock (a decline fault)
-- ARGV[7], ARGV[8], ... pairs of sku and units, each sku once
--
-- Returns {status, body}: the first answer given to the key, 200 with the
-- success body or 409 with the out-of-stock body.
local prev = redis.call('HMGET', KEYS[1], 'status', 'body')
if prev[1] then
  return {tonumber(prev[1]), prev[2]}
end

local function answer(status, body)
  redis.call('HSET', KEYS[1], 'status', status, 'body', body)
  return {status, body}
end

local initial = tonumber(ARGV[5])
if initial > 0 then
  redis.call('SET', KEYS[5], initial)
end
if ARGV[6] == '1' then
  return answer(409, ARGV[2])
end

local limited = {}
for i = 7, #ARGV, 2 do
  local available = redis.call('HGET', KEYS[4], ARGV[i])
  if available then
    available = tonumber(available)
  elseif initial > 0 then
    available = initial
  end
  if available then
    if available < tonumber(ARGV[i + 1]) then
      return answer(409, ARGV[2])
    end
    limited[#limited + 1] = i
  end
end

redis.call('HSET', KEYS[6], 'order_id', ARGV[4], 'state', 'reserved')
for _, i in ipairs(limited) do
  redis.call('HSETNX', KEYS[4], ARGV[i], initial)
  redis.call('HINCRBY', KEYS[4], ARGV[i], -tonumber(ARGV[i + 1]))
  redis.call('HSET', KEYS[6], 'took:' .. ARGV[i], ARGV[i + 1])
end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[3])
return answer(200, ARGV[1])
