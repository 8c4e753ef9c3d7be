-- KEYS: 1 the revocation feed (a stream), 2 the longest revocation ttl logged (ms).
-- ARGV: 1 kind ("t" token, "b" versions below), 2 user, 3 token id or version, 4 ttl ms,
-- 5 the channel that wakes the caches.
-- Appends the revocation with its end time, trims what has surely expired (older than the
-- longest ttl), announces it; returns its id.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
local longest = tonumber(redis.call('GET', KEYS[2]) or '0')
if ttl > longest then
  longest = ttl
  redis.call('SET', KEYS[2], ttl)
end
local id = redis.call('XADD', KEYS[1], 'MINID', '~', tostring(now - longest), '*',
  'k', ARGV[1], 'u', ARGV[2], 'x', ARGV[3], 'until', tostring(now + ttl))
redis.call('PUBLISH', ARGV[5], id)
return id
