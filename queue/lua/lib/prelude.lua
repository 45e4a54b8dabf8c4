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
