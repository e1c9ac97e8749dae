-- record.lua: answer a call once per idempotency key and, for a success,
-- append its ledger entry. A key seen before gets its stored first answer
-- back and nothing is applied again. Declines are stored the same way, so a
-- repeat is declined the same way.
--
-- KEYS[1] the key's answer hash:   {sim:<provider>}:answer:<op>:<idempotency key>
-- KEYS[2] the provider's ledger:   {sim:<provider>}:ledger
-- KEYS[3] the order's ledger:      {sim:<provider>}:ledger:order:<order_id>
-- ARGV[1] the answer's HTTP status
-- ARGV[2] the answer's JSON body
-- ARGV[3] the ledger entry as JSON, or "" to append none (a decline)
--
-- Returns {status, body}: the first answer given to the key.
local prev = redis.call('HMGET', KEYS[1], 'status', 'body')
if prev[1] then
  return {tonumber(prev[1]), prev[2]}
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'body', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('RPUSH', KEYS[3], ARGV[3])
end
return {tonumber(ARGV[1]), ARGV[2]}
