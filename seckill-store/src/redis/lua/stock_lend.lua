-- One stock bucket lends units to another (docs/adr/0020): the first half of a journaled
-- transfer. The units leave this bucket's `avail` and `total` and are recorded in its journal
-- until the target has them (stock_receive.lua) and the caller deletes the entry; an entry
-- left by a crash is completed by the next load or borrow (in transit, counted by snapshot).
-- KEYS: 1 donor stock hash, 2 donor journal hash (transfer id -> "target|units").
-- ARGV: 1 transfer id, 2 target bucket, 3 want: a number of units missing at the target (lends
-- max(want, half of what it has), at most what it has), or 'all' (lends `avail` as it is, even
-- below 0: the target then covers the shortfall).
-- Returns {units lent, avail after}; {0, avail} when it lends nothing.
local avail = tonumber(redis.call('HGET', KEYS[1], 'avail') or '0')
local take
if ARGV[3] == 'all' then
  take = avail
else
  take = math.floor(avail / 2)
  local want = tonumber(ARGV[3])
  if want > take then take = want end
  if take > avail then take = avail end
  if take < 0 then take = 0 end
end
if take == 0 then return {0, avail} end
redis.call('HINCRBY', KEYS[1], 'avail', -take)
redis.call('HINCRBY', KEYS[1], 'total', -take)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. take)
return {take, avail - take}
