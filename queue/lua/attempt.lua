-- attempt: record that the worker starts sending a job, before the request.
-- KEYS[1] workers  KEYS[2] inflight:WORKER   ARGV[1] worker  ARGV[2] ukh
-- Returns 0 when recorded, 1 when the job or the lease is no longer the
-- worker's (it must not send).
local now = now_ms()
if not inflight_lane(KEYS[2], ARGV[2]) then return 1 end
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp or tonumber(exp) < now then return 1 end
-- the attempt mark (see the prelude): reap sends the job to unknown
redis.call('HSET', KEYS[2], ARGV[2], now)
return 0
