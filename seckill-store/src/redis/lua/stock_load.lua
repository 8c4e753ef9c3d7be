-- Installs or refreshes an activity's stock (warm-up).
-- KEYS: 1 stock hash, 2 per-user counts hash, 3 outbox stream
-- ARGV: 1 total, 2 sold, 3 per-user limit, 4 starts_at ms, 5 ends_at ms, then user/count pairs
-- Returns {0} on success, {1, held_plus_sold} if total is below what is already held or sold.
local total = tonumber(ARGV[1])
redis.pcall('XGROUP', 'CREATE', KEYS[3], 'relay', '0', 'MKSTREAM')
if redis.call('EXISTS', KEYS[1]) == 1 then
  local v = redis.call('HMGET', KEYS[1], 'held', 'sold')
  local taken = tonumber(v[1]) + tonumber(v[2])
  if total < taken then
    return {1, taken}
  end
  redis.call('HSET', KEYS[1], 'total', total, 'limit', ARGV[3], 'start', ARGV[4],
    'end', ARGV[5], 'avail', total - taken)
  return {0}
end
redis.call('HSET', KEYS[1], 'total', total, 'avail', total - tonumber(ARGV[2]), 'held', 0,
  'sold', ARGV[2], 'limit', ARGV[3], 'start', ARGV[4], 'end', ARGV[5])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return {0}
