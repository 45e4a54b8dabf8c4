-- prelude: prepended to every queue script at build time (cmake/embed.cmake),
-- so the scripts share these helpers; each script still declares its KEYS.

-- now_ms: Redis' clock in ms (not the hosts': every process agrees)
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- bump adds c to a lane's per-minute bucket in the stats hash; opening a new
-- minute drops the lane's buckets of a day ago (an hour of them, for minutes
-- without traffic; queue_prune_stats catches longer gaps)
local function bump(stats, kind, lane, minute, c)
  local f = 'm|' .. kind .. '|' .. lane .. '|'
  if redis.call('HINCRBY', stats, f .. minute, c) == tonumber(c) then
    local old = {}
    for m = minute - 1500, minute - 1441 do old[#old + 1] = f .. m end
    redis.call('HDEL', stats, unpack(old))
  end
end

-- Rate windows slide (issue #6). Window i of a hash (a lane's state, or
-- its platform's app:PLATFORM: w<i>_ms, w<i>_limit, cost written by the
-- workers) is cut into buckets of g = ceil(win / WIN_K) ms numbered from
-- the epoch; w<i>_b keeps the points of the recent ones, "G:FIRST:c,c,..."
-- (FIRST: the bucket of the first count). A call goes only while the
-- points of the span, the current bucket and the ceil(win / g) + 1 before
-- it, plus its own stay within the limit. Every call admitted in the
-- win + g ms up to an admission lies in its span, so no interval of
-- win + g ms ever holds more than the limit: the one bucket beyond win is
-- a guard for the time a call takes from the fetch to the platform, whose
-- windows are not ours. The price: at worst limit calls per win + 2g.
-- Fixed-window fields of old (w<i>_start/_used) are ignored.
local WIN_K = 20

-- hash_read: the hash at key as a table of field -> value
local function hash_read(key)
  local flat = redis.call('HGETALL', key)
  local st = {}
  for i = 1, #flat, 2 do st[flat[i]] = flat[i + 1] end
  return st
end

-- win_load: window i of hash st (as read) at now: nil without one, else
-- {lim, g, b (the current bucket), c (the span's points, c[S]: bucket b),
-- sum}. A count kept under another g (the window changed) goes into the
-- bucket of its last ms, later, never earlier. Kept in st[-i] (no field
-- name is a number): a script reads a window once, and its charges keep
-- it current.
local function win_load(st, i, now)
  local w = st[-i]
  if w and w.now == now then return w end
  local win = tonumber(st['w' .. i .. '_ms'] or '') or 0
  if win <= 0 then return nil end
  local g = math.ceil(win / WIN_K)
  local b = math.floor(now / g)
  local S = math.ceil(win / g) + 2
  local c, sum = {}, 0
  for k = 1, S do c[k] = 0 end
  local og, first, list = string.match(st['w' .. i .. '_b'] or '', '^(%d+):(%d+):(.*)$')
  og, first = tonumber(og), tonumber(first)
  if og and og > 0 then
    local k = first
    for v in string.gmatch(list, '%d+') do
      local at = og == g and k or math.floor(((k + 1) * og - 1) / g)
      if at > b then at = b end -- the clock went back: still counted
      local slot = at - b + S
      if slot >= 1 then
        v = tonumber(v)
        c[slot] = c[slot] + v
        sum = sum + v
      end
      k = k + 1
    end
  end
  w = {now = now, lim = tonumber(st['w' .. i .. '_limit'] or '') or 0, g = g, b = b, c = c,
    sum = sum}
  st[-i] = w
  return w
end

-- win_fit: how many calls of cost points fit now in every window of st
-- (math.huge without windows; may be negative)
local function win_fit(st, now, cost)
  local n = math.huge
  for i = 1, tonumber(st.nw or '') or 0 do
    local w = win_load(st, i, now)
    if w then n = math.min(n, math.floor((w.lim - w.sum) / cost)) end
  end
  return n
end

-- win_charge adds pts to the current bucket of every window of st: the
-- HSET field/value pairs go to h, and st follows (a later admission in the
-- same script sees them)
local function win_charge(st, pts, now, h)
  if pts <= 0 then return end
  for i = 1, tonumber(st.nw or '') or 0 do
    local w = win_load(st, i, now)
    if w then
      local c = w.c
      local S = #c
      c[S] = c[S] + pts
      w.sum = w.sum + pts
      local f = 1
      while c[f] == 0 do f = f + 1 end -- the oldest buckets with none: dropped
      -- '%d': Lua's own number to string is a much slower '%.14g'
      local v = string.format('%d:%d:%d', w.g, w.b - S + f, c[f])
      for k = f + 1, S do v = v .. string.format(',%d', c[k]) end
      local name = 'w' .. i .. '_b'
      st[name] = v
      h[#h + 1] = name
      h[#h + 1] = v
    end
  end
end

-- win_wait: the ms until pts more points fit in every window of st (0:
-- now): when enough of the oldest buckets have left the span (the whole
-- span when pts alone is over the limit)
local function win_wait(st, pts, now)
  local wait = 0
  for i = 1, tonumber(st.nw or '') or 0 do
    local w = win_load(st, i, now)
    if w and w.sum + pts > w.lim then
      local c, sum, j = w.c, w.sum, 1
      while j < #c and sum - c[j] + pts > w.lim do
        sum = sum - c[j]
        j = j + 1
      end
      -- bucket c[j] (number b - S + j) leaves when bucket b + j begins
      wait = math.max(wait, (w.b + j) * w.g - now)
    end
  end
  return wait
end

-- charge_calls counts calls requests of a lane in its rate windows (st:
-- its state hash as read: nw, w<i>_*, cost) and takes them from the
-- platform's quota left; appends the HSET field/value pairs to h
local function charge_calls(st, calls, now, h)
  win_charge(st, calls * math.max(1, tonumber(st.cost or '') or 1), now, h)
  if (tonumber(st.q_reset or '') or 0) > now and st.q_left then
    h[#h + 1] = 'q_left'
    h[#h + 1] = (tonumber(st.q_left) or 0) - calls
  end
end

-- budget_period: the UTC day (20261121) and month (202611) of now_ms, the
-- periods a lane's budget counts in (H. Hinnant's days-to-civil algorithm)
local function budget_period(now)
  local z = math.floor(now / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y * 10000 + m * 100 + d, y * 100 + m
end

-- budget_note_fields: the state hash fields noting the reservations of the
-- jobs ukhs[a..b]: r|UKH = the UTC day (YYYYMMDD) the fetch reserved in
local function budget_note_fields(ukhs, a, b)
  local names = {}
  for i = a, b do names[#names + 1] = 'r|' .. ukhs[i] end
  return names
end

-- budget_drop forgets the reservation notes of ukhs (a send committed them)
local function budget_drop(state_key, ukhs)
  for c = 1, #ukhs, 4000 do
    redis.call('HDEL', state_key, unpack(budget_note_fields(ukhs, c, math.min(c + 3999, #ukhs))))
  end
end

-- budget_refund gives back, in the lane's state hash, the budget the fetch
-- reserved for the jobs ukhs that leave without being sent (retried,
-- buried, returned to their lane): called by the script that moves them,
-- so a refund happens exactly when the move does. Each goes back into the
-- day and month its fetch reserved in (noted as r|UKH), and only while
-- that period is the lane's current one: an ended period limits nothing
-- any more, and the new one never held it. A job without a note (none
-- was reserved) gives nothing back.
local function budget_refund(state_key, ukhs)
  if #ukhs == 0 then return end
  local st = redis.call('HMGET', state_key, 'b_cost', 'b_day', 'b_day_used', 'b_month',
    'b_month_used')
  local cost = tonumber(st[1] or '') or 0
  local bday, bmonth = tonumber(st[2] or ''), tonumber(st[4] or '')
  local nd, nm = 0, 0
  for c = 1, #ukhs, 4000 do
    local names = budget_note_fields(ukhs, c, math.min(c + 3999, #ukhs))
    local days = redis.call('HMGET', state_key, unpack(names))
    for k = 1, #names do
      local d = tonumber(days[k] or '')
      if d then
        if d == bday then nd = nd + 1 end
        if math.floor(d / 100) == bmonth then nm = nm + 1 end
      end
    end
    redis.call('HDEL', state_key, unpack(names))
  end
  if cost <= 0 then return end
  local h = {}
  if nd > 0 then
    h[#h + 1] = 'b_day_used'
    h[#h + 1] = math.max(0, (tonumber(st[3] or '') or 0) - nd * cost)
  end
  if nm > 0 then
    h[#h + 1] = 'b_month_used'
    h[#h + 1] = math.max(0, (tonumber(st[5] or '') or 0) - nm * cost)
  end
  if #h > 0 then redis.call('HSET', state_key, unpack(h)) end
end


-- The in-flight record inflight:WORKER holds no entry per job at fetch: one
-- field per lane, named after it (a lane has a ':', a ukh never), packs the
-- 12-character ukhs the worker has in flight from it; a field named by a
-- ukh (value: started_ms) marks a job whose attempt started.

-- slot_of: where ukh sits in a packed field (1-based, on a 12-char boundary)
local function slot_of(packed, ukh)
  local p = string.find(packed, ukh, 1, true)
  while p and (p - 1) % 12 ~= 0 do p = string.find(packed, ukh, p + 1, true) end
  return p
end

-- inflight_lane: the lane whose field holds ukh, or nil when not in flight
local function inflight_lane(inflight, ukh)
  local h = redis.call('HGETALL', inflight)
  for i = 1, #h, 2 do
    if string.find(h[i], ':', 1, true) and slot_of(h[i + 1], ukh) then return h[i] end
  end
  return nil
end

-- inflight_take: remove ukh of lane (and its attempt mark) from the record;
-- false when it was not there
local function inflight_take(inflight, lane, ukh)
  local packed = redis.call('HGET', inflight, lane)
  local p = packed and slot_of(packed, ukh)
  if not p then return false end
  local rest = string.sub(packed, 1, p - 1) .. string.sub(packed, p + 12)
  if rest == '' then
    redis.call('HDEL', inflight, lane, ukh)
  else
    redis.call('HSET', inflight, lane, rest)
    redis.call('HDEL', inflight, ukh)
  end
  return true
end

-- A job became sent: ack.lua (the worker heard so) and resolve.lua (a
-- read-back or an operator found so) record it alike, atomically with its
-- move to done, from words the caller built (qo_push_sent): a job with a
-- platform id gets platform_ids PLATFORM:ID -> JOB\tCAMPAIGN (webhooks match
-- engagement by it, read-backs tell another job's post by it: sent_taken
-- checks, before the script moves anything), and a post
-- its engagement polls, due ms -> LANE\tID\tJOB\tCAMPAIGN\tINDEX in polls.
-- From ARGV[at]: nr, the nr jobs' positions (only when fewer than n: every
-- job has one otherwise), nr (field, value) pairs; then nz, np, the nz
-- posts' positions (likewise), np (due, entry) pairs each (nz 0 alone: no
-- polls). n: the jobs in the call; ok(position) says whether a job was
-- settled (nil: all were). Nothing per job when no job has a platform id.

-- sent_call: cmd key ARGV[first..] in records of per words, those whose
-- position ok admits, in chunks (unpack has a limit)
local function sent_call(cmd, key, first, nrec, per, pos, ok)
  local words = {}
  if not ok then
    for c = first, first + nrec * per - 1, 4000 do
      redis.call(cmd, key, unpack(ARGV, c, math.min(c + 3999, first + nrec * per - 1)))
    end
    return
  end
  for r = 0, nrec - 1 do
    if ok(pos and tonumber(ARGV[pos + r]) or r + 1) then
      for w = first + r * per, first + (r + 1) * per - 1 do words[#words + 1] = ARGV[w] end
    end
  end
  for c = 1, #words, 4000 do
    redis.call(cmd, key, unpack(words, c, math.min(c + 3999, #words)))
  end
end

-- sent_owner: the ukh of the job a platform_ids value ("JOB\tCAMPAIGN")
-- names (a job id ends with its ukh)
local function sent_owner(v)
  return string.sub(string.match(v, '^[^\t]*'), -12)
end

-- sent_taken: the one owner check of a post. The positions (as ok's) of
-- the jobs, in the words sent_record reads from ARGV[at], whose platform
-- id platform_ids records for another job, or an earlier job of the same
-- call claims (two read-backs found one post): they must not be recorded
-- sent with it. nil when none is.
local function sent_taken(ids_key, at, n)
  local nr = tonumber(ARGV[at])
  if nr == 0 then return nil end
  local pos = nr < n and at + 1 or nil
  local first = at + 1 + (pos and nr or 0)
  local taken, claimed, fields = nil, {}, {}
  for c = 0, nr - 1, 4000 do
    local e = math.min(c + 3999, nr - 1)
    for r = c, e do fields[r - c + 1] = ARGV[first + 2 * r] end
    local owners = redis.call('HMGET', ids_key, unpack(fields, 1, e - c + 1))
    for r = c, e do
      -- values compared only when the post has an owner (rare): per job
      -- otherwise, two lookups and one store
      local f, v = ARGV[first + 2 * r], ARGV[first + 2 * r + 1]
      local owner = claimed[f] or owners[r - c + 1]
      if owner and sent_owner(owner) ~= sent_owner(v) then
        taken = taken or {}
        taken[pos and tonumber(ARGV[pos + r]) or r + 1] = true
      else
        claimed[f] = v
      end
    end
  end
  return taken
end

local function sent_record(ids_key, polls_key, at, n, ok)
  local nr = tonumber(ARGV[at])
  if nr == 0 then return end
  local pos = nr < n and at + 1 or nil
  local first = at + 1 + (pos and nr or 0)
  sent_call('HSET', ids_key, first, nr, 2, pos, ok)
  at = first + 2 * nr
  local nz = tonumber(ARGV[at])
  if nz == 0 then return end
  local np = tonumber(ARGV[at + 1])
  pos = nz < n and at + 2 or nil
  sent_call('ZADD', polls_key, at + 2 + (pos and nz or 0), nz, 2 * np, pos, ok)
end
