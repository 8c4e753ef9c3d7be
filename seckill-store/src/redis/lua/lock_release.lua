-- KEYS: 1 lock key. ARGV: 1 owner. Returns 1 if released, 0 if not the owner.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
