-- The atomic reserve step, for a batch of requests against one activity, in order.
-- KEYS: 1 stock hash, 2 holds hash, 3 per-user counts hash, 4 request-id hash, 5 outbox stream
-- ARGV: 1 n, then 7 per request: user, qty, request_id, hold_id, order_id, expires ms, now ms
-- A hold record is "S|user|qty|order_id|created_ms|expires_ms" with S = H(eld), C(onfirmed),
-- R(eleased). Ids stay strings: Lua numbers are doubles.
-- Returns one entry per request:
--   {0, hold_id, record, replayed}  reserved (replayed = 1 for a known request id)
--   {1} sold out   {2, available} insufficient   {3, held, limit} limit exceeded
--   {4} not started   {5} ended   {6} not loaded   {7} invalid quantity or time
local n = tonumber(ARGV[1])
local out = {}
local s = redis.call('HMGET', KEYS[1], 'avail', 'held', 'limit', 'start', 'end')
if not s[1] then
  for i = 1, n do out[i] = {6} end
  return out
end
local avail, held = tonumber(s[1]), tonumber(s[2])
local limit, st, en = tonumber(s[3]), tonumber(s[4]), tonumber(s[5])
local changed = false
for i = 1, n do
  local b = 1 + (i - 1) * 7
  local user, qty, rid = ARGV[b + 1], tonumber(ARGV[b + 2]), ARGV[b + 3]
  local now = tonumber(ARGV[b + 7])
  local rkey = user .. ':' .. rid
  local prev = redis.call('HGET', KEYS[4], rkey)
  if not qty or qty < 1 or qty % 1 ~= 0 or not now then
    out[i] = {7}
  elseif prev then
    out[i] = {0, prev, redis.call('HGET', KEYS[2], prev), 1}
  elseif now < st then
    out[i] = {4}
  elseif now >= en then
    out[i] = {5}
  else
    local has = tonumber(redis.call('HGET', KEYS[3], user) or '0')
    if has + qty > limit then
      out[i] = {3, has, limit}
    elseif avail <= 0 then
      out[i] = {1}
    elseif avail < qty then
      out[i] = {2, avail}
    else
      local hid = ARGV[b + 4]
      avail = avail - qty
      held = held + qty
      changed = true
      redis.call('HINCRBY', KEYS[3], user, qty)
      redis.call('HSET', KEYS[4], rkey, hid)
      local rec = 'H|' .. user .. '|' .. ARGV[b + 2] .. '|' .. ARGV[b + 5] .. '|'
        .. ARGV[b + 7] .. '|' .. ARGV[b + 6]
      redis.call('HSET', KEYS[2], hid, rec)
      redis.call('XADD', KEYS[5], '*', 'h', hid .. '|' .. rec)
      out[i] = {0, hid, rec, 0}
    end
  end
end
if changed then
  redis.call('HSET', KEYS[1], 'avail', avail, 'held', held)
end
return out
