-- reap: return a dead worker's in-flight jobs. Jobs whose attempt had not
-- started go to the front of their lane; started ones to the lane's unknown
-- set (their outcome is unknown: never re-sent blindly, budget kept
-- reserved); requeued ones get the budget their fetch reserved back.
-- KEYS[1] workers  KEYS[2] inflight:WORKER  KEYS[3] reasons  KEYS[4] stats
-- then per lane: ready:LANE, unknown:LANE, lane:LANE
-- ARGV[1] worker  ARGV[2] '1' to force (graceful unregister)  ARGV[3..] lanes
-- Returns {requeued, unknown}, {-1} when the worker renewed its lease,
-- {-2} when a lane of the record was not in ARGV (read again and retry).
local now = now_ms()
local worker = ARGV[1]
if ARGV[2] ~= '1' then
  local exp = redis.call('ZSCORE', KEYS[1], worker)
  if exp and tonumber(exp) >= now then return {-1} end
end
local idx = {}
for i = 3, #ARGV do idx[ARGV[i]] = i - 2 end
-- lane fields pack the jobs in flight, ukh fields mark started attempts
local h = redis.call('HGETALL', KEYS[2])
local started = {}
for i = 1, #h, 2 do
  if string.find(h[i], ':', 1, true) then
    if not idx[h[i]] then return {-2} end
  else
    started[h[i]] = true
  end
end
local requeued, unknown = 0, 0
for i = 1, #h, 2 do
  local li = idx[h[i]]
  if li then
    local packed, back = h[i + 1], {}
    -- from the last: LPUSH puts them back at the front in fetch order
    for p = #packed - 11, 1, -12 do
      local ukh = string.sub(packed, p, p + 11)
      if started[ukh] then
        redis.call('ZADD', KEYS[3 + 3 * li], now, ukh)
        -- (queue_unknown_attempts counts the attempt this stored job lacks
        -- by this reason: keep the two in step)
        redis.call('HSET', KEYS[3], ukh, 'worker ' .. worker .. ' stopped during the send')
        unknown = unknown + 1
      else
        back[#back + 1] = ukh
      end
    end
    for c = 1, #back, 4000 do
      redis.call('LPUSH', KEYS[2 + 3 * li], unpack(back, c, math.min(c + 3999, #back)))
    end
    budget_refund(KEYS[4 + 3 * li], back)
    requeued = requeued + #back
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], worker)
if requeued > 0 then redis.call('HINCRBY', KEYS[4], 'requeued', requeued) end
if unknown > 0 then redis.call('HINCRBY', KEYS[4], 'unknown', unknown) end
return {requeued, unknown}
