-- prelude.lua: prepended to every script that answers a call under an
-- idempotency key (record, reserve, release, refund), for what they share:
-- a key answers its first answer again, and a key held in progress by
-- another call answers 409 until that call applies its effect.
--
-- KEYS[1] the key's answer hash:   {sim:<provider>}:answer:<op>:<idempotency key>
-- KEYS[2] the key's marker:        {sim:<provider>}:inprogress:<op>:<idempotency key>
-- ARGV[1] the token of this call's hold (see hold.lua), or "" when it holds none
-- ARGV[2] "1" when the provider forgets keys (broken mode ignore-keys): no
--         stored answer and no marker is looked at, so the effect is applied again
-- ARGV[3] the in-progress body, {"error": "idempotency_key_in_use"}
--
-- The scripts' own KEYS and ARGV follow these.

-- settled returns the answer a call gets without applying anything: the
-- key's stored first answer, or 409 in progress while another call holds
-- the key (not stored: it is no answer to the key). It returns nil when the
-- call may apply its effect.
local function settled()
  if ARGV[2] == '1' then
    return nil
  end
  local prev = redis.call('HMGET', KEYS[1], 'status', 'body')
  if prev[1] then
    return {tonumber(prev[1]), prev[2]}
  end
  local holder = redis.call('GET', KEYS[2])
  if holder and holder ~= ARGV[1] then
    return {409, ARGV[3]}
  end
  return nil
end

-- end_hold ends this call's hold of the key, if it holds it still.
local function end_hold()
  if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('DEL', KEYS[2])
  end
end

-- answer stores the key's first answer, ends this call's hold, and returns
-- {status, body}.
local function answer(status, body)
  redis.call('HSETNX', KEYS[1], 'status', status)
  redis.call('HSETNX', KEYS[1], 'body', body)
  end_hold()
  return {status, body}
end

-- busy answers 409 in progress for what this call waits on, storing
-- nothing, and ends this call's hold.
local function busy()
  end_hold()
  return {409, ARGV[3]}
end

-- append_entry appends a ledger entry to the provider's and the order's
-- ledgers.
local function append_entry(ledger, order_ledger, entry)
  redis.call('RPUSH', ledger, entry)
  redis.call('RPUSH', order_ledger, entry)
end

