-- record.lua: records a batch of engagement events atomically.
-- KEYS: 1 seen:0, 2 events (stream), 3 suppressed (hash), 4 done (hash),
--       5 jobs (hash), 6 platform_ids (hash), 7 eng:jobs, 8 eng:campaigns,
--       9 eng:contacts, 10 eng:totals (hashes), 11 seen:1
-- ARGV: now_ms, seen_period_ms, stream_maxlen, n, then 8 per event:
--       id, type, job, campaign, platform_key, suppress_digest, platform, ts_ms
-- Returns a string of one code per event: 1 recorded, 2 duplicate,
-- 3 unmatched (one reply, not an array of n: cheaper on both sides).
local now = ARGV[1] -- kept a string: Lua numbers would be re-formatted per call
-- Event ids seen are kept in two hashes, one per period (seen_period_ms):
-- the current one and the previous one, so an id is remembered for one to
-- two periods. A hash field is much cheaper than a sorted-set member.
local period = math.floor(tonumber(now) / tonumber(ARGV[2]))
local cur, old = KEYS[1], KEYS[11]
if period % 2 == 1 then cur, old = old, cur end
if redis.call('HGET', cur, '_period') ~= tostring(period) then
  redis.call('UNLINK', cur) -- freed in the background: it may hold millions of ids
  redis.call('HSET', cur, '_period', period)
end
local old_p = redis.call('HGET', old, '_period')
if old_p and old_p ~= tostring(period - 1) then
  redis.call('UNLINK', old)
  old_p = nil
end
local maxlen = ARGV[3]
local n = tonumber(ARGV[4])
local out = {}
-- counters are summed here and written once per field per batch
local incr = {{}, {}, {}, {}} -- eng:jobs, eng:campaigns, eng:contacts, eng:totals
local function add(t, f) t[f] = (t[f] or 0) + 1 end

-- unpack() has a stack limit: big batches go in chunks
local function hmget(key, list)
  local res = {}
  for s = 1, #list, 1000 do
    local part = redis.call('HMGET', key, unpack(list, s, math.min(s + 999, #list)))
    for k = 1, #part do res[s + k - 1] = part[k] end
  end
  return res
end

-- Read everything the batch needs in a few HMGETs rather than per event,
-- each hash only for the events that need it: {NS}:jobs for job ids not in
-- {NS}:done (most events come after the send), {NS}:platform_ids for events
-- that carry a platform id. (Every value passed to or from redis.call costs
-- about as much as the rest of an event's work.)
local ids, ukhs, pk, pkeys = {}, {}, {}, {}
for i = 0, n - 1 do
  local b = 5 + i * 8
  ids[i + 1] = ARGV[b]
  local job = ARGV[b + 2]
  ukhs[i + 1] = string.len(job) == 20 and string.sub(job, 9) or '-'
  if ARGV[b + 4] ~= '' then pk[#pk + 1] = i + 1; pkeys[#pkeys + 1] = ARGV[b + 4] end
end
local in_cur = hmget(cur, ids)
local in_old = old_p and hmget(old, ids) or {}
local done = hmget(KEYS[4], ukhs)
local sent, qi, qk, queued = {}, {}, {}, {}
for i = 1, n do
  local d = done[i]
  if d and ukhs[i] ~= '-' and string.find(d, ARGV[i * 8 - 1], 1, true) == 1 then
    sent[i] = true
  elseif ukhs[i] ~= '-' then
    qi[#qi + 1] = i; qk[#qk + 1] = ukhs[i]
  end
end
if #qk > 0 then
  local got = hmget(KEYS[5], qk)
  for k = 1, #qi do queued[qi[k]] = got[k] end
end
local pids = {}
if #pkeys > 0 then
  local got = hmget(KEYS[6], pkeys)
  for k = 1, #pk do pids[pk[k]] = got[k] end
end

local new_ids = {}
local batch_seen, camp_keys = {}, {}
for i = 0, n - 1 do
  local b = 5 + i * 8
  local id, typ, job, camp = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local supp, plat, ts = ARGV[b + 5], ARGV[b + 6], ARGV[b + 7]
  if in_cur[i + 1] or in_old[i + 1] or batch_seen[id] then
    out[i + 1] = '2'
    add(incr[4], 'duplicate')
  else
    batch_seen[id] = true
    new_ids[#new_ids + 1] = id
    new_ids[#new_ids + 1] = now
    local matched = false
    -- a job id names a job that is queued or was sent: check it exists
    local j = queued[i + 1]
    if sent[i + 1] or (j and string.sub(j, 1, 8) == string.sub(job, 1, 8)) then
      matched = true
    end
    -- else (or also, for the campaign) the platform's id recorded at send
    local m = pids[i + 1]
    if m and (not matched or camp == '') then
      local tab = string.find(m, '\t', 1, true)
      local mjob = tab and string.sub(m, 1, tab - 1) or m
      if not matched then job = mjob; matched = true end
      if camp == '' and tab and mjob == job then camp = string.sub(m, tab + 1) end
    end
    if matched then
      out[i + 1] = '1'
      add(incr[1], job .. '|' .. typ)
      if camp ~= '' then -- one "campaign|type" string per pair, not per event
        local ck = camp_keys[camp]
        if not ck then ck = {}; camp_keys[camp] = ck end
        local f = ck[typ]
        if not f then f = camp .. '|' .. typ; ck[typ] = f end
        add(incr[2], f)
      end
    else
      out[i + 1] = '3'
      add(incr[4], 'unmatched')
      job = ''
    end
    add(incr[4], typ)
    if supp ~= '' then
      if typ == 'bounce' or typ == 'spam' or typ == 'unsubscribe' then
        redis.call('HSETNX', KEYS[3], supp, typ .. '\t' .. now)
      end
      add(incr[3], supp .. '|' .. typ)
      if job ~= '' then
        -- the contact's jobs, so `forget` can find their rows (bounded)
        local f = supp .. '|jobs'
        local js = redis.call('HGET', KEYS[9], f) or ''
        if not string.find(js, job, 1, true) and string.len(js) < 2100 then
          redis.call('HSET', KEYS[9], f, js == '' and job or (js .. ' ' .. job))
        end
      end
    end
    redis.call('XADD', KEYS[2], '*', 'type', typ, 'job', job,
      'campaign', camp, 'platform', plat, 'ts', ts, 'event', id)
  end
end
if #new_ids > 0 then redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', maxlen) end
for s = 1, #new_ids, 1000 do
  redis.call('HSET', cur, unpack(new_ids, s, math.min(s + 999, #new_ids)))
end
for k = 1, 4 do
  -- a Lua number argument is formatted with %.17g; most sums are 1
  for f, v in pairs(incr[k]) do
    redis.call('HINCRBY', KEYS[6 + k], f, v == 1 and '1' or string.format('%d', v))
  end
end
return table.concat(out)
