-- Held -> Confirmed: the hold's units move from held to sold (and so do its tiers' units,
-- when the record carries lines "t:q,t:q": docs/adr/0021).
-- KEYS: 1 stock hash, 2 holds hash. ARGV: 1 hold id.
-- Returns 0 applied, 1 already confirmed, 2 refused (released), 3 unknown hold, 4 a malformed
-- record (nothing written).
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then return 3 end
local state = string.sub(rec, 1, 1)
if state == 'C' then return 1 end
if state == 'R' then return 2 end
local qty = tonumber(string.match(rec, '^.|[^|]*|([^|]*)|'))
-- The record's lines, read whole before anything is written (4: a malformed record).
-- (A real-name record has its holders after the lines: "|lines|holders"; lines may be empty.)
local lines, text = {}, string.match(rec, '^.|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)')
if text == '' then text = nil end
if text then
  for part in string.gmatch(text .. ',', '([^,]*),') do
    local t, q = string.match(part, '^(%d+):(%d+)$')
    if not t then t, q = string.match(part, '^(%d+):(%d+):[^:]+$') end
    if not t then return 4 end
    lines[#lines + 1] = {t, tonumber(q)}
  end
end
redis.call('HSET', KEYS[2], ARGV[1], 'C' .. string.sub(rec, 2))
redis.call('HINCRBY', KEYS[1], 'held', -qty)
redis.call('HINCRBY', KEYS[1], 'sold', qty)
for _, l in ipairs(lines) do
  redis.call('HINCRBY', KEYS[1], 't' .. l[1] .. 'h', -l[2])
  redis.call('HINCRBY', KEYS[1], 't' .. l[1] .. 's', l[2])
end
return 0
