-- ack: jobs sent. Removes them from the worker's in-flight record (or from
-- the unknown set, when the worker was reaped mid-send) and keeps a done
-- record so a re-import never sends them again.
-- KEYS[1] jobs  KEYS[2] done  KEYS[3] inflight:WORKER  KEYS[4] stats
-- KEYS[5] reasons, then unknown:LANE per lane
-- ARGV[1] nlanes, ARGV[2..] lane names, then per job:
--   ukh, lane index (1-based), id, platform id, lateness bucket ('' = none)
-- Returns per job: 1 acked, 2 resolved from unknown, 0 not the worker's.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local jobs, done, inflight, stats, reasons = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local nl = tonumber(ARGV[1])
local out, del, hset, sent, lat = {}, {}, {}, {}, {}
for a = 2 + nl, #ARGV, 5 do
  local ukh, li = ARGV[a], tonumber(ARGV[a + 1])
  local r = 0
  if redis.call('HDEL', inflight, ukh) == 1 then
    r = 1
  elseif redis.call('ZREM', KEYS[5 + li], ukh) == 1 then
    r = 2
    redis.call('HDEL', reasons, ukh)
  end
  if r > 0 then
    del[#del + 1] = ukh
    hset[#hset + 1] = ukh
    hset[#hset + 1] = ARGV[a + 2] .. '\t' .. now .. '\t' .. ARGV[a + 3]
    local lane = ARGV[1 + li]
    sent[lane] = (sent[lane] or 0) + 1
    local b = ARGV[a + 4]
    if b ~= '' then lat[b] = (lat[b] or 0) + 1 end
  end
  out[#out + 1] = r
end
if #del > 0 then
  redis.call('HDEL', jobs, unpack(del))
  redis.call('HSET', done, unpack(hset))
end
for lane, n in pairs(sent) do redis.call('HINCRBY', stats, 'sent|' .. lane, n) end
for b, n in pairs(lat) do redis.call('HINCRBY', stats, 'lat|' .. b, n) end
return out
