-- Warm-up of one stock bucket of an activity of several (docs/adr/0020); the activity's total
-- is then set by stock_resize.lua on bucket 0.
-- KEYS: 1 stock hash, 2 per-user counts hash, 3 outbox stream, 4 holds hash
-- ARGV: 1 sold (bucket 0 of a fresh activity: the database's sold units; else 0), 2 per-user
-- limit, 3 starts_at ms, 4 ends_at ms, 5 fencing token (0: unfenced), 6 number of buckets,
-- 7 number of user/count pairs u, then u user/count pairs (this bucket's buyers; installed
-- only when the bucket is new), then hold id/record pairs to adopt (this bucket's buyers' holds
-- the backend lost), installed as confirmed unless a hold with that id is already here: their
-- units count as sold and come out of `avail` (which may go below 0 until the resize).
-- Returns {0, units adopted}, or {2, newest_fence} if the token is stale (nothing changed).
local fence = tonumber(ARGV[5])
if fence > 0 then
  local newest = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
  if fence < newest then return {2, newest} end
end
local nusers = tonumber(ARGV[7])
local first_adopt = 8 + 2 * nusers
redis.pcall('XGROUP', 'CREATE', KEYS[3], 'relay', '0', 'MKSTREAM')
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- `atotal` (bucket 0 only) is the activity's total: the buckets' totals plus units in transit.
  redis.call('HSET', KEYS[1], 'held', 0, 'sold', ARGV[1], 'total', ARGV[1], 'avail', 0,
    'atotal', ARGV[1])
  for i = 8, first_adopt - 1, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
local adopted = 0
for i = first_adopt, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[4], ARGV[i]) == 0 then
    local user, qty = string.match(ARGV[i + 1], '^.|([^|]*)|([^|]*)|')
    redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
    redis.call('HINCRBY', KEYS[2], user, tonumber(qty))
    adopted = adopted + tonumber(qty)
  end
end
if adopted > 0 then
  redis.call('HINCRBY', KEYS[1], 'sold', adopted)
  redis.call('HINCRBY', KEYS[1], 'avail', -adopted)
end
redis.call('HSET', KEYS[1], 'limit', ARGV[2], 'start', ARGV[3], 'end', ARGV[4],
  'buckets', ARGV[6])
if fence > 0 then redis.call('HSET', KEYS[1], 'fence', ARGV[5]) end
return {0, adopted}
