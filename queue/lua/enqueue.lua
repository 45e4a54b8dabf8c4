-- enqueue: add a batch of jobs, grouped by lane, in one atomic step.
-- KEYS[1] jobs  KEYS[2] done  KEYS[3] lanes  KEYS[4] due
-- then per lane group: sched:LANE, ready:LANE
-- ARGV[1] wake channel, ARGV[2] ready channel, then per group:
--   lane, nu, np, earliest run_at of the np plain jobs,
--   nu times (ukh, run_at_ms, value): jobs with a unique key, which may
--     already exist and are looked up one by one;
--   np times (ukh, value), then np times (run_at_ms, ukh): jobs without one
--     (random ukh: new unless the same job is enqueued again, which is
--     checked), laid out so that HSET and ZADD take them whole.
-- A value is the 8-char id time + the msgpack job.
-- Returns {position, code, prefix, ...} for each unique-key job not simply
-- added (position: 1-based over the unique jobs of the whole call; code 2
-- updated, 3 unchanged, 4 done; prefix: the stored 8-char id time).
local now = now_ms()
local jobs, done, lanes, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local old_min = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
local res = {}
local a, k, base = 3, 5, 0
while a <= #ARGV do
  local lane, nu, np = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local pmin = tonumber(ARGV[a + 3])
  a = a + 4
  local sched, ready = KEYS[k], KEYS[k + 1]
  k = k + 2
  redis.call('SADD', lanes, lane)
  local zadd, rpush = {}, {}
  local scheduled = false
  -- place: a job due now goes to the ready list, a later one to the set
  local function place(ukh, run_at)
    if run_at <= now then
      rpush[#rpush + 1] = ukh
    else
      zadd[#zadd + 1] = run_at
      zadd[#zadd + 1] = ukh
    end
  end
  if nu > 0 then
    local ukhs = {}
    for i = 1, nu do ukhs[i] = ARGV[a + 3 * (i - 1)] end
    local existing = redis.call('HMGET', jobs, unpack(ukhs))
    local isdone = redis.call('HMGET', done, unpack(ukhs))
    local hset = {}
    for i = 1, nu do
      local o = a + 3 * (i - 1)
      local ukh, run_at, val = ukhs[i], tonumber(ARGV[o + 1]), ARGV[o + 2]
      if isdone[i] then
        local prefix = ''
        if string.find(isdone[i], '\t') == 21 then prefix = string.sub(isdone[i], 1, 8) end
        res[#res + 1] = base + i
        res[#res + 1] = 4
        res[#res + 1] = prefix
      elseif existing[i] then
        local prefix = string.sub(existing[i], 1, 8)
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
      else
        hset[#hset + 1] = ukh
        hset[#hset + 1] = val
        place(ukh, run_at)
      end
    end
    if #hset > 0 then redis.call('HSET', jobs, unpack(hset)) end
    a = a + 3 * nu
    base = base + nu
  end
  if np > 0 then
    local hs, zs = a, a + 2 * np
    -- a plain ukh is random, so new, unless a caller enqueues the same job
    -- twice (a retry after an error): then it is left alone
    local pu = {}
    for i = 0, np - 1 do pu[i + 1] = ARGV[hs + 2 * i] end
    local ex = redis.call('HMGET', jobs, unpack(pu))
    local fresh = true
    for i = 1, np do
      if ex[i] then fresh = false break end
    end
    if fresh then
      redis.call('HSET', jobs, unpack(ARGV, hs, zs - 1))
    end
    if fresh and pmin > now then
      redis.call('ZADD', sched, unpack(ARGV, zs, zs + 2 * np - 1))
      scheduled = true
    else
      local hset = {}
      for i = 0, np - 1 do
        local run_at, ukh = tonumber(ARGV[zs + 2 * i]), ARGV[zs + 2 * i + 1]
        if fresh or not ex[i + 1] then
          if not fresh then
            hset[#hset + 1] = ukh
            hset[#hset + 1] = ARGV[hs + 2 * i + 1]
          end
          place(ukh, run_at)
        end
      end
      if #hset > 0 then redis.call('HSET', jobs, unpack(hset)) end
    end
    a = zs + 2 * np
  end
  if #zadd > 0 then
    redis.call('ZADD', sched, unpack(zadd))
    scheduled = true
  end
  if #rpush > 0 then
    redis.call('RPUSH', ready, unpack(rpush))
    redis.call('PUBLISH', ARGV[2], lane)
  end
  if scheduled then
    -- the lane's due entry is its earliest time (an update may move it later)
    local head = redis.call('ZRANGE', sched, 0, 0, 'WITHSCORES')
    if #head > 0 then redis.call('ZADD', due, head[2], 's|' .. lane) end
  end
end
local new_min = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
if #new_min > 0 and (#old_min == 0 or tonumber(new_min[2]) < tonumber(old_min[2])) then
  redis.call('PUBLISH', ARGV[1], new_min[2])
end
return res
