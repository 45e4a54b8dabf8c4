-- enqueue: add a batch of jobs, grouped by lane, in one atomic step.
-- KEYS[1] jobs  KEYS[2] done  KEYS[3] lanes  KEYS[4] due
-- then nl import locks (importing:CAMPAIGN, one per campaign whose unique
-- keys the batch has), then per lane group: sched:LANE, ready:LANE
-- ARGV[1] wake channel, ARGV[2] ready channel, ARGV[3] nl, ARGV[4] the
-- caller's import lock token ('' when not an import), then per group:
--   lane, nu, np, the earliest run_at of the group's n = nu + np jobs,
--   n times (ukh, value), then n times (run_at_ms, ukh): the nu jobs with a
--   unique key first (they may exist already, or be sent: done), then the np
--   without one (random ukh: new unless the same job is enqueued again).
--   Laid out so that HSET and ZADD take them whole, times as sent.
-- A value is the 8-char id time + the msgpack job.
-- Returns {position, code, prefix, ...} for each unique-key job not simply
-- added (position: 1-based over the unique jobs of the whole call; code 2
-- updated, 3 unchanged, 4 done; prefix: the stored 8-char id time).
-- A failed call writes nothing: every key's type is read before the first
-- write (a wrong type is the one error a write can meet here, and Redis
-- refuses a script for OOM only at its first write), O(1) per lane group.
-- refused whole while a lock is another's (ops.c, enqueue_locks, says why)
local nl, token = tonumber(ARGV[3]), ARGV[4]
for i = 5, 4 + nl do
  local held = redis.call('GET', KEYS[i])
  if token == '' and held then
    return redis.error_reply('IMPORTING ' .. i - 4 .. ' ' .. redis.call('PTTL', KEYS[i]))
  elseif token ~= '' and held ~= token then
    return redis.error_reply('NOTLOCKED ' .. i - 4)
  end
end
local now = now_ms()
-- an importer's call (its lock's token) writes into lanes it holds
-- (import.c): a job due now is scheduled at its time, not made ready, so
-- nothing of an import is sent before it has succeeded (issue #4)
local holding = token ~= ''
local jobs, done, lanes, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local old_min = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
redis.call('HLEN', jobs)
redis.call('HLEN', done)
redis.call('SCARD', lanes)
for k = 5 + nl, #KEYS, 2 do
  redis.call('ZCARD', KEYS[k])
  redis.call('LLEN', KEYS[k + 1])
end
local res = {}
local a, k, base = 5, 5 + nl, 0
while a <= #ARGV do
  local lane, nu, np = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local n, tmin = nu + np, tonumber(ARGV[a + 3])
  local hs = a + 4      -- first (ukh, value) pair
  local zs = hs + 2 * n -- first (run_at, ukh) pair
  a = zs + 2 * n
  local sched, ready = KEYS[k], KEYS[k + 1]
  k = k + 2
  redis.call('SADD', lanes, lane)
  local ukhs = {}
  for i = 1, n do ukhs[i] = ARGV[zs + 2 * i - 1] end
  local ex = redis.call('HMGET', jobs, unpack(ukhs))
  local dn = {}
  if nu > 0 then dn = redis.call('HMGET', done, unpack(ukhs, 1, nu)) end
  -- the common case of a bulk import: every job new and later than now
  local fresh = tmin > now
  for i = 1, n do
    if not fresh then break end
    if ex[i] or dn[i] then fresh = false end
  end
  local scheduled = false
  if fresh then
    -- scheduled first: a job stored but never scheduled would block every
    -- later import of it (found, so "unchanged")
    redis.call('ZADD', sched, unpack(ARGV, zs, a - 1))
    redis.call('HSET', jobs, unpack(ARGV, hs, zs - 1))
    scheduled = true
  else
    local hset, zadd, rpush = {}, {}, {}
    for i = 1, n do
      local ukh, val = ukhs[i], ARGV[hs + 2 * i - 1]
      local at = ARGV[zs + 2 * i - 2] -- kept a string: ZADD takes it as sent
      local due_now = not holding and tonumber(at) <= now
      if i <= nu and dn[i] then
        local prefix = ''
        if string.find(dn[i], '\t') == 21 then prefix = string.sub(dn[i], 1, 8) end
        res[#res + 1] = base + i
        res[#res + 1] = 4
        res[#res + 1] = prefix
      elseif ex[i] then
        -- a plain job enqueued twice (a retry after an error) is left alone
        if i <= nu then
          local prefix = string.sub(ex[i], 1, 8)
          local code = 3
          if redis.call('ZSCORE', sched, ukh) then
            -- still scheduled: take the new content and time, keep the first id
            redis.call('HSET', jobs, ukh, prefix .. string.sub(val, 9))
            if due_now then
              redis.call('ZREM', sched, ukh)
              rpush[#rpush + 1] = ukh
            else
              redis.call('ZADD', sched, at, ukh)
              scheduled = true
            end
            code = 2
          end
          res[#res + 1] = base + i
          res[#res + 1] = code
          res[#res + 1] = prefix
        end
      else
        hset[#hset + 1] = ukh
        hset[#hset + 1] = val
        -- a job due now goes to the ready list, a later one to the set
        if due_now then
          rpush[#rpush + 1] = ukh
        else
          zadd[#zadd + 1] = at
          zadd[#zadd + 1] = ukh
        end
      end
    end
    if #zadd > 0 then
      redis.call('ZADD', sched, unpack(zadd))
      scheduled = true
    end
    if #rpush > 0 then
      redis.call('RPUSH', ready, unpack(rpush))
      redis.call('PUBLISH', ARGV[2], lane)
    end
    if #hset > 0 then redis.call('HSET', jobs, unpack(hset)) end -- last, as above
  end
  base = base + nu
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
