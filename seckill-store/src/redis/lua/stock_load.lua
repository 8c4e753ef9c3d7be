-- Installs or refreshes an activity's stock (warm-up).
-- KEYS: 1 stock hash, 2 per-user counts hash, 3 outbox stream, 4 holds hash
-- ARGV: 1 total, 2 sold, 3 per-user limit, 4 starts_at ms, 5 ends_at ms, 6 fencing token (0:
--   unfenced), 7 number of user/count
--   pairs u, then u user/count pairs, then hold id/record pairs to adopt: holds of live orders
--   that the stock backend lost, installed as confirmed ("C|user|qty|order|created|expires")
--   unless a hold with that id is already here (in any state).
-- Returns {0} on success, {1, held_plus_sold} if total is below what is already held or sold
-- (adopted holds included), {2, newest_fence} if the fencing token is below the highest one
-- the activity was loaded with; then nothing changed.
local total = tonumber(ARGV[1])
local fence = tonumber(ARGV[6])
local nusers = tonumber(ARGV[7])
local first_adopt = 8 + 2 * nusers
if fence > 0 then
  local newest = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
  if fence < newest then
    return {2, newest}
  end
end
local adopt, adopted = {}, 0
for i = first_adopt, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[4], ARGV[i]) == 0 then
    local user, qty = string.match(ARGV[i + 1], '^.|([^|]*)|([^|]*)|')
    adopt[#adopt + 1] = {ARGV[i], ARGV[i + 1], user, tonumber(qty)}
    adopted = adopted + tonumber(qty)
  end
end
local exists = redis.call('EXISTS', KEYS[1]) == 1
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
  redis.call('HSET', KEYS[1], 'held', 0, 'sold', ARGV[2])
  for i = 8, first_adopt - 1, 2 do
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
return {0}
