-- KEYS: 1 the token's revocation key, 2 the user's "versions below" key. ARGV: 1 token version.
-- 1 if the token is revoked by id or by version, else 0.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 1
end
local below = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < below then
  return 1
end
return 0
