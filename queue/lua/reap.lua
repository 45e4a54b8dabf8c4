-- reap: return a dead worker's in-flight jobs. Jobs whose attempt had not
-- started go to the front of their lane; started ones to the lane's unknown
-- set (their outcome is unknown: never re-sent blindly).
-- KEYS[1] workers  KEYS[2] inflight:WORKER  KEYS[3] reasons  KEYS[4] stats
-- then per lane: ready:LANE, unknown:LANE
-- ARGV[1] worker  ARGV[2] '1' to force (graceful unregister)  ARGV[3..] lanes
-- Returns {requeued, unknown}, {-1} when the worker renewed its lease,
-- {-2} when an entry's lane was not in ARGV (read again and retry).
local now = now_ms()
local worker = ARGV[1]
if ARGV[2] ~= '1' then
  local exp = redis.call('ZSCORE', KEYS[1], worker)
  if exp and tonumber(exp) >= now then return {-1} end
end
local idx = {}
for i = 3, #ARGV do idx[ARGV[i]] = i - 2 end
local entries = redis.call('HGETALL', KEYS[2])
for i = 1, #entries, 2 do
  local lane = string.match(entries[i + 1], '^(.*)\t%d+\t%d+$')
  if not lane or not idx[lane] then return {-2} end
end
local requeued, unknown = 0, 0
for i = 1, #entries, 2 do
  local ukh = entries[i]
  local lane, started = string.match(entries[i + 1], '^(.*)\t%d+\t(%d+)$')
  local li = idx[lane]
  if started ~= '0' then
    redis.call('ZADD', KEYS[4 + 2 * li], now, ukh)
    redis.call('HSET', KEYS[3], ukh, 'worker ' .. worker .. ' stopped during the send')
    unknown = unknown + 1
  else
    redis.call('LPUSH', KEYS[3 + 2 * li], ukh)
    requeued = requeued + 1
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], worker)
if requeued > 0 then redis.call('HINCRBY', KEYS[4], 'requeued', requeued) end
if unknown > 0 then redis.call('HINCRBY', KEYS[4], 'unknown', unknown) end
return {requeued, unknown}
