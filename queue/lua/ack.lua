-- ack: jobs sent. Removes them from the worker's in-flight record (or from
-- the unknown set, when the worker was reaped mid-send). Jobs with a unique
-- key keep a done record, so a re-import never sends them again.
-- KEYS[1] jobs  KEYS[2] done  KEYS[3] inflight:WORKER  KEYS[4] stats
-- KEYS[5] reasons, then unknown:LANE per lane
-- ARGV: nl, nl lane names, n, n ukhs, n lane indexes (1-based),
--   nl sent counts (per lane, as if all were acked), nd, nd pairs
--   (ukh, done record), nb, nb pairs (lateness bucket, count).
-- The common case (every job still the worker's) runs without a per-job
-- loop; otherwise each job is settled on its own.
-- Returns {n} when all were acked, else per job: 1 acked, 2 resolved from
-- unknown, 0 not the worker's.
local now = now_ms()
local jobs, done, inflight, stats, reasons = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local nl = tonumber(ARGV[1])
local n = tonumber(ARGV[2 + nl])
local us = 3 + nl          -- first ukh
local ls = us + n          -- first lane index
local cs = ls + n          -- first per-lane count
local nd = tonumber(ARGV[cs + nl])
local ds = cs + nl + 1     -- first done pair
local nb = tonumber(ARGV[ds + 2 * nd])
local bs = ds + 2 * nd + 1 -- first lateness pair
local minute = math.floor(now / 60000)
local mine = redis.call('HMGET', inflight, unpack(ARGV, us, ls - 1))
local all = true
for j = 1, n do
  if not mine[j] then all = false break end
end
if all then
  redis.call('HDEL', inflight, unpack(ARGV, us, ls - 1))
  redis.call('HDEL', jobs, unpack(ARGV, us, ls - 1))
  if nd > 0 then redis.call('HSET', done, unpack(ARGV, ds, ds + 2 * nd - 1)) end
  for i = 1, nl do
    local c = tonumber(ARGV[cs + i - 1])
    if c > 0 then
      local lane = ARGV[1 + i]
      redis.call('HINCRBY', stats, 'sent|' .. lane, c)
      -- per-minute buckets for 'sent in the last minute/hour/day'
      bump(stats, 'sent', lane, minute, c)
    end
  end
  for i = 0, nb - 1 do
    redis.call('HINCRBY', stats, 'lat|' .. ARGV[bs + 2 * i], ARGV[bs + 2 * i + 1])
  end
  return {n}
end
local records = {}
for i = 0, nd - 1 do records[ARGV[ds + 2 * i]] = ARGV[ds + 2 * i + 1] end
local out, del, hset, sent = {}, {}, {}, {}
for j = 1, n do
  local ukh, li = ARGV[us + j - 1], tonumber(ARGV[ls + j - 1])
  local r = 0
  if mine[j] then
    r = 1
  elseif redis.call('ZREM', KEYS[5 + li], ukh) == 1 then
    r = 2
    redis.call('HDEL', reasons, ukh)
  end
  if r > 0 then
    del[#del + 1] = ukh
    if records[ukh] then
      hset[#hset + 1] = ukh
      hset[#hset + 1] = records[ukh]
    end
    local lane = ARGV[1 + li]
    sent[lane] = (sent[lane] or 0) + 1
  end
  out[j] = r
end
if #del > 0 then
  redis.call('HDEL', inflight, unpack(del))
  redis.call('HDEL', jobs, unpack(del))
end
if #hset > 0 then redis.call('HSET', done, unpack(hset)) end
for lane, c in pairs(sent) do
  redis.call('HINCRBY', stats, 'sent|' .. lane, c)
  bump(stats, 'sent', lane, minute, c)
end
-- lateness is only an estimate when some jobs were not ours: keep it anyway
for i = 0, nb - 1 do
  redis.call('HINCRBY', stats, 'lat|' .. ARGV[bs + 2 * i], ARGV[bs + 2 * i + 1])
end
return out
