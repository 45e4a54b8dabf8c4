-- record.lua: records a batch of engagement events atomically.
-- KEYS: 1 seen (zset event id -> ms), 2 events (stream), 3 suppressed (hash),
--       4 done (hash), 5 jobs (hash), 6 platform_ids (hash), 7 eng:jobs,
--       8 eng:campaigns, 9 eng:contacts, 10 eng:totals (hashes)
-- ARGV: now_ms, seen_retention_ms, stream_maxlen, n, then 8 per event:
--       id, type, job, campaign, platform_key, suppress_digest, platform, ts_ms
-- Returns one code per event: 1 recorded, 2 duplicate, 3 unmatched.
local now = ARGV[1] -- kept a string: Lua numbers would be re-formatted per call
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(now) - tonumber(ARGV[2])))
local maxlen = ARGV[3]
local n = tonumber(ARGV[4])
local out = {}
-- counters are summed here and written once per field per batch
local incr = {{}, {}, {}, {}} -- eng:jobs, eng:campaigns, eng:contacts, eng:totals
local function add(t, f) t[f] = (t[f] or 0) + 1 end
for i = 0, n - 1 do
  local b = 5 + i * 8
  local id, typ, job, camp = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local pkey, supp, plat, ts = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7]
  if redis.call('ZADD', KEYS[1], 'NX', now, id) == 0 then
    out[i + 1] = 2
    add(incr[4], 'duplicate')
  else
    local matched = false
    -- a job id names a job that is queued or was sent: check it exists
    if string.len(job) == 20 then
      local ukh = string.sub(job, 9)
      local d = redis.call('HGET', KEYS[4], ukh)
      if d and string.sub(d, 1, 20) == job then
        matched = true
      else
        local j = redis.call('HGET', KEYS[5], ukh)
        if j and string.sub(j, 1, 8) == string.sub(job, 1, 8) then matched = true end
      end
    end
    -- else (or also, for the campaign) the platform's id recorded at send
    if pkey ~= '' and (not matched or camp == '') then
      local m = redis.call('HGET', KEYS[6], pkey)
      if m then
        local tab = string.find(m, '\t', 1, true)
        local mjob = tab and string.sub(m, 1, tab - 1) or m
        if not matched then job = mjob; matched = true end
        if camp == '' and tab and mjob == job then camp = string.sub(m, tab + 1) end
      end
    end
    if matched then
      out[i + 1] = 1
      add(incr[1], job .. '|' .. typ)
      if camp ~= '' then add(incr[2], camp .. '|' .. typ) end
    else
      out[i + 1] = 3
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
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'type', typ, 'job', job,
      'campaign', camp, 'platform', plat, 'ts', ts, 'event', id)
  end
end
for k = 1, 4 do
  for f, v in pairs(incr[k]) do redis.call('HINCRBY', KEYS[6 + k], f, v) end
end
return out
