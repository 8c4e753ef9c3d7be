-- KEYS: 1 lock key, 2 fence counter. ARGV: 1 owner, 2 ttl ms.
-- Returns the fencing token, or false if held by someone else.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
