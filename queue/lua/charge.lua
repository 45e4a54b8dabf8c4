-- charge: a send makes more calls than the one its fetch charged (a thread's
-- further parts): count them in the lane's rate windows and quota left
-- before they go out, so the fleet's limits see every call the platform
-- will, and refuse them when a window or the quota has no room (the fetch
-- admitted the job for its first call only). The budget stays one
-- reservation per job.
-- KEYS[1] lane:LANE   ARGV[1] calls
-- Returns 0 when charged, else (nothing charged) the ms until the last of
-- the full windows or the quota resets.
local flat = redis.call('HGETALL', KEYS[1])
local st = {}
for i = 1, #flat, 2 do st[flat[i]] = flat[i + 1] end
local now = now_ms()
local calls = tonumber(ARGV[1]) or 0
local cost = math.max(1, tonumber(st.cost or '') or 1)
local wait = 0
for i = 1, tonumber(st.nw or '') or 0 do
  local win, start, used = window_at(st, i, now)
  if win > 0 then
    local lim = tonumber(st['w' .. i .. '_limit'] or '') or 0
    if used + calls * cost > lim then wait = math.max(wait, start + win - now) end
  end
end
local reset = tonumber(st.q_reset or '') or 0
if reset > now and st.q_left and (tonumber(st.q_left) or 0) < calls then
  wait = math.max(wait, reset - now)
end
if wait > 0 then return wait end
local h = {}
charge_calls(st, calls, now, h)
if #h > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
return 0
