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

-- window_at: rate window i of a lane's state hash st (the hash as read:
-- w<i>_ms, w<i>_start/_used) at now: its length (0: none), current start
-- and the points used in it
local function window_at(st, i, now)
  local win = tonumber(st['w' .. i .. '_ms'] or '') or 0
  if win <= 0 then return 0, 0, 0 end
  local start = now - now % win
  local used = 0
  if tonumber(st['w' .. i .. '_start'] or '') == start then
    used = tonumber(st['w' .. i .. '_used'] or '') or 0
  end
  return win, start, used
end

-- charge_calls adds, for calls requests of a lane, their points to every
-- rate window of its state hash (st: the hash as read: nw, w<i>_ms, cost,
-- w<i>_start/_used) and takes them from the platform's quota left; appends
-- the HSET field/value pairs to h
local function charge_calls(st, calls, now, h)
  local cost = math.max(1, tonumber(st.cost or '') or 1)
  for i = 1, tonumber(st.nw or '') or 0 do
    local win, start, used = window_at(st, i, now)
    if win > 0 then
      h[#h + 1] = 'w' .. i .. '_start'
      h[#h + 1] = start
      h[#h + 1] = 'w' .. i .. '_used'
      h[#h + 1] = used + calls * cost
    end
  end
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
