-- enqueue: add a batch of jobs, grouped by lane, in one atomic step.
-- KEYS[1] jobs  KEYS[2] done  KEYS[3] lanes  KEYS[4] due
-- then per lane group: sched:LANE, ready:LANE
-- ARGV[1] wake channel, ARGV[2] ready channel, then per group:
--   lane, n, then n times: ukh, run_at_ms, unique ('1' or ''), value
--   (value: 8-char id time + msgpack). Only jobs with a unique key can
--   already exist, so only they are looked up.
-- Returns {index, code, prefix, ...} for every job not simply added (1-based
-- index in the batch; code 2 updated, 3 unchanged, 4 done; prefix: the
-- stored 8-char id time).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local jobs, done, lanes, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local old_min = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
local res = {}
local a, k, base = 3, 5, 0
while a <= #ARGV do
  local lane, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local sched, ready = KEYS[k], KEYS[k + 1]
  k = k + 2
  redis.call('SADD', lanes, lane)
  local uidx, ukhs = {}, {}
  for i = 1, n do
    if ARGV[a + 4 * (i - 1) + 2] == '1' then
      uidx[#uidx + 1] = i
      ukhs[#ukhs + 1] = ARGV[a + 4 * (i - 1)]
    end
  end
  local state = {}
  if #ukhs > 0 then
    local existing = redis.call('HMGET', jobs, unpack(ukhs))
    local isdone = redis.call('HMGET', done, unpack(ukhs))
    for j = 1, #ukhs do
      if isdone[j] then
        state[uidx[j]] = {4, isdone[j]}
      elseif existing[j] then
        state[uidx[j]] = {3, existing[j]}
      end
    end
  end
  local hset, zadd, rpush = {}, {}, {}
  local scheduled = false
  for i = 1, n do
    local o = a + 4 * (i - 1)
    local ukh, run_at, val = ARGV[o], tonumber(ARGV[o + 1]), ARGV[o + 3]
    local st = state[i]
    if not st then
      hset[#hset + 1] = ukh
      hset[#hset + 1] = val
      if run_at <= now then
        rpush[#rpush + 1] = ukh
      else
        zadd[#zadd + 1] = run_at
        zadd[#zadd + 1] = ukh
        scheduled = true
      end
    elseif st[1] == 4 then
      local prefix = ''
      if string.find(st[2], '\t') == 21 then prefix = string.sub(st[2], 1, 8) end
      res[#res + 1] = base + i
      res[#res + 1] = 4
      res[#res + 1] = prefix
    else
      local prefix = string.sub(st[2], 1, 8)
      local code = 3
      if redis.call('ZSCORE', sched, ukh) then
        -- still scheduled: take the new content and time, keep the first id
        redis.call('HSET', jobs, ukh, prefix .. string.sub(val, 9))
        if run_at <= now then
          redis.call('ZREM', sched, ukh)
          rpush[#rpush + 1] = ukh
        else
          redis.call('ZADD', sched, run_at, ukh)
          scheduled = true
        end
        code = 2
      end
      res[#res + 1] = base + i
      res[#res + 1] = code
      res[#res + 1] = prefix
    end
  end
  for c = 1, #hset, 4000 do
    redis.call('HSET', jobs, unpack(hset, c, math.min(c + 3999, #hset)))
  end
  for c = 1, #zadd, 4000 do
    redis.call('ZADD', sched, unpack(zadd, c, math.min(c + 3999, #zadd)))
  end
  if #rpush > 0 then
    for c = 1, #rpush, 4000 do
      redis.call('RPUSH', ready, unpack(rpush, c, math.min(c + 3999, #rpush)))
    end
    redis.call('PUBLISH', ARGV[2], lane)
  end
  if scheduled then
    -- the lane's due entry is its earliest time (an update may move it later)
    local head = redis.call('ZRANGE', sched, 0, 0, 'WITHSCORES')
    if #head > 0 then redis.call('ZADD', due, head[2], 's|' .. lane) end
  end
  a = a + 4 * n
  base = base + n
end
local new_min = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
if #new_min > 0 and (#old_min == 0 or tonumber(new_min[2]) < tonumber(old_min[2])) then
  redis.call('PUBLISH', ARGV[1], new_min[2])
end
return res
