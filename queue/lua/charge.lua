-- charge: a send makes more calls than the one its fetch charged (a thread's
-- further parts): count them in the lane's rate windows and quota left,
-- and in its platform's app windows, before they go out, so the fleet's
-- limits see every call the platform will, and refuse them when a window
-- or the quota has no room (the fetch admitted the job for its first call
-- only). The budget stays one reservation per job.
-- KEYS[1] lane:LANE   KEYS[2] app:PLATFORM   ARGV[1] calls
-- Returns 0 when charged, else (nothing charged) the ms until they fit:
-- until enough of the oldest buckets leave every full window, or the
-- quota resets.
local st, app = hash_read(KEYS[1]), hash_read(KEYS[2])
local now = now_ms()
local calls = tonumber(ARGV[1]) or 0
local cost = math.max(1, tonumber(st.cost or '') or 1)
local acost = math.max(1, tonumber(app.cost or '') or 1)
local wait = math.max(win_wait(st, calls * cost, now), win_wait(app, calls * acost, now))
local reset = tonumber(st.q_reset or '') or 0
if reset > now and st.q_left and (tonumber(st.q_left) or 0) < calls then
  wait = math.max(wait, reset - now)
end
if wait > 0 then return wait end
local h = {}
charge_calls(st, calls, now, h)
if #h > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
h = {}
win_charge(app, calls * acost, now, h)
if #h > 0 then redis.call('HSET', KEYS[2], unpack(h)) end
return 0
