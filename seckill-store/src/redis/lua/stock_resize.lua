-- Sets the total of an activity of several stock buckets (docs/adr/0020), on bucket 0 after
-- the load has gathered every other bucket's available units into it, then spreads what is
-- available evenly: bucket 0 lends each other bucket its share (journaled as stock_lend.lua;
-- the caller completes the transfers).
-- KEYS: 1 bucket 0's stock hash, 2 its journal hash. ARGV: 1 total, 2 fencing token, then one
-- transfer id per other bucket (bucket 1, 2, ...).
-- Returns {0, share} (units lent to each other bucket), {1, held_plus_sold} if the total is
-- below what is held or sold, {2, newest_fence} if the token is stale; then nothing changed.
local total, fence = tonumber(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'avail', 'atotal', 'fence')
if fence > 0 and fence < tonumber(v[3] or '0') then return {2, tonumber(v[3])} end
local avail, atotal = tonumber(v[1]), tonumber(v[2])
local delta = total - atotal
if avail + delta < 0 then return {1, atotal - avail} end
avail = avail + delta
redis.call('HINCRBY', KEYS[1], 'total', delta)
redis.call('HSET', KEYS[1], 'atotal', total)
local k = #ARGV - 1
local share = 0
if avail > 0 then share = math.floor(avail / k) end
if share > 0 then
  for j = 3, #ARGV do
    redis.call('HSET', KEYS[2], ARGV[j], (j - 2) .. '|' .. share)
  end
  avail = avail - share * (k - 1)
  redis.call('HINCRBY', KEYS[1], 'total', -share * (k - 1))
end
redis.call('HSET', KEYS[1], 'avail', avail)
return {0, share}
