-- delete_draft.lua: removes a draft whose API request never completed.
--
-- KEYS[1]  record hash   of:{o:<id>}
-- KEYS[2]  history list  of:{o:<id>}:h
-- ARGV[1]  only drafts created before this, Unix microseconds
--
-- Returns 1 when deleted, 0 when missing, -1 when accepted (kept),
--         -2 when too young (kept).
local cur = redis.call("HMGET", KEYS[1], "acc", "ct")
if not cur[2] then
  return 0
end
if cur[1] == "1" then
  return -1
end
if tonumber(cur[2]) >= tonumber(ARGV[1]) then
  return -2
end
redis.call("DEL", KEYS[1], KEYS[2])
return 1
