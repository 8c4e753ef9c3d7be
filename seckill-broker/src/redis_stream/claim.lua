-- Hands a consumer of a group its deliveries: first entries whose holder let go (nacked or
-- dropped, marked idle long ago) or went silent for ARGV[3] ms, then new entries.
-- KEYS: 1 stream. ARGV: 1 group, 2 consumer, 3 min idle ms, 4 count.
-- Returns {{id, fields, delivery_count}, ...}.
local out = {}
local count = tonumber(ARGV[4])
local c = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', count)
for _, e in ipairs(c[2]) do
  if e[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local n = 1
    if p[1] then n = p[1][4] end
    out[#out + 1] = {e[1], e[2], n}
  end
end
local left = count - #out
if left > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', left, 'STREAMS',
    KEYS[1], '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      out[#out + 1] = {e[1], e[2], 1}
    end
  end
end
return out
