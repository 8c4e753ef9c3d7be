-- KEYS: 1 entry hash. ARGV: 1 status, 2 body. Returns 1, or 0 if the key is unknown/expired.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[1], 'body', ARGV[2])
return 1
