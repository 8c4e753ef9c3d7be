-- KEYS: 1 entry hash. ARGV: 1 request hash, 2 ttl ms.
-- Returns {0} new, {1} in progress, {2, status, body} completed, {3} mismatch.
local v = redis.call('HMGET', KEYS[1], 'hash', 'state', 'status', 'body')
if not v[1] then
  redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'state', 'pending')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {0}
end
if v[1] ~= ARGV[1] then return {3} end
if v[2] == 'done' then return {2, v[3], v[4]} end
return {1}
