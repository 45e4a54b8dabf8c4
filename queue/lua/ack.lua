-- ack: jobs sent. Removes them from the worker's in-flight record (or from
-- the unknown set, when the worker was reaped mid-send). Jobs with a unique
-- key keep a done record, so a re-import never sends them again.
-- KEYS[1] jobs  KEYS[2] done  KEYS[3] inflight:WORKER  KEYS[4] stats
-- KEYS[5] reasons, then unknown:LANE per lane
-- ARGV[1] nlanes, ARGV[2..] lane names, then per job:
--   ukh, lane index (1-based), done record ('' = none), lateness bucket ('')
-- Returns per job: 1 acked, 2 resolved from unknown, 0 not the worker's.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local jobs, done, inflight, stats, reasons = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local nl = tonumber(ARGV[1])
local first = 2 + nl
local ukhs = {}
for a = first, #ARGV, 4 do ukhs[#ukhs + 1] = ARGV[a] end
local mine = redis.call('HMGET', inflight, unpack(ukhs))
local out, del, hset, sent, lat = {}, {}, {}, {}, {}
for j = 1, #ukhs do
  local a = first + 4 * (j - 1)
  local ukh, li = ukhs[j], tonumber(ARGV[a + 1])
  local r = 0
  if mine[j] then
    r = 1
  elseif redis.call('ZREM', KEYS[5 + li], ukh) == 1 then
    r = 2
    redis.call('HDEL', reasons, ukh)
  end
  if r > 0 then
    del[#del + 1] = ukh
    if ARGV[a + 2] ~= '' then
      hset[#hset + 1] = ukh
      hset[#hset + 1] = ARGV[a + 2] .. '\t' .. now
    end
    local lane = ARGV[1 + li]
    sent[lane] = (sent[lane] or 0) + 1
    local b = ARGV[a + 3]
    if b ~= '' then lat[b] = (lat[b] or 0) + 1 end
  end
  out[j] = r
end
if #del > 0 then
  redis.call('HDEL', inflight, unpack(del))
  redis.call('HDEL', jobs, unpack(del))
end
if #hset > 0 then redis.call('HSET', done, unpack(hset)) end
local minute = math.floor(now / 60000)
for lane, n in pairs(sent) do
  redis.call('HINCRBY', stats, 'sent|' .. lane, n)
  -- per-minute buckets for 'sent in the last minute/hour/day' (pruned by readers)
  redis.call('HINCRBY', stats, 'm|sent|' .. lane .. '|' .. minute, n)
end
for b, n in pairs(lat) do redis.call('HINCRBY', stats, 'lat|' .. b, n) end
return out
