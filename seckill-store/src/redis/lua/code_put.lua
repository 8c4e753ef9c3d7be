-- KEYS: 1 the phone's code hash. ARGV: 1 code, 2 ttl ms. Replaces the code, tries reset.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'code', ARGV[1], 'tries', 0)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
