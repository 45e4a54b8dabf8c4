-- fetch: take up to max jobs from the worker's lanes into its in-flight
-- record, round robin, skipping paused lanes and lanes the admit hook refuses.
-- KEYS[1] workers  KEYS[2] paused  KEYS[3] jobs  KEYS[4] inflight:WORKER
-- KEYS[5] stats, then per lane: ready:LANE, lane:LANE
-- ARGV[1] worker, ARGV[2] max, ARGV[3] lease_ms, then the lane names.
-- Returns {'ok', lane_index, ukh, value, ...} or {'lease'} when the worker's
-- lease is gone (it was reaped and must register again).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local workers, paused, jobs, inflight, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local worker, max, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local exp = redis.call('ZSCORE', workers, worker)
if not exp or tonumber(exp) < now then return {'lease'} end
redis.call('ZADD', workers, now + lease, worker)

-- admit(lane, state_key, want): how many jobs this lane may start now.
-- HOOK: the fleet rate limiter, circuit breaker and budget (worker module)
-- decide here, from the lane's state hash and Redis TIME.
local function admit(lane, state_key, want)
  local parked = redis.call('HGET', state_key, 'parked')
  if parked and parked ~= '0' then return 0 end
  return want
end

local nl = (#KEYS - 5) / 2
local active = {}
for i = 1, nl do
  local lane = ARGV[3 + i]
  local platform = string.match(lane, '^([^:]*)')
  if redis.call('SISMEMBER', paused, lane) == 0 and
     redis.call('SISMEMBER', paused, platform) == 0 then
    active[#active + 1] = i
  end
end
local out = {'ok'}
local remaining = max
while remaining > 0 and #active > 0 do
  local still = {}
  for pos, i in ipairs(active) do
    if remaining <= 0 then break end
    local lanes_left = #active - pos + 1
    local want = math.ceil(remaining / lanes_left)
    local ready, state_key, lane = KEYS[4 + 2 * i], KEYS[5 + 2 * i], ARGV[3 + i]
    local n = admit(lane, state_key, want)
    if n > 0 then
      local ids = redis.call('LPOP', ready, n)
      if ids then
        local vals = redis.call('HMGET', jobs, unpack(ids))
        local hset = {}
        local entry = lane .. '\t' .. now .. '\t0'
        for j = 1, #ids do
          if vals[j] then
            hset[#hset + 1] = ids[j]
            hset[#hset + 1] = entry
            out[#out + 1] = i
            out[#out + 1] = ids[j]
            out[#out + 1] = vals[j]
            remaining = remaining - 1
          else
            -- a ready entry without a job (cancelled concurrently): drop it
            redis.call('HINCRBY', stats, 'dangling|' .. lane, 1)
          end
        end
        if #hset > 0 then redis.call('HSET', inflight, unpack(hset)) end
        if #ids == n then still[#still + 1] = i end
      end
    end
  end
  active = still
end
return out
