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

