-- KEYS: 1 the user's "versions below" key. ARGV: 1 version, 2 ttl ms.
-- Raises the revoked-below version (never lowers it) and keeps it at least ttl.
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local v = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
if v > cur then
  redis.call('SET', KEYS[1], v, 'PX', ttl)
elseif redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
