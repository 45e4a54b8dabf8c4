-- charge: a send makes more calls than the one its fetch charged (a thread's
-- further parts): count them in the lane's rate windows and quota left, so
-- the fleet's limits see every call the platform will. The budget stays one
-- reservation per job.
-- KEYS[1] lane:LANE   ARGV[1] calls
local flat = redis.call('HGETALL', KEYS[1])
local st = {}
for i = 1, #flat, 2 do st[flat[i]] = flat[i + 1] end
local h = {}
charge_calls(st, tonumber(ARGV[1]) or 0, now_ms(), h)
if #h > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
return 1
