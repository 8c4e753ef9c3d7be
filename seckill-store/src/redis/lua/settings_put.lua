-- The shared settings' compare-and-set. KEYS[1]: the settings hash (fields v, doc).
-- ARGV[1]: the version the writer read; ARGV[2]: the new document.
-- Returns {1, new version} when written, {0, current version} when the version moved.
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then
  return {0, v}
end
v = v + 1
redis.call('HSET', KEYS[1], 'v', v, 'doc', ARGV[2])
return {1, v}
