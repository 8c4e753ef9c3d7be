-- Held|Confirmed -> Released: units back to available, the user's quota back, and a session's
-- tiers their units (the record's lines "t:q,t:q": docs/adr/0021). Once.
-- KEYS: 1 stock hash, 2 holds hash, 3 per-user counts hash. ARGV: 1 hold id.
-- Returns {0, available_before} applied, {1} already released, {3} unknown hold, {4} a
-- malformed record (nothing written).
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then return {3} end
local state = string.sub(rec, 1, 1)
if state == 'R' then return {1} end
local user, qty = string.match(rec, '^.|([^|]*)|([^|]*)|')
qty = tonumber(qty)
-- The record's lines, read whole before anything is written ({4}: a malformed record).
local lines, text = {}, string.match(rec, '^.|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|(.*)$')
if text then
  for part in string.gmatch(text .. ',', '([^,]*),') do
    local t, q = string.match(part, '^(%d+):(%d+)$')
    if not t then return {4} end
    lines[#lines + 1] = {t, tonumber(q)}
  end
end
redis.call('HSET', KEYS[2], ARGV[1], 'R' .. string.sub(rec, 2))
local suffix = 's'
if state == 'H' then
  redis.call('HINCRBY', KEYS[1], 'held', -qty)
  suffix = 'h'
else
  redis.call('HINCRBY', KEYS[1], 'sold', -qty)
end
for _, l in ipairs(lines) do
  redis.call('HINCRBY', KEYS[1], 't' .. l[1] .. suffix, -l[2])
end
local before = tonumber(redis.call('HGET', KEYS[1], 'avail'))
redis.call('HINCRBY', KEYS[1], 'avail', qty)
if redis.call('HINCRBY', KEYS[3], user, -qty) <= 0 then
  redis.call('HDEL', KEYS[3], user)
end
return {0, before}
