-- enqueue: add a batch of jobs, grouped by lane, in one atomic step.
-- KEYS[1] jobs  KEYS[2] done  KEYS[3] lanes  KEYS[4] due
-- then per lane group: sched:LANE, ready:LANE
-- ARGV[1] wake channel, ARGV[2] ready channel, then per group:
--   lane, n, then n times: ukh, run_at_ms, value (8-char id time + msgpack)
-- Returns, per job: code (1 added, 2 updated, 3 unchanged, 4 done) and the
-- job's stored 8-char time prefix ('' when new).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local jobs, done, lanes, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local old_min = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
local res = {}
local a, k = 3, 5
while a <= #ARGV do
  local lane, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local sched, ready = KEYS[k], KEYS[k + 1]
  k = k + 2
  redis.call('SADD', lanes, lane)
  local ukhs = {}
  for i = 1, n do ukhs[i] = ARGV[a + 3 * (i - 1)] end
  local existing = redis.call('HMGET', jobs, unpack(ukhs))
  local isdone = redis.call('HMGET', done, unpack(ukhs))
  local hset, zadd, rpush = {}, {}, {}
  local minsched
  for i = 1, n do
    local ukh = ukhs[i]
    local run_at = tonumber(ARGV[a + 3 * (i - 1) + 1])
    local val = ARGV[a + 3 * (i - 1) + 2]
    if isdone[i] then
      res[#res + 1] = 4
      if string.find(isdone[i], '\t') == 21 then
        res[#res + 1] = string.sub(isdone[i], 1, 8)
      else
        res[#res + 1] = ''
      end
    elseif existing[i] then
      local prefix = string.sub(existing[i], 1, 8)
      if redis.call('ZSCORE', sched, ukh) then
        -- still scheduled: take the new content and time, keep the first id
        redis.call('HSET', jobs, ukh, prefix .. string.sub(val, 9))
        if run_at <= now then
          redis.call('ZREM', sched, ukh)
          rpush[#rpush + 1] = ukh
        else
          redis.call('ZADD', sched, run_at, ukh)
          if not minsched or run_at < minsched then minsched = run_at end
        end
        res[#res + 1] = 2
      else
        res[#res + 1] = 3
      end
      res[#res + 1] = prefix
    else
      hset[#hset + 1] = ukh
      hset[#hset + 1] = val
      if run_at <= now then
        rpush[#rpush + 1] = ukh
      else
        zadd[#zadd + 1] = run_at
        zadd[#zadd + 1] = ukh
        if not minsched or run_at < minsched then minsched = run_at end
      end
      res[#res + 1] = 1
      res[#res + 1] = ''
    end
  end
  if #hset > 0 then redis.call('HSET', jobs, unpack(hset)) end
  if #zadd > 0 then redis.call('ZADD', sched, unpack(zadd)) end
  if #rpush > 0 then
    redis.call('RPUSH', ready, unpack(rpush))
    redis.call('PUBLISH', ARGV[2], lane)
  end
  if minsched then
    -- keep the lane's entry in due at its earliest time (also after an update
    -- moved the head later: recompute from the set itself)
    local head = redis.call('ZRANGE', sched, 0, 0, 'WITHSCORES')
    if #head > 0 then redis.call('ZADD', due, head[2], 's|' .. lane) end
  end
  a = a + 3 * n
end
local new_min = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
if #new_min > 0 and (#old_min == 0 or tonumber(new_min[2]) < tonumber(old_min[2])) then
  redis.call('PUBLISH', ARGV[1], new_min[2])
end
return res
