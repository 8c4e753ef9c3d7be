-- GCRA on the server's clock (every node agrees on time).
-- KEYS: 1 the key's theoretical arrival time (microseconds).
-- ARGV: 1 emission interval us, 2 burst, 3 cost.
-- Returns {1} allowed, or {0, retry_after_us}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tolerance = interval * (burst - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance - interval
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX',
  math.ceil((new_tat - now) / 1000) + 1)
return {1}
