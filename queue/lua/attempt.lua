-- attempt: record that the worker starts sending jobs, before the requests.
-- KEYS[1] workers  KEYS[2] inflight:WORKER   ARGV[1] worker, then either
-- one ukh (its lane looked up) or ukh/lane pairs (a worker's batch: one
-- call per loop iteration instead of one per job).
-- Returns, for one ukh, 0 when recorded and 1 when the job or the lease is
-- no longer the worker's (it must not send); for pairs, an array of those.
local now = now_ms()
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
local live = exp and tonumber(exp) >= now
if #ARGV == 2 then
  if not live or not inflight_lane(KEYS[2], ARGV[2]) then return 1 end
  -- the attempt mark (see the prelude): reap sends the job to unknown
  redis.call('HSET', KEYS[2], ARGV[2], now)
  return 0
end
local res, marks, packed = {}, {}, {}
for i = 2, #ARGV - 1, 2 do
  local ukh, lane = ARGV[i], ARGV[i + 1]
  local p = live and packed[lane]
  if live and p == nil then
    p = redis.call('HGET', KEYS[2], lane) or false
    packed[lane] = p
  end
  if p and slot_of(p, ukh) then
    res[#res + 1] = 0
    marks[#marks + 1] = ukh
    marks[#marks + 1] = now
  else
    res[#res + 1] = 1
  end
end
if #marks > 0 then redis.call('HSET', KEYS[2], unpack(marks)) end
return res
