-- fetch: take up to max jobs from the worker's lanes into its in-flight
-- record, round robin, skipping paused lanes and lanes the admit hook refuses.
-- KEYS[1] workers  KEYS[2] paused  KEYS[3] jobs  KEYS[4] inflight:WORKER
-- KEYS[5] stats, then per lane: ready:LANE, lane:LANE, app:PLATFORM
-- ARGV[1] worker, ARGV[2] max, ARGV[3] lease_ms, then the lane names.
-- Returns {'ok', lane_index, ukhs, {value, ...}, ...}: one triple per lane
-- visit, its 12-char ukhs packed in one string (as in the in-flight record)
-- and their values as HMGET gave them, no per-job table; a negative index
-- marks the half-open circuit's probe. When this call parked or resumed a
-- lane (its budget), one last element follows: {lane, 1 parked | 0 resumed,
-- ...}; the change happens once for the fleet, so exactly one worker hears
-- of it and logs it. {'lease'} when the worker's lease is gone (reaped:
-- register again).
local now = now_ms()
local workers, paused, jobs, inflight, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local worker, max, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local exp = redis.call('ZSCORE', workers, worker)
if not exp or tonumber(exp) < now then return {'lease'} end
redis.call('ZADD', workers, now + lease, worker)

-- admit(lane, state_key, want, st, app): how many jobs this lane may start
-- now (st: the lane's state hash as read; app: its platform's app hash).
-- HOOK: the fleet rate limiter and budget (worker module) decide here, from
-- the lane's state hash, its platform's app hash and Redis TIME. The worker
-- writes the limits into them (nw, w<i>_ms, w<i>_limit, cost; the lane's
-- also b_cost, b_day_cap, b_month_cap); this script keeps the usage (the
-- sliding windows' buckets w<i>_b, see win_load; b_day/_used,
-- b_month/_used, q_left/q_reset from the platform's quota headers) and
-- sets parked=budget while a budget cap holds the lane.
local day_id, month_id = budget_period(now)

local function num(st, k, def) return tonumber(st[k] or '') or def end
local parks = {} -- lane, 1 parked | 0 resumed: the reply's last element

local function admit(lane, state_key, want, st, app)
  if st.parked and st.parked ~= '0' and st.parked ~= 'budget' then return 0 end
  -- the fleet's circuit breaker (circuit.lua opens it, ack closes it): open,
  -- nothing until circuit_until_ms; then half-open: one probe job for the
  -- whole fleet, and another only if that one has not reported by
  -- c_probe_until (its worker died: the lease is the deadline)
  local gated = st.circuit == 'open' or st.circuit == 'half-open'
  if gated then
    local gate = st.circuit == 'open' and 'circuit_until_ms' or 'c_probe_until'
    if now < num(st, gate, 0) then return 0 end
  end
  local n = math.min(want, win_fit(st, now, math.max(1, num(st, 'cost', 1))))
  -- the platform said how many calls are left until its reset
  if num(st, 'q_reset', 0) > now then
    local left = num(st, 'q_left', n)
    if left < n then n = left end
  end
  local bcost = num(st, 'b_cost', 0)
  if bcost > 0 then
    local dcap, mcap = num(st, 'b_day_cap', 0), num(st, 'b_month_cap', 0)
    local dused = num(st, 'b_day', 0) == day_id and num(st, 'b_day_used', 0) or 0
    local mused = num(st, 'b_month', 0) == month_id and num(st, 'b_month_used', 0) or 0
    local bn = n
    if dcap > 0 then bn = math.min(bn, math.floor((dcap - dused) / bcost)) end
    if mcap > 0 then bn = math.min(bn, math.floor((mcap - mused) / bcost)) end
    if bn <= 0 and n > 0 then
      -- parked, not dropped: visible in stats until the cap lifts
      if st.parked ~= 'budget' then
        redis.call('HSET', state_key, 'parked', 'budget')
        parks[#parks + 1] = lane
        parks[#parks + 1] = 1
      end
      return 0
    end
    n = bn
  end
  if st.parked == 'budget' then
    redis.call('HDEL', state_key, 'parked')
    parks[#parks + 1] = lane
    parks[#parks + 1] = 0
  end
  -- the platform's limits for the whole app (all its accounts), after the
  -- budget: a lane it holds back is not parked
  n = math.min(n, win_fit(app, now, math.max(1, num(app, 'cost', 1))))
  if n < 0 then n = 0 end
  -- the probe is marked once a job is taken (below): an empty lane must
  -- not use up the fleet's one probe until its deadline
  if gated and n > 0 then return 1, true end
  return n, false
end

-- charge(state_key, ids, st, app_key, app): the jobs ids were taken: count
-- them in every window of the lane and of its app, the quota left, and
-- reserve their cost in the budget, noting the day of each reservation
-- (committed by the send; given back by the script that moves a job out
-- unsent: retry, bury, reap's requeue, resolve's resend). st, app: the
-- hashes admit read (this script changed at most st's 'parked' field since;
-- app follows its charges, for the next lane of the platform).
local function charge(state_key, ids, st, app_key, app)
  local k = #ids
  local h = {}
  win_charge(app, k * math.max(1, num(app, 'cost', 1)), now, h)
  if #h > 0 then redis.call('HSET', app_key, unpack(h)) end
  h = {}
  charge_calls(st, k, now, h) -- one call each; a thread's other parts: charge.lua
  local bcost = num(st, 'b_cost', 0)
  if bcost > 0 then
    local dused = num(st, 'b_day', 0) == day_id and num(st, 'b_day_used', 0) or 0
    local mused = num(st, 'b_month', 0) == month_id and num(st, 'b_month_used', 0) or 0
    h[#h + 1] = 'b_day'
    h[#h + 1] = day_id
    h[#h + 1] = 'b_day_used'
    h[#h + 1] = dused + k * bcost
    h[#h + 1] = 'b_month'
    h[#h + 1] = month_id
    h[#h + 1] = 'b_month_used'
    h[#h + 1] = mused + k * bcost
    -- the day each reserved in: a refund goes back there (budget_refund)
    for c = 1, k, 2000 do
      local notes = {}
      for x = c, math.min(c + 1999, k) do
        notes[#notes + 1] = 'r|' .. ids[x]
        notes[#notes + 1] = day_id
      end
      redis.call('HSET', state_key, unpack(notes))
    end
  end
  if #h > 0 then redis.call('HSET', state_key, unpack(h)) end
end

local nl = (#KEYS - 5) / 3
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
local packed = {} -- lane -> its in-flight field, read once, written once
local apps = {} -- app key -> its hash, read once, kept up to date by charge
local remaining = max
while remaining > 0 and #active > 0 do
  local still = {}
  for pos, i in ipairs(active) do
    if remaining <= 0 then break end
    local lanes_left = #active - pos + 1
    local want = math.ceil(remaining / lanes_left)
    local ready, state_key, app_key = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
    local lane = ARGV[3 + i]
    local st = hash_read(state_key)
    local app = apps[app_key]
    if not app then
      app = hash_read(app_key)
      apps[app_key] = app
    end
    local n, probe = admit(lane, state_key, want, st, app)
    if n > 0 then
      local ids = redis.call('LPOP', ready, n)
      if ids then
        local got = #ids
        local vals = redis.call('HMGET', jobs, unpack(ids))
        for j = 1, got do
          if not vals[j] then
            -- ready entries without a job (cancelled concurrently): dropped
            local ki, kv = {}, {}
            for x = 1, got do
              if vals[x] then
                ki[#ki + 1] = ids[x]
                kv[#kv + 1] = vals[x]
              end
            end
            redis.call('HINCRBY', stats, 'dangling|' .. lane, got - #ki)
            ids, vals = ki, kv
            break
          end
        end
        if #ids > 0 then
          if probe then
            redis.call('HSET', state_key, 'circuit', 'half-open', 'c_probe_until', now + lease)
          end
          if packed[lane] == nil then
            packed[lane] = redis.call('HGET', inflight, lane) or ''
          end
          local got_ids = table.concat(ids)
          packed[lane] = packed[lane] .. got_ids
          out[#out + 1] = probe and -i or i
          out[#out + 1] = got_ids
          out[#out + 1] = vals
          remaining = remaining - #ids
          charge(state_key, ids, st, app_key, app)
        end
        if got == n then still[#still + 1] = i end
      end
    end
  end
  active = still
end
local h = {}
for lane, p in pairs(packed) do
  h[#h + 1] = lane
  h[#h + 1] = p
end
if #h > 0 then redis.call('HSET', inflight, unpack(h)) end
if #parks > 0 then out[#out + 1] = parks end
return out
