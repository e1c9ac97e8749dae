-- hold.lua: mark a new idempotency key in progress, for a call that holds
-- its response before applying its effect (Faults.InProgressRate). A key
-- with a stored answer is not new, and a key another call holds stays its.
-- The marker expires, so a simulator that dies during its hold leaves the
-- key as new, with nothing applied.
--
-- KEYS[1] the key's answer hash:   {sim:<provider>}:answer:<op>:<idempotency key>
-- KEYS[2] the key's marker:        {sim:<provider>}:inprogress:<op>:<idempotency key>
-- ARGV[1] the hold's token
-- ARGV[2] the marker's time to live in milliseconds
--
-- Returns 1 when this call now holds the key, else 0.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
