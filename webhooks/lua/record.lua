-- record.lua: records a batch of engagement events atomically.
-- KEYS: 1 seen:0, 2 events (stream), 3 suppressed (hash), 4 done (hash),
--       5 jobs (hash), 6 platform_ids (hash), 7 eng:jobs, 8 eng:campaigns,
--       9 eng:contacts, 10 eng:totals (hashes), 11 seen:1
-- ARGV: now_ms, seen_period_ms, stream_maxlen, n, has_keys, then 6 per
--       event: id, type, job, campaign, platform, ts_ms; then, if has_keys
--       is 1, 2 per event: platform_key, suppress_digest (else both are ''
--       for every event: most events have neither, and each ARGV costs Redis
--       about 1,000 instructions, 2 % of an event);
--       then 4 per signature token (Mailgun's), if any: the token's seen-id
--       name, the index of its request's first event, its number of events,
--       the digest of its request's signed content (its event-data)
-- Returns a string of one code per event: 1 recorded, 2 duplicate,
-- 3 unmatched, 4 not recorded (its request's token was used before), then
-- one per token: 1 accepted (remembered with the seen ids, its value the
-- digest), 2 a redelivery (used before with the same digest: its events are
-- duplicates), 4 used before with another digest (a replay)
-- (one reply, not an array of n: cheaper on both sides).
-- Each value passed to or from redis.call costs about as much as the Lua
-- work of an event: the script reads what the batch needs in a few HMGETs,
-- decides in plain Lua (locals, no helper calls per event), then writes: one
-- XADD and one HINCRBY per recorded event, the rest once per batch.
local A = ARGV
local now = A[1] -- kept a string: Lua numbers would be re-formatted per call
local n = tonumber(A[4])
-- platform keys and digests: event i's at xo + 2i - 1 and xo + 2i
local xo = A[5] == '1' and 5 + n * 6 or nil
local to = 5 + n * 6 + (xo and n * 2 or 0) -- token t's four: to + 4t - 3 ..
local call, sub, find, match = redis.call, string.sub, string.find, string.match

-- unpack() has a stack limit: long lists go in chunks of 1000
local function hmget(key, list)
  local m = #list
  if m == 0 then return {} end
  if m <= 1000 then return call('HMGET', key, unpack(list)) end
  local res = {}
  for s = 1, m, 1000 do
    local part = call('HMGET', key, unpack(list, s, math.min(s + 999, m)))
    for k = 1, #part do res[s + k - 1] = part[k] end
  end
  return res
end
local function hset(key, list)
  for s = 1, #list, 1000 do
    call('HSET', key, unpack(list, s, math.min(s + 999, #list)))
  end
end

-- Event ids seen are kept in two hashes, one per period (seen_period_ms):
-- the current one and the previous one, so an id is remembered for one to
-- two periods. A hash field is much cheaper than a sorted-set member.
local period = math.floor(tonumber(now) / tonumber(A[2]))
local cur, old = KEYS[1], KEYS[11]
if period % 2 == 1 then cur, old = old, cur end
local old_p = call('HGET', old, '_period')
local stale = old_p and old_p ~= tostring(period - 1) -- old belongs to an expired period
if stale then old_p = nil end

-- Reads, one HMGET per hash per batch: seen ids, {NS}:done for job ids,
-- {NS}:jobs only for job ids not in done (most events come after the send),
-- {NS}:platform_ids only for events that carry a platform id.
local ids, ukhs, pk, pkeys = {}, {}, {}, {}
for i = 1, n do
  local b = i * 6
  ids[i] = A[b]
  local job = A[b + 2]
  ukhs[i] = #job == 20 and sub(job, 9) or '-'
end
if xo then
  for i = 1, n do
    local k = A[xo + 2 * i - 1]
    if k ~= '' then pk[#pk + 1] = i; pkeys[#pkeys + 1] = k end
  end
end
-- Tokens are looked up with the event ids, after them (ids[n + t]).
local nt = (#A - to) / 4
for t = 1, nt do ids[n + t] = A[to + 4 * t - 3] end
-- cur's period is read with its ids (one call less); when cur belongs to
-- an expired period (fresh), what it holds is not seen
local ni = #ids
ids[ni + 1] = '_period'
local in_cur = hmget(cur, ids)
local fresh = in_cur[ni + 1] ~= tostring(period)
ids[ni + 1] = nil
if fresh then in_cur = {} end
local in_old = old_p and hmget(old, ids) or {}
local done = hmget(KEYS[4], ukhs)
-- done[i] is kept only for a sent job (its record starts with the job id)
local queued, qi, qk = {}, {}, {}
for i = 1, n do
  if ukhs[i] == '-' then
    done[i] = false
  else
    local d = done[i]
    if not (d and find(d, A[i * 6 + 2], 1, true) == 1) then
      done[i] = false
      qi[#qi + 1] = i; qk[#qk + 1] = ukhs[i]
    end
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

-- A token used before (or earlier in this batch) with the same digest is a
-- redelivery of the same request (its 200 was lost, or a 503's script ran
-- late): its events are duplicates. With another digest it refuses its
-- request: its events go the duplicates' way, coded 4, and count nowhere.
local tok_out, tok_batch, refused = {}, {}, {}
for t = 1, nt do
  local b = to + 4 * t - 3
  local tok, dig = ids[n + t], A[b + 3]
  local used = in_cur[n + t] or in_old[n + t] or tok_batch[tok]
  if used then
    tok_out[t] = used == dig and '2' or '4'
    local first = tonumber(A[b + 1])
    for i = first, first + tonumber(A[b + 2]) - 1 do
      in_cur[i] = true
      refused[i] = used ~= dig
    end
  else
    tok_out[t] = '1'
    tok_batch[tok] = dig
  end
end

-- Decide, in Lua only: each event's code, job and campaign; the counters'
-- increments; the suppressions and the contacts' job lists.
local out, new_ids, nn, batch_seen = {}, {}, 0, {}
local ejob, ecamp = {}, {} -- of recorded events, when not as sent
local c_jobs, c_camps, c_conts, c_tot = {}, {}, {}, {}
local camp_keys, supp_set, cont_jobs, cont_new = {}, {}, {}, {}
for i = 1, n do
  local b = i * 6
  local id = ids[i]
  if in_cur[i] or in_old[i] or batch_seen[id] then
    if refused[i] then
      out[i] = '4'
    else
      out[i] = '2'
      c_tot.duplicate = (c_tot.duplicate or 0) + 1
    end
  else
    batch_seen[id] = true
    nn = nn + 1
    new_ids[nn * 2 - 1] = id
    new_ids[nn * 2] = now
    local typ, job, camp = A[b + 1], A[b + 2], A[b + 3]
    -- a job id names a job that was sent (in done) or is queued; the
    -- campaign is the job's own when known (jc), not what the event claims
    local d, j, jc = done[i], queued[i], nil
    local matched = d and true or (j and sub(j, 1, 8) == sub(job, 1, 8)) or false
    if d then -- id, platform id, sent at, latency, cost, campaign; the id
      -- (the job's, 20 characters) was checked: the match starts after it
      jc = match(d, '^[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t(.*)', 21)
    elseif matched then -- rare: engagement before the send's ack
      local ok, t = pcall(cmsgpack.unpack, sub(j, 9)) -- key 5: the campaign
      if ok and type(t) == 'table' then jc = type(t[5]) == 'string' and t[5] or '' end
    end
    -- else (or also, for the campaign) the platform's id recorded at send
    local m = pids[i]
    if m and (not matched or not jc) then
      local tab = find(m, '\t', 1, true)
      local mjob = tab and sub(m, 1, tab - 1) or m
      if not matched then job = mjob; matched = true; ejob[i] = job end
      if tab and mjob == job then jc = sub(m, tab + 1) end
    end
    if jc and jc ~= camp then camp = jc; ecamp[i] = camp end
    if matched then
      out[i] = '1'
      local f = job .. '|' .. typ
      c_jobs[f] = (c_jobs[f] or 0) + 1
      if camp ~= '' then -- one "campaign|type" string per pair, not per event
        local ck = camp_keys[camp]
        if not ck then ck = {}; camp_keys[camp] = ck end
        f = ck[typ]
        if not f then f = camp .. '|' .. typ; ck[typ] = f end
        c_camps[f] = (c_camps[f] or 0) + 1
      end
    else
      out[i] = '3'
      c_tot.unmatched = (c_tot.unmatched or 0) + 1
      job = ''
      ejob[i] = ''
    end
    c_tot[typ] = (c_tot[typ] or 0) + 1
    local supp = xo and A[xo + 2 * i] or ''
    if supp ~= '' then
      if (typ == 'bounce' or typ == 'spam' or typ == 'unsubscribe') and not supp_set[supp] then
        supp_set[supp] = typ .. '\t' .. now -- the first reason is kept
      end
      local f = supp .. '|' .. typ
      c_conts[f] = (c_conts[f] or 0) + 1
      if job ~= '' then
        -- the contact's jobs, so `forget` can find their rows (bounded)
        local cf = supp .. '|jobs'
        local js = cont_jobs[cf] or call('HGET', KEYS[9], cf) or ''
        if not find(js, job, 1, true) and #js < 2100 then
          js = js == '' and job or (js .. ' ' .. job)
          cont_new[cf] = js
        end
        cont_jobs[cf] = js
      end
    end
  end
end

-- Writes.
if fresh then
  call('UNLINK', cur) -- freed in the background: it may hold millions of ids
  call('HSET', cur, '_period', period)
end
if stale then call('UNLINK', old) end
local events = KEYS[2]
for i = 1, n do
  local o = out[i]
  if o == '1' or o == '3' then
    local b = i * 6
    call('XADD', events, '*', 'type', A[b + 1], 'job', ejob[i] or A[b + 2],
      'campaign', ecamp[i] or A[b + 3], 'platform', A[b + 4], 'ts', A[b + 5], 'event', A[b])
  end
end
for t = 1, nt do
  if tok_out[t] == '1' then
    new_ids[#new_ids + 1] = ids[n + t]
    new_ids[#new_ids + 1] = A[to + 4 * t]
  end
end
if nn > 0 then call('XTRIM', KEYS[2], 'MAXLEN', '~', A[3]) end
if #new_ids > 0 then hset(cur, new_ids) end
for s, v in pairs(supp_set) do call('HSETNX', KEYS[3], s, v) end
for f, js in pairs(cont_new) do call('HSET', KEYS[9], f, js) end
-- a Lua number argument is formatted with %.17g; most sums are 1
local function incr(key, t)
  for f, v in pairs(t) do call('HINCRBY', key, f, v == 1 and '1' or string.format('%d', v)) end
end
incr(KEYS[7], c_jobs)
incr(KEYS[8], c_camps)
incr(KEYS[9], c_conts)
incr(KEYS[10], c_tot)
return nt > 0 and table.concat(out) .. table.concat(tok_out) or table.concat(out)
