-- Installs or refreshes an activity's stock (warm-up).
-- KEYS: 1 stock hash, 2 per-user counts hash, 3 outbox stream, 4 holds hash, 5 seat bitmap,
-- 6 documents hash (a real-name session's document hash -> live hold)
-- ARGV: 1 total, 2 sold, 3 per-user limit, 4 starts_at ms, 5 ends_at ms, 6 fencing token (0:
--   unfenced), 7 number of user/count pairs u, 8 the session's tiers "id:stock,..." in spec
--   order ('' for a plain sale), 9 its quotas "id:cap:t.t;..." (docs/adr/0021), 10 its seat
--   map "tier:start:len:section:row:from;..." ('' for none), then u
--   user/count pairs, then hold id/record pairs to adopt: holds of live orders that the stock
--   backend lost, installed as confirmed ("C|user|qty|order|created|expires[|t:q,...[|holders]]") unless
--   a hold with that id is already here (in any state).
-- Returns {0} on success, {1, held_plus_sold} if total is below what is already held or sold
-- (adopted holds included), {2, newest_fence} if the fencing token is below the highest one
-- the activity was loaded with, {3, tier, held_plus_sold} if a tier's stock is below its units
-- held or sold (a tier left out counts as stock 0), {4} if the seat map changes while seats are
-- taken, {5, seat bit} if an adopted hold's seat is held by another hold (or by two adopted
-- ones), {6, hold id} if an adopted hold's holder's document holds a ticket of another hold
-- (or of two adopted ones); then nothing changed. An adopted hold's seats and documents are
-- taken. A fresh load (no stock hash) starts with no documents.
local total = tonumber(ARGV[1])
local fence = tonumber(ARGV[6])
local nusers = tonumber(ARGV[7])
local first_adopt = 11 + 2 * nusers
if fence > 0 then
  local newest = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
  if fence < newest then
    return {2, newest}
  end
end
local adopt, adopted, tier_adopted = {}, 0, {}
for i = first_adopt, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[4], ARGV[i]) == 0 then
    local user, qty = string.match(ARGV[i + 1], '^.|([^|]*)|([^|]*)|')
    adopt[#adopt + 1] = {ARGV[i], ARGV[i + 1], user, tonumber(qty)}
    adopted = adopted + tonumber(qty)
    local lines = string.match(ARGV[i + 1], '^.|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)')
    for part in string.gmatch(lines or '', '[^,]+') do
      local t, q = string.match(part, '^(%d+):(%d+)')
      tier_adopted[t] = (tier_adopted[t] or 0) + tonumber(q)
    end
  end
end
-- Tiers: the new ones in order with their stock; each old tier's held and sold must fit.
local new_ids, new_stock, old_taken = {}, {}, {}
for id, stock in string.gmatch(ARGV[8], '([^:,]+):([^,]+)') do
  new_ids[#new_ids + 1] = id
  new_stock[id] = tonumber(stock)
end
local old = redis.call('HGET', KEYS[1], 'tiers') or ''
local old_ids = {}
for id in string.gmatch(old, '[^,]+') do
  old_ids[#old_ids + 1] = id
  local v = redis.call('HMGET', KEYS[1], 't' .. id .. 'h', 't' .. id .. 's')
  old_taken[id] = {tonumber(v[1] or '0'), tonumber(v[2] or '0')}
end
for id, n in pairs(tier_adopted) do
  local t = old_taken[id] or {0, 0}
  old_taken[id] = {t[1], t[2] + n}
end
for id, t in pairs(old_taken) do
  if t[1] + t[2] > (new_stock[id] or 0) then
    return {3, tonumber(id), t[1] + t[2]}
  end
end
-- The seat map: a new one only while no seat is taken; adopted holds' seats as {block, bit}.
local old_map = redis.call('HGET', KEYS[1], 'seatmap') or ''
local new_map = ARGV[10]
if new_map ~= old_map and redis.call('BITCOUNT', KEYS[5]) > 0 then
  return {4}
end
local map, seat_bits = {}, {}
for b in string.gmatch(new_map, '[^;]+') do
  local t, st0, len, sec, row, from = string.match(b, '^(%d+):(%d+):(%d+):([^:]+):([^:]+):(%d+)$')
  map[#map + 1] = {t, tonumber(st0), tonumber(len), sec, row, tonumber(from)}
end
for _, h in ipairs(adopt) do
  local lines = string.match(h[2], '^.|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)') or ''
  for part in string.gmatch(lines, '[^,]+') do
    local t, named = string.match(part, '^(%d+):%d+:([^:]+)$')
    if named then
      for id in string.gmatch(named, '[^;]+') do
        local sec, row, num = string.match(id, '^([^-]+)-([^-]+)-(%d+)$')
        num = tonumber(num)
        for j, b in ipairs(map) do
          if b[1] == t and b[4] == sec and b[5] == row and num >= b[6] and num < b[6] + b[3] then
            seat_bits[#seat_bits + 1] = {j, b[2] + num - b[6]}
          end
        end
      end
    end
  end
end
local claimed = {}
for _, sb in ipairs(seat_bits) do
  local busy = new_map == old_map and redis.call('GETBIT', KEYS[5], sb[2]) == 1
  if busy or claimed[sb[2]] then return {5, sb[2]} end
  claimed[sb[2]] = true
end
local exists = redis.call('EXISTS', KEYS[1]) == 1
-- Adopted holds' documents: free (a fresh load has none yet), each in one adopted hold.
local doc_claims, doc_owner = {}, {}
for _, h in ipairs(adopt) do
  local htext = string.match(h[2], '^.|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|(.*)$') or ''
  for d in string.gmatch(htext, '[^:;]*:[^:;]*:(%x+):[^;]*') do
    local cur = exists and redis.call('HGET', KEYS[6], d)
    if (cur and cur ~= h[1]) or doc_owner[d] then return {6, h[1]} end
    doc_owner[d] = h[1]
    doc_claims[#doc_claims + 1] = d
    doc_claims[#doc_claims + 1] = h[1]
  end
end
local held, sold = 0, tonumber(ARGV[2])
if exists then
  local v = redis.call('HMGET', KEYS[1], 'held', 'sold')
  held, sold = tonumber(v[1]), tonumber(v[2])
end
if total < held + sold + adopted then
  return {1, held + sold + adopted}
end
redis.pcall('XGROUP', 'CREATE', KEYS[3], 'relay', '0', 'MKSTREAM')
if not exists then
  redis.call('DEL', KEYS[6])
  redis.call('HSET', KEYS[1], 'held', 0, 'sold', ARGV[2])
  for i = 11, first_adopt - 1, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
for _, h in ipairs(adopt) do
  redis.call('HSET', KEYS[4], h[1], h[2])
  redis.call('HINCRBY', KEYS[2], h[3], h[4])
end
sold = sold + adopted
redis.call('HSET', KEYS[1], 'total', total, 'limit', ARGV[3], 'start', ARGV[4], 'end', ARGV[5],
  'sold', sold, 'avail', total - held - sold)
if fence > 0 then
  redis.call('HSET', KEYS[1], 'fence', ARGV[6])
end
if new_map ~= old_map then
  redis.call('DEL', KEYS[5])
  local j = 1
  while redis.call('HDEL', KEYS[1], 'sf' .. j) == 1 do j = j + 1 end
  -- The old map's row index goes with it.
  for b in string.gmatch(old_map, '[^;]+') do
    local sec, row = string.match(b, '^%d+:%d+:%d+:([^:]+):([^:]+):%d+$')
    if sec then redis.call('HDEL', KEYS[1], 'sr:' .. sec .. '-' .. row) end
  end
  redis.call('HDEL', KEYS[1], 'srx')
  if new_map == '' then
    redis.call('HDEL', KEYS[1], 'seatmap')
  else
    redis.call('HSET', KEYS[1], 'seatmap', new_map)
    for k, b in ipairs(map) do redis.call('HSET', KEYS[1], 'sf' .. k, b[3]) end
  end
end
-- The row index of the map, for a release to find its seats' blocks without reading the whole
-- map: 'sr:<section>-<row>' = "j:tier:start:len:from;..." per row, and 'srx' once it is built
-- (a map installed before the index existed gets it at its next load).
if new_map ~= '' and redis.call('HEXISTS', KEYS[1], 'srx') == 0 then
  local idx, order = {}, {}
  for k, b in ipairs(map) do
    local r = 'sr:' .. b[4] .. '-' .. b[5]
    if not idx[r] then idx[r] = {}; order[#order + 1] = r end
    idx[r][#idx[r] + 1] = k .. ':' .. b[1] .. ':' .. b[2] .. ':' .. b[3] .. ':' .. b[6]
  end
  for _, r in ipairs(order) do redis.call('HSET', KEYS[1], r, table.concat(idx[r], ';')) end
  redis.call('HSET', KEYS[1], 'srx', 1)
end
if #doc_claims > 0 then redis.call('HSET', KEYS[6], unpack(doc_claims)) end
for _, sb in ipairs(seat_bits) do
  redis.call('SETBIT', KEYS[5], sb[2], 1)
  redis.call('HINCRBY', KEYS[1], 'sf' .. sb[1], -1)
end
for _, id in ipairs(old_ids) do
  if not new_stock[id] then
    redis.call('HDEL', KEYS[1], 't' .. id, 't' .. id .. 'h', 't' .. id .. 's')
  end
end
for _, id in ipairs(new_ids) do
  local t = old_taken[id] or {0, 0}
  redis.call('HSET', KEYS[1], 't' .. id, new_stock[id], 't' .. id .. 'h', t[1],
    't' .. id .. 's', t[2])
end
if #new_ids > 0 then
  local ids = {}
  for j, id in ipairs(new_ids) do ids[j] = id end
  redis.call('HSET', KEYS[1], 'tiers', table.concat(ids, ','), 'quotas', ARGV[9])
else
  redis.call('HDEL', KEYS[1], 'tiers', 'quotas')
end
return {0}
