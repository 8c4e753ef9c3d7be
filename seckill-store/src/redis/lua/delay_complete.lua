-- Removes a claimed item if the token is the current claim's.
-- KEYS: 1 due zset, 2 lease hash. ARGV: 1 id, 2 token. Returns 1 removed, 0 stale.
local lease = redis.call('HGET', KEYS[2], ARGV[1])
if not lease or string.match(lease, ':(%d+)$') ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
