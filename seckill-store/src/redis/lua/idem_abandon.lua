-- KEYS: 1 entry hash. Forgets it if still pending.
if redis.call('HGET', KEYS[1], 'state') == 'pending' then
  redis.call('DEL', KEYS[1])
end
return 1
