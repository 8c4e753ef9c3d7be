-- Rate charges that buyers of several stock buckets share (a client address), kept on the
-- activity's bucket 0 (docs/adr/0020); the same GCRA step as stock_reserve.lua.
-- KEYS: 1 rate hash. ARGV: 1 'charge' or 'refund', 2 now us, then triples (key, interval us,
-- tolerance us).
-- charge: all or none; returns {0} charged, or {1, retry_after_us} (nothing charged).
-- refund: gives back one request of each key (its reserve took nothing); returns {0}.
local now = tonumber(ARGV[2])
local keys = {}
for j = 3, #ARGV, 3 do keys[#keys + 1] = ARGV[j] end
local v = redis.call('HMGET', KEYS[1], unpack(keys))
local new = {}
for j = 3, #ARGV, 3 do
  local i = j / 3
  local k, interval, tolerance = ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  local tat = new[k] or tonumber(v[i]) or now
  if ARGV[1] == 'refund' then
    new[k] = tat - interval
  else
    if tat < now then tat = now end
    local next_tat = tat + interval
    local allow_at = next_tat - tolerance - interval
    if allow_at > now then return {1, allow_at - now} end
    new[k] = next_tat
  end
end
local w = {}
for k, t in pairs(new) do
  w[#w + 1] = k
  w[#w + 1] = string.format('%d', t)
end
redis.call('HSET', KEYS[1], unpack(w))
return {0}
