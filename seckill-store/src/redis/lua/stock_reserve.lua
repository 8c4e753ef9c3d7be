-- The atomic reserve step, for a batch of requests against one activity (or one of its stock
-- buckets, docs/adr/0020), in order.
-- KEYS: 1 stock hash, 2 holds hash, 3 per-user counts hash, 4 request-id hash, 5 outbox stream,
-- 6 rate hash (charge key -> theoretical arrival time, microseconds), 7 the seat bitmap (one
-- bit per seat of the map, in block order, 1 = taken), 8 the documents hash (a real-name
-- session's holders: document hash -> the live hold whose ticket it holds)
-- ARGV: 1 n, 2 bucketed (1: the activity has several buckets, so a short bucket answers {9}
-- for its caller to borrow and retry, instead of sold out or insufficient), then per request
-- 10 fields: user, qty, request_id, hold_id, order_id, expires ms, now ms, traceparent (''
-- when the buy is not traced: the outbox entry then has no 't' field), refused (microseconds
-- to wait when a charge kept elsewhere refused it, else 0), r (its rate charges); and when
-- r > 0: now us, then r triples (key, interval us, tolerance us).
-- qty is "n" for a plain sale, or "n/t:q,t:q" for a session with price tiers (docs/adr/0021):
-- its units per tier, adding up to n, each tier once. A session's stock hash keeps its tier
-- numbers in spec order ('tiers' = "1,2,3"), each tier's stock, held and sold ('t<id>',
-- 't<id>h', 't<id>s') and its quotas ('quotas' = "id:cap:t.t;..."); a quota's use is its
-- tiers' held + sold. After the capacity, each line's tier is checked, then each quota, then
-- the seats. A seated session's stock hash keeps its map ('seatmap' =
-- "tier:start:len:section:row:from;..." in block order, start being the block's first bit)
-- and each block's free seats ('sf<j>'); a seated line is "t:q" (the best available) or
-- "t:q:seat;seat" (those seats), and its record lists the seats it got.
-- A real-name request's qty ends in "#holders": "code:masked:hash:name;..." one per unit (its
-- lines may then be empty: "n/#..."); after the seats, no holder's document hash may be in the
-- documents hash, in an earlier request of the batch or twice in the request ({15}). The
-- record keeps the holders after its lines ("|lines|holders").
-- Rate charges are GCRA steps (seckill_core::rate_limit::gcra), checked after the window and
-- before the limit and the stock; a replay charges nothing, a refused request charges none,
-- and a request sent back to borrow charges nothing yet.
-- A hold record is "S|user|qty|order_id|created_ms|expires_ms" with S = H(eld), C(onfirmed),
-- R(eleased), and "|t:q,t:q" after it for a session's hold. Ids stay strings: Lua numbers are
-- doubles.
-- A batch reads all request ids and user counts with one HMGET each and writes holds, request
-- ids, user counts and stock with one HSET each; only the outbox takes one XADD per hold.
-- Returns one entry per request:
--   {0}                        reserved now (the caller knows the hold: it sent every field)
--   {0, hold_id, record}       a known request id: the first request's hold (a replay)
--   {1} sold out   {2, available} insufficient   {3, held, limit} limit exceeded
--   {4} not started   {5} ended   {6} not loaded   {7} invalid quantity or time
--   {8, retry_after_us} a rate charge is over its quota
--   {9, available} (bucketed only) this bucket has too few units: borrow, then send it again
--   {10, tier, available} a tier has too few units   {11, quota, available} a quota has too few
--   {12, seat, ...} named seats are taken   {14, record} reserved now, in a seated session
--   (the record has the seats it got)   {15, hash, ...} holders' documents hold a live ticket
local n = tonumber(ARGV[1])
local out = {}
local s = redis.call('HMGET', KEYS[1], 'avail', 'held', 'limit', 'start', 'end', 'tiers',
  'seatmap')
if not s[1] then
  for i = 1, n do out[i] = {6} end
  return out
end
local avail, held = tonumber(s[1]), tonumber(s[2])
local limit, st, en = tonumber(s[3]), tonumber(s[4]), tonumber(s[5])

-- The session's tiers (id -> {stock, held, sold}) and quotas, when it has tiers.
local tiers, quotas, tier_touched = nil, {}, {}
if s[6] and s[6] ~= '' then
  tiers = {}
  local fields, ids = {}, {}
  for id in string.gmatch(s[6], '[^,]+') do
    ids[#ids + 1] = id
    fields[#fields + 1] = 't' .. id
    fields[#fields + 1] = 't' .. id .. 'h'
    fields[#fields + 1] = 't' .. id .. 's'
  end
  fields[#fields + 1] = 'quotas'
  local v = redis.call('HMGET', KEYS[1], unpack(fields))
  for j, id in ipairs(ids) do
    tiers[id] = {tonumber(v[3 * j - 2]), tonumber(v[3 * j - 1] or '0'), tonumber(v[3 * j] or '0')}
  end
  for q in string.gmatch(v[#fields] or '', '[^;]+') do
    local qid, cap, list = string.match(q, '^([^:]*):([^:]*):(.*)$')
    local set = {}
    for t in string.gmatch(list, '[^.]+') do set[t] = true end
    quotas[#quotas + 1] = {qid, tonumber(cap), set}
  end
end
-- The seat map: blocks {tier, start, len, section, row, from}, each tier's blocks in order,
-- each row's blocks, each block's free seats; taken bits read once, changed ones kept aside.
local blocks, seated, rows, free, bits, changed = {}, {}, {}, {}, '', {}
local block_touched = {}
if s[7] and s[7] ~= '' then
  local fields = {}
  for b in string.gmatch(s[7], '[^;]+') do
    local t, st0, len, sec, row, from = string.match(b, '^(%d+):(%d+):(%d+):([^:]+):([^:]+):(%d+)$')
    local j = #blocks + 1
    blocks[j] = {t, tonumber(st0), tonumber(len), sec, row, tonumber(from)}
    seated[t] = seated[t] or {}
    seated[t][#seated[t] + 1] = j
    local r = sec .. '-' .. row
    rows[r] = rows[r] or {}
    rows[r][#rows[r] + 1] = j
    fields[j] = 'sf' .. j
  end
  local v = redis.call('HMGET', KEYS[1], unpack(fields))
  for j = 1, #blocks do free[j] = tonumber(v[j] or blocks[j][3]) end
  bits = redis.call('GET', KEYS[7]) or ''
end
local function is_taken(o)
  local c = changed[o]
  if c ~= nil then return c == 1 end
  local byte = string.byte(bits, math.floor(o / 8) + 1) or 0
  return bit.band(byte, bit.rshift(128, o % 8)) ~= 0
end
local function seat_name(j, o)
  local b = blocks[j]
  return b[4] .. '-' .. b[5] .. '-' .. (b[6] + o - b[2])
end
-- A named seat's {block, bit} in tier t, or nil.
local function seat_of(t, id)
  local sec, row, num = string.match(id, '^([^-]+)-([^-]+)-(%d+)$')
  if not sec then return nil end
  num = tonumber(num)
  for _, j in ipairs(rows[sec .. '-' .. row] or {}) do
    local b = blocks[j]
    if b[1] == t and num >= b[6] and num < b[6] + b[3] then return {j, b[2] + num - b[6]} end
  end
  return nil
end
-- Seats for each seated line (named ones checked, else the best available: q adjacent in the
-- first block of the tier that has them, else the first free in block order), or the answer
-- refusing them. Nothing is changed here.
local function place(lines)
  local got = {}
  for i, l in ipairs(lines) do
    if l[3] then
      local taken = {12}
      for _, p in ipairs(l[3]) do
        if is_taken(p[2]) then taken[#taken + 1] = seat_name(p[1], p[2]) end
      end
      if #taken > 1 then return nil, taken end
      got[i] = l[3]
    elseif seated[l[1]] then
      local q, pick = l[2], nil
      for _, j in ipairs(seated[l[1]]) do
        if free[j] >= q then
          local b, run = blocks[j], 0
          for o = b[2], b[2] + b[3] - 1 do
            if is_taken(o) then run = 0 else run = run + 1 end
            if run == q then
              pick = {}
              for k = o - q + 1, o do pick[#pick + 1] = {j, k} end
              break
            end
          end
        end
        if pick then break end
      end
      if not pick then
        pick = {}
        for _, j in ipairs(seated[l[1]]) do
          if free[j] > 0 then
            local b = blocks[j]
            for o = b[2], b[2] + b[3] - 1 do
              if #pick < q and not is_taken(o) then pick[#pick + 1] = {j, o} end
            end
          end
          if #pick == q then break end
        end
        if #pick < q then return nil, {10, tonumber(l[1]), 0} end
      end
      got[i] = pick
    end
  end
  return got, nil
end
-- A request's lines ({tier, units[, named seats {block, bit}]} in order) and their sum, or nil
-- when malformed or when they do not fit the session (a plain sale takes none, a session needs
-- some; seats only for a seated tier, as many as its units, each once).
local function parse_lines(text)
  if text == nil then
    if tiers then return nil end
    return {}, nil
  end
  if not tiers then return nil end
  local lines, seen, sum = {}, {}, 0
  for part in string.gmatch(text .. ',', '([^,]*),') do
    local t, q, named = string.match(part, '^(%d+):(%d+):([^:]+)$')
    if not t then
      t, q = string.match(part, '^(%d+):(%d+)$')
    end
    if not t then return nil end
    q = tonumber(q)
    if not tiers[t] or seen[t] or q < 1 then return nil end
    seen[t] = true
    local picks = nil
    if named then
      if not seated[t] then return nil end
      picks = {}
      local dup = {}
      for id in string.gmatch(named .. ';', '([^;]*);') do
        local p = seat_of(t, id)
        if not p or dup[p[2]] then return nil end
        dup[p[2]] = true
        picks[#picks + 1] = p
      end
      if #picks ~= q then return nil end
    end
    lines[#lines + 1] = {t, q, picks}
    sum = sum + q
  end
  if #lines == 0 then return nil end
  return lines, sum
end
-- The first tier or quota the lines overrun, as the answer to give; nil when all have room.
-- A real-name request's documents ({hash, ...}, one per unit), or nil when malformed.
local function parse_docs(text)
  local docs = {}
  for part in string.gmatch(text .. ';', '([^;]*);') do
    local d = string.match(part, '^%a%a:[^:]*:(%x+):.+$')
    if not d then return nil end
    docs[#docs + 1] = d
  end
  return docs
end
local batch_docs, new_docs = {}, {}
-- The refusal {15, hash, ...} when a document holds a live ticket (here, earlier in this batch,
-- or twice in this request); nil when all are free.
local function docs_taken(docs)
  local v = redis.call('HMGET', KEYS[8], unpack(docs))
  local taken, mine = {15}, {}
  for k, d in ipairs(docs) do
    if v[k] or batch_docs[d] or mine[d] then taken[#taken + 1] = d end
    mine[d] = true
  end
  if #taken > 1 then return taken end
  return nil
end
local function tiers_short(lines)
  for _, l in ipairs(lines) do
    local t = tiers[l[1]]
    local left = t[1] - t[2] - t[3]
    if left < l[2] then return {10, tonumber(l[1]), math.max(left, 0)} end
  end
  for _, q in ipairs(quotas) do
    local asked, taken = 0, 0
    for _, l in ipairs(lines) do
      if q[3][l[1]] then asked = asked + l[2] end
    end
    if asked > 0 then
      for id, _ in pairs(q[3]) do
        local t = tiers[id]
        if t then taken = taken + t[2] + t[3] end
      end
      if asked > q[2] - taken then return {11, tonumber(q[1]), math.max(q[2] - taken, 0)} end
    end
  end
  return nil
end

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
  local qs = ARGV[b + 2]
  local htext, docs = nil, nil
  local mark = string.find(qs, '#', 1, true)
  if mark then htext, qs = string.sub(qs, mark + 1), string.sub(qs, 1, mark - 1) end
  local slash = string.find(qs, '/', 1, true)
  local qtext, ltext = qs, nil
  if slash then qtext, ltext = string.sub(qs, 1, slash - 1), string.sub(qs, slash + 1) end
  if ltext == '' then ltext = nil end
  local lines, lsum = parse_lines(ltext)
  if htext then docs = parse_docs(htext) end
  local user, qty, now = users[i], tonumber(qtext), tonumber(ARGV[b + 7])
  local prev = prevs[i] or batch_req[rkeys[i]]
  local refused = tonumber(ARGV[b + 9]) or 0
  local short = nil
  pending = nil
  if not qty or qty < 1 or qty % 1 ~= 0 or not now or not lines or (lsum and lsum ~= qty)
    or (htext and (not docs or #docs ~= qty)) then
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
    if tiers then short = tiers_short(lines) end
  end
  local seats = nil
  if out[i] == nil and not short and #blocks > 0 then
    seats, short = place(lines)
  end
  if out[i] == nil and not short and docs then
    short = docs_taken(docs)
  end
  if out[i] == nil and short then
    charge()
    out[i] = short
  elseif out[i] == nil then
    charge()
    local hid = ARGV[b + 4]
    local rec = 'H|' .. user .. '|' .. qtext .. '|' .. ARGV[b + 5] .. '|'
      .. ARGV[b + 7] .. '|' .. ARGV[b + 6]
    if ltext then
      local parts = {}
      for k, l in ipairs(lines) do
        tiers[l[1]][2] = tiers[l[1]][2] + l[2]
        tier_touched[l[1]] = true
        local text = l[1] .. ':' .. l[2]
        if seats and seats[k] then
          local names = {}
          for m, p in ipairs(seats[k]) do
            names[m] = seat_name(p[1], p[2])
            changed[p[2]] = 1
            free[p[1]] = free[p[1]] - 1
            block_touched[p[1]] = true
          end
          text = text .. ':' .. table.concat(names, ';')
        end
        parts[k] = text
      end
      rec = rec .. '|' .. table.concat(parts, ',')
    end
    if docs then
      if not ltext then rec = rec .. '|' end
      rec = rec .. '|' .. htext
      for _, d in ipairs(docs) do
        batch_docs[d] = hid
        new_docs[#new_docs + 1] = d
        new_docs[#new_docs + 1] = hid
      end
    end
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
    if #blocks > 0 then out[i] = {14, rec} else out[i] = {0} end
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
  if #new_docs > 0 then redis.call('HSET', KEYS[8], unpack(new_docs)) end
  local tnew = {}
  for id, _ in pairs(tier_touched) do
    tnew[#tnew + 1] = 't' .. id .. 'h'
    tnew[#tnew + 1] = tiers[id][2]
  end
  if #tnew > 0 then redis.call('HSET', KEYS[1], unpack(tnew)) end
  if #blocks > 0 then
    for o, _ in pairs(changed) do redis.call('SETBIT', KEYS[7], o, 1) end
    local fnew = {}
    for j, _ in pairs(block_touched) do
      fnew[#fnew + 1] = 'sf' .. j
      fnew[#fnew + 1] = free[j]
    end
    if #fnew > 0 then redis.call('HSET', KEYS[1], unpack(fnew)) end
  end
end
return out
