-- The second half of a journaled transfer (stock_lend.lua): the target bucket takes the units,
-- once per transfer id, however often it is called.
-- KEYS: 1 target stock hash, 2 target's received-transfers hash. ARGV: 1 transfer id, 2 units.
-- Returns 1 applied, 0 already applied.
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'avail', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'total', ARGV[2])
return 1
