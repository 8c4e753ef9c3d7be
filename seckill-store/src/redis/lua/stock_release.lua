-- Held|Confirmed -> Released: units back to available, the user's quota back, and a session's
-- tiers their units (the record's lines "t:q,t:q": docs/adr/0021). Once.
-- A seated line ("t:q:seat;seat") frees its seats: their bits in the seat bitmap and their
-- blocks' free counts ('seatmap', 'sf<j>', as the reserve script keeps them).
-- A real-name hold's holders (the record's "|code:masked:hash:name;..." after its lines) give
-- their documents back: each leaves the documents hash if it still names this hold.
-- KEYS: 1 stock hash, 2 holds hash, 3 per-user counts hash, 4 seat bitmap, 5 documents hash.
-- ARGV: 1 hold id.
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
local docs = {}
if text and string.find(text, '|', 1, true) then
  local htext
  text, htext = string.match(text, '^([^|]*)|(.*)$')
  for part in string.gmatch(htext .. ';', '([^;]*);') do
    local d = string.match(part, '^%a%a:[^:]*:(%x+):.+$')
    if not d then return {4} end
    docs[#docs + 1] = d
  end
end
if text == '' then text = nil end
if text then
  for part in string.gmatch(text .. ',', '([^,]*),') do
    local t, q, named = string.match(part, '^(%d+):(%d+):([^:]+)$')
    if not t then t, q = string.match(part, '^(%d+):(%d+)$') end
    if not t then return {4} end
    lines[#lines + 1] = {t, tonumber(q), named}
  end
end
-- The seats to free, as {block, bit}, found before anything is written: each seat's row's
-- blocks from the map's row index ('sr:<section>-<row>' = "j:tier:start:len:from;...", written
-- by the load), or, for a map loaded before the index existed ('srx' unset), from the whole
-- map, read once.
local frees, rows, indexed = {}, {}, nil
local function row_blocks(r)
  if rows[r] then return rows[r] end
  if indexed == nil then
    indexed = redis.call('HEXISTS', KEYS[1], 'srx') == 1
    if not indexed then
      local j = 0
      for b in string.gmatch(redis.call('HGET', KEYS[1], 'seatmap') or '', '[^;]+') do
        j = j + 1
        local t, st0, len, bs, br, from = string.match(b, '^(%d+):(%d+):(%d+):([^:]+):([^:]+):(%d+)$')
        local k = bs .. '-' .. br
        rows[k] = rows[k] or {}
        rows[k][#rows[k] + 1] = {j, t, tonumber(st0), tonumber(len), tonumber(from)}
      end
      return rows[r] or {}
    end
  end
  if not indexed then return {} end
  local list = {}
  for e in string.gmatch(redis.call('HGET', KEYS[1], 'sr:' .. r) or '', '[^;]+') do
    local j, t, st0, len, from = string.match(e, '^(%d+):(%d+):(%d+):(%d+):(%d+)$')
    list[#list + 1] = {tonumber(j), t, tonumber(st0), tonumber(len), tonumber(from)}
  end
  rows[r] = list
  return list
end
for _, l in ipairs(lines) do
  if l[3] then
    for id in string.gmatch(l[3] .. ';', '([^;]*);') do
      local sec, row, num = string.match(id, '^([^-]+)-([^-]+)-(%d+)$')
      if not sec then return {4} end
      num = tonumber(num)
      local found = false
      for _, b in ipairs(row_blocks(sec .. '-' .. row)) do
        if b[2] == l[1] and num >= b[5] and num < b[5] + b[4] then
          frees[#frees + 1] = {b[1], b[3] + num - b[5]}
          found = true
          break
        end
      end
      if not found then return {4} end
    end
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
for _, f in ipairs(frees) do
  if redis.call('SETBIT', KEYS[4], f[2], 0) == 1 then
    redis.call('HINCRBY', KEYS[1], 'sf' .. f[1], 1)
  end
end
for _, d in ipairs(docs) do
  if redis.call('HGET', KEYS[5], d) == ARGV[1] then redis.call('HDEL', KEYS[5], d) end
end
local before = tonumber(redis.call('HGET', KEYS[1], 'avail'))
redis.call('HINCRBY', KEYS[1], 'avail', qty)
if redis.call('HINCRBY', KEYS[3], user, -qty) <= 0 then
  redis.call('HDEL', KEYS[3], user)
end
return {0, before}
