-- Claims up to COUNT outbox entries of one activity for a relay: first entries whose lease
-- (idle time in the consumer group) lapsed, then new ones.
-- KEYS: 1 outbox stream. ARGV: 1 consumer, 2 lease ms, 3 count.
-- Returns {{stream_id, payload, attempts, traceparent or ''}, ...}.
local out = {}
local count = tonumber(ARGV[3])
local c = redis.call('XAUTOCLAIM', KEYS[1], 'relay', ARGV[1], ARGV[2], '0-0', 'COUNT', count)
for _, e in ipairs(c[2]) do
  if e[2] then
    local p = redis.call('XPENDING', KEYS[1], 'relay', e[1], e[1], 1)
    local attempts = 1
    if p[1] then attempts = p[1][4] end
    out[#out + 1] = {e[1], e[2][2], attempts, e[2][4] or ''}
  end
end
local left = count - #out
if left > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', 'relay', ARGV[1], 'COUNT', left, 'STREAMS',
    KEYS[1], '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      out[#out + 1] = {e[1], e[2][2], 1, e[2][4] or ''}
    end
  end
end
return out
