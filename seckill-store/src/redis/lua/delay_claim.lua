-- Claims up to ARGV[2] due items: their score moves to the lease's end, the lease hash keeps
-- the original due time and the claim's token.
-- KEYS: 1 due zset, 2 lease hash, 3 token counter. ARGV: 1 now ms, 2 max, 3 lease ms.
-- Returns {{id, due_ms, token}, ...}.
local now = tonumber(ARGV[1])
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[2]))
local out = {}
for i = 1, #items, 2 do
  local id, score = items[i], items[i + 1]
  local due = score
  local lease = redis.call('HGET', KEYS[2], id)
  if lease then due = string.match(lease, '^([^:]*):') end
  local token = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[2], id, due .. ':' .. token)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
  out[#out + 1] = {id, due, token}
end
return out
