-- ack: jobs sent. Removes them from the worker's in-flight record (or from
-- the unknown set, when the worker was reaped mid-send). Jobs with a unique
-- key keep a done record, so a re-import never sends them again.
-- KEYS[1] jobs  KEYS[2] done  KEYS[3] inflight:WORKER  KEYS[4] stats
-- KEYS[5] reasons, then unknown:LANE per lane, then lane:LANE per lane,
-- then platform_ids, polls
-- ARGV: nl, nl lane names, n, n ukhs grouped by lane (lane 1's first),
--   nl counts (how many of the n are each lane's), np, np positions (in
--   the grouped order, 1-based) of engagement polls, nd, nd pairs
--   (ukh, done record), nb, nb pairs (grouped position, "BUCKET:MS": its
--   lateness bucket and ms) of the jobs that have a lateness, then what
--   records the acked jobs with a platform id as sent (sent_record).
-- The common case (a lane's acked jobs are the oldest it has in flight, in
-- fetch order) is one string compare per lane, without a per-job loop;
-- otherwise that lane's jobs are settled one by one.
-- Returns {n} when all were acked, else per job (in the grouped order):
-- 1 acked, 2 resolved from unknown, 0 not the worker's, 3 its platform id
-- is another job's (sent_taken) and the job is still the worker's: nothing
-- done, it stays where it was (0 when it is no longer the worker's).
-- One post never settles two jobs.
local now = now_ms()
local jobs, done, inflight, stats, reasons = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local nl = tonumber(ARGV[1])
local n = tonumber(ARGV[2 + nl])
local us = 3 + nl          -- first ukh
local cs = us + n          -- first per-lane count
local np = tonumber(ARGV[cs + nl])
local ps = cs + nl + 1     -- first poll position
local nd = tonumber(ARGV[ps + np])
local ds = ps + np + 1     -- first done pair
local nb = tonumber(ARGV[ds + 2 * nd])
local bs = ds + 2 * nd + 1 -- first lateness pair
local minute = math.floor(now / 60000)
local res = {}             -- per job result, only for lanes settled one by one
local all = true
local hset, emptied, sent, first = {}, {}, {}, {}
local ours = {} -- grouped positions of refused jobs that are still ours
-- grouped positions of the jobs whose post another job owns: settled one
-- by one, and left out
local taken = sent_taken(KEYS[6 + 2 * nl], bs + 2 * nb, n)
local s = us
for i = 1, nl do
  local lane, c = ARGV[1 + i], tonumber(ARGV[cs + i - 1])
  local e = s + c - 1
  first[i] = s
  local packed = redis.call('HGET', inflight, lane) or ''
  local acked = table.concat(ARGV, '', s, e)
  local rest
  if not taken and string.sub(packed, 1, #acked) == acked then
    rest = string.sub(packed, #acked + 1)
    sent[i] = c
  else
    all = false
    local slot = {}
    for p = 1, #packed, 12 do slot[string.sub(packed, p, p + 11)] = true end
    local k = 0
    for j = s, e do
      local ukh = ARGV[j]
      local r = 0
      if taken and taken[j - us + 1] then
        r = 0 -- kept in flight (or unknown) for the worker to look on
        if slot[ukh] or redis.call('ZSCORE', KEYS[5 + i], ukh) then
          ours[j - us + 1] = true
        end
      elseif slot[ukh] then
        r = 1
        slot[ukh] = nil
      elseif redis.call('ZREM', KEYS[5 + i], ukh) == 1 then
        r = 2
        redis.call('HDEL', reasons, ukh)
      end
      if r > 0 then k = k + 1 end
      res[j - us + 1] = r
    end
    local keep = {}
    for p = 1, #packed, 12 do
      local ukh = string.sub(packed, p, p + 11)
      if slot[ukh] then keep[#keep + 1] = ukh end
    end
    rest = table.concat(keep)
    sent[i] = k
  end
  if rest == '' then
    if packed ~= '' then emptied[#emptied + 1] = lane end
  elseif #rest ~= #packed then
    hset[#hset + 1] = lane
    hset[#hset + 1] = rest
  end
  s = e + 1
end
if #emptied > 0 then redis.call('HDEL', inflight, unpack(emptied)) end
if #hset > 0 then redis.call('HSET', inflight, unpack(hset)) end
-- attempt marks can only remain in a record that is not empty now
local marks = redis.call('EXISTS', inflight) == 1
if all then
  if marks then redis.call('HDEL', inflight, unpack(ARGV, us, cs - 1)) end
  redis.call('HDEL', jobs, unpack(ARGV, us, cs - 1))
  if nd > 0 then redis.call('HSET', done, unpack(ARGV, ds, ds + 2 * nd - 1)) end
else
  local records = {}
  for i = 0, nd - 1 do records[ARGV[ds + 2 * i]] = ARGV[ds + 2 * i + 1] end
  local del, dset = {}, {}
  for j = 1, n do
    local r = res[j] or 1
    res[j] = r
    if r > 0 then
      local ukh = ARGV[us + j - 1]
      del[#del + 1] = ukh
      if records[ukh] then
        dset[#dset + 1] = ukh
        dset[#dset + 1] = records[ukh]
      end
    end
  end
  if #del > 0 then
    if marks then redis.call('HDEL', inflight, unpack(del)) end
    redis.call('HDEL', jobs, unpack(del))
  end
  if #dset > 0 then redis.call('HSET', done, unpack(dset)) end
end
-- engagement polls settle like sends but count as polled, not sent
local polled = {}
if np > 0 then
  local lane_of, i = {}, 1 -- grouped position -> lane
  for g = 1, n do
    while g > first[i] - us + tonumber(ARGV[cs + i - 1]) do i = i + 1 end
    lane_of[g] = i
  end
  for k = ps, ps + np - 1 do
    local g = tonumber(ARGV[k])
    if (res[g] or 1) > 0 then polled[lane_of[g]] = (polled[lane_of[g]] or 0) + 1 end
  end
end
for i = 1, nl do
  if sent[i] > 0 then
    local lane = ARGV[1 + i]
    local p = polled[i] or 0
    if sent[i] > p then
      redis.call('HINCRBY', stats, 'sent|' .. lane, sent[i] - p)
      -- per-minute buckets for 'sent in the last minute/hour/day'
      bump(stats, 'sent', lane, minute, sent[i] - p)
    end
    if p > 0 then redis.call('HINCRBY', stats, 'polled|' .. lane, p) end
    -- a success anywhere ends the lane's run of failures (circuit.lua) and
    -- closes its breaker: the half-open probe's, or a send that started
    -- before it opened (the platform answers)
    local state = KEYS[5 + nl + i]
    local c = redis.call('HMGET', state, 'c_fail', 'circuit', 'b_cost')
    if (tonumber(c[3] or '') or 0) > 0 then
      -- their budget is spent: forget the days their reservations noted
      local mine = {}
      for j = first[i], first[i] + tonumber(ARGV[cs + i - 1]) - 1 do
        if (res[j - us + 1] or 1) > 0 then mine[#mine + 1] = ARGV[j] end
      end
      budget_drop(state, mine)
    end
    if c[2] == 'half-open' or c[2] == 'open' then
      redis.call('HSET', state, 'c_fail', 0, 'circuit', 'closed', 'c_open_ms', 0)
      redis.call('HDEL', state, 'c_probe_until')
    elseif c[1] and c[1] ~= '0' then
      redis.call('HSET', state, 'c_fail', 0)
    end
  end
end
-- platform ids and engagement polls, of the jobs settled here only
sent_record(KEYS[6 + 2 * nl], KEYS[7 + 2 * nl], bs + 2 * nb, n,
  not all and function(g) return res[g] > 0 end or nil)
-- lateness of the jobs settled here only: a refused one is acked again
local lat, counted, sum = {}, false, 0
for i = 0, nb - 1 do
  if all or res[tonumber(ARGV[bs + 2 * i])] > 0 then
    local b, ms = string.match(ARGV[bs + 2 * i + 1], '^(%d+):(%d+)$')
    lat[b] = (lat[b] or 0) + 1
    sum = sum + tonumber(ms)
    counted = true
  end
end
for b, c in pairs(lat) do redis.call('HINCRBY', stats, 'lat|' .. b, c) end
-- lat|sum_ms: the histogram's _sum
if counted then redis.call('HINCRBY', stats, 'lat|sum_ms', sum) end
if all then return {n} end
for g in pairs(taken or {}) do
  if ours[g] then res[g] = 3 end
end
return res
