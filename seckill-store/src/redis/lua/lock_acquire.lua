-- KEYS: 1 lock key, 2 fence counter. ARGV: 1 owner, 2 ttl ms.
-- Returns the fencing token, or false if held by someone else. The token is above every
-- earlier one of the key and at least Redis's clock in microseconds, so it keeps rising when
-- Redis restarts without its data (the fences storage keeps are not reset with it).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', KEYS[2]) or '0')
  local token = math.max(last + 1, now)
  redis.call('SET', KEYS[2], string.format('%d', token))
  return token
end
return false
