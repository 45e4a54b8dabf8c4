-- cancel: remove a job that waits (scheduled, retrying, ready or dead).
-- KEYS[1] jobs KEYS[2] reasons KEYS[3] sched KEYS[4] retry KEYS[5] ready
-- KEYS[6] dead   ARGV[1] ukh
-- Returns 1 when removed, 0 when not waiting (in flight, unknown, sent).
local ukh = ARGV[1]
if redis.call('HEXISTS', KEYS[1], ukh) == 0 then return 0 end
local n = redis.call('ZREM', KEYS[3], ukh) + redis.call('ZREM', KEYS[4], ukh) +
          redis.call('LREM', KEYS[5], 0, ukh) + redis.call('ZREM', KEYS[6], ukh)
if n == 0 then return 0 end
redis.call('HDEL', KEYS[1], ukh)
redis.call('HDEL', KEYS[2], ukh)
return 1
