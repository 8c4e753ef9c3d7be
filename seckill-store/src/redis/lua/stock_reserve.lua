-- The atomic reserve step, for a batch of requests against one activity (or one of its stock
-- buckets, docs/adr/0020), in order.
-- KEYS: 1 stock hash, 2 holds hash, 3 per-user counts hash, 4 request-id hash, 5 outbox stream,
-- 6 rate hash (charge key -> theoretical arrival time, microseconds)
-- ARGV: 1 n, 2 bucketed (1: the activity has several buckets, so a short bucket answers {9}
-- for its caller to borrow and retry, instead of sold out or insufficient), then per request
-- 10 fields: user, qty, request_id, hold_id, order_id, expires ms, now ms, traceparent (''
-- when the buy is not traced: the outbox entry then has no 't' field), refused (microseconds
-- to wait when a charge kept elsewhere refused it, else 0), r (its rate charges); and when
-- r > 0: now us, then r triples (key, interval us, tolerance us).
-- Rate charges are GCRA steps (seckill_core::rate_limit::gcra), checked after the window and
-- before the limit and the stock; a replay charges nothing, a refused request charges none,
-- and a request sent back to borrow charges nothing yet.
-- A hold record is "S|user|qty|order_id|created_ms|expires_ms" with S = H(eld), C(onfirmed),
-- R(eleased). Ids stay strings: Lua numbers are doubles.
-- A batch reads all request ids and user counts with one HMGET each and writes holds, request
-- ids, user counts and stock with one HSET each; only the outbox takes one XADD per hold.
-- Returns one entry per request:
--   {0}                        reserved now (the caller knows the hold: it sent every field)
--   {0, hold_id, record}       a known request id: the first request's hold (a replay)
--   {1} sold out   {2, available} insufficient   {3, held, limit} limit exceeded
--   {4} not started   {5} ended   {6} not loaded   {7} invalid quantity or time
--   {8, retry_after_us} a rate charge is over its quota
--   {9, available} (bucketed only) this bucket has too few units: borrow, then send it again
local n = tonumber(ARGV[1])
local out = {}
local s = redis.call('HMGET', KEYS[1], 'avail', 'held', 'limit', 'start', 'end')
if not s[1] then
  for i = 1, n do out[i] = {6} end
  return out
end
local avail, held = tonumber(s[1]), tonumber(s[2])
local limit, st, en = tonumber(s[3]), tonumber(s[4]), tonumber(s[5])

local bucketed = ARGV[2] == '1'
local rkeys, users, base, charges = {}, {}, {}, {}
local ckeys, seen = {}, {}
local b = 3
for i = 1, n do
  base[i] = b
  users[i] = ARGV[b]
  rkeys[i] = ARGV[b] .. ':' .. ARGV[b + 2]
  local r = tonumber(ARGV[b + 9]) or 0
  if r > 0 then
    local c = {now = tonumber(ARGV[b + 10])}
    for j = 1, r do
      local k = ARGV[b + 8 + 3 * j]
      c[j] = {k, tonumber(ARGV[b + 9 + 3 * j]), tonumber(ARGV[b + 10 + 3 * j])}
      if not seen[k] then seen[k] = true; ckeys[#ckeys + 1] = k end
    end
    charges[i] = c
    b = b + 11 + 3 * r
  else
    b = b + 10
  end
end
local tats, rtouched = {}, {}
if #ckeys > 0 then
  local v = redis.call('HMGET', KEYS[6], unpack(ckeys))
  for j = 1, #ckeys do tats[ckeys[j]] = tonumber(v[j]) end
end
-- Checks the charges c in order: returns true with the wait of the first charge over its
-- quota in `wait`, or false with the charges in `pending`, applied by charge().
local wait, pending = 0, nil
local function limited(c)
  local now, new = c.now, {}
  for j = 1, #c do
    local k, interval, tolerance = c[j][1], c[j][2], c[j][3]
    local tat = new[k] or tats[k] or now
    if tat < now then tat = now end
    local next_tat = tat + interval
    local allow_at = next_tat - tolerance - interval
    if allow_at > now then wait = allow_at - now; return true end
    new[k] = next_tat
  end
  pending = new
  return false
end
local function charge()
  if pending then
    for k, t in pairs(pending) do tats[k] = t; rtouched[k] = true end
  end
end
local prevs = redis.call('HMGET', KEYS[4], unpack(rkeys))
local counts = redis.call('HMGET', KEYS[3], unpack(users))
local has = {}
for i = 1, n do
  if has[users[i]] == nil then has[users[i]] = tonumber(counts[i] or '0') end
end

local batch_req, batch_rec = {}, {}   -- request key -> hold id, hold id -> record (this batch)
local new_req, new_holds, touched = {}, {}, {}
for i = 1, n do
  local b = base[i] - 1
  local user, qty, now = users[i], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 7])
  local prev = prevs[i] or batch_req[rkeys[i]]
  local refused = tonumber(ARGV[b + 9]) or 0
  pending = nil
  if not qty or qty < 1 or qty % 1 ~= 0 or not now then
    out[i] = {7}
  elseif prev then
    out[i] = {0, prev, batch_rec[prev] or redis.call('HGET', KEYS[2], prev)}
    -- A replay writes its request id again: the write is replicated, so a WAIT after this
    -- batch (ack=replicas:N) also covers the first reserve it replays.
    redis.call('HSET', KEYS[4], rkeys[i], prev)
  elseif now < st then
    out[i] = {4}
  elseif now >= en then
    out[i] = {5}
  elseif refused > 0 then
    out[i] = {8, refused}
  elseif charges[i] and limited(charges[i]) then
    out[i] = {8, wait}
  elseif has[user] + qty > limit then
    charge()
    out[i] = {3, has[user], limit}
  elseif avail < qty and bucketed then
    out[i] = {9, avail}
  elseif avail <= 0 then
    charge()
    out[i] = {1}
  elseif avail < qty then
    charge()
    out[i] = {2, avail}
  else
    charge()
    local hid = ARGV[b + 4]
    local rec = 'H|' .. user .. '|' .. ARGV[b + 2] .. '|' .. ARGV[b + 5] .. '|'
      .. ARGV[b + 7] .. '|' .. ARGV[b + 6]
    avail = avail - qty
    held = held + qty
    has[user] = has[user] + qty
    touched[user] = true
    batch_req[rkeys[i]] = hid
    batch_rec[hid] = rec
    new_req[#new_req + 1] = rkeys[i]
    new_req[#new_req + 1] = hid
    new_holds[#new_holds + 1] = hid
    new_holds[#new_holds + 1] = rec
    local tp = ARGV[b + 8]
    if tp == nil or tp == '' then
      redis.call('XADD', KEYS[5], '*', 'h', hid .. '|' .. rec)
    else
      redis.call('XADD', KEYS[5], '*', 'h', hid .. '|' .. rec, 't', tp)
    end
    out[i] = {0}
  end
end
local rnew = {}
for k, _ in pairs(rtouched) do
  rnew[#rnew + 1] = k
  rnew[#rnew + 1] = string.format('%d', tats[k])
end
if #rnew > 0 then redis.call('HSET', KEYS[6], unpack(rnew)) end
if #new_req > 0 then
  local new_counts = {}
  for u, _ in pairs(touched) do
    new_counts[#new_counts + 1] = u
    new_counts[#new_counts + 1] = has[u]
  end
  redis.call('HSET', KEYS[4], unpack(new_req))
  redis.call('HSET', KEYS[2], unpack(new_holds))
  redis.call('HSET', KEYS[3], unpack(new_counts))
  redis.call('HSET', KEYS[1], 'avail', avail, 'held', held)
end
return out
