-- KEYS: 1 the phone's code hash. ARGV: 1 code, 2 max tries.
-- {0} no code; {1} valid (the code is dropped); {2, left} wrong (dropped when left is 0).
local code = redis.call('HGET', KEYS[1], 'code')
if not code then
  return {0}
end
if code == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {1}
end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
local left = tonumber(ARGV[2]) - tries
if left <= 0 then
  redis.call('DEL', KEYS[1])
  left = 0
end
return {2, left}
