-- cancel: remove a job that waits (scheduled, retrying, ready or dead).
-- KEYS[1] jobs KEYS[2] reasons KEYS[3] sched KEYS[4] retry KEYS[5] ready
-- KEYS[6] dead   ARGV[1] ukh
-- Returns 1 when removed, 0 when not waiting (in flight, unknown, sent).
-- `herald forget` (queue_forget_job) adds KEYS[7] unknown, ARGV[2] the
-- value it read, ARGV[3] that value without the recipient, ARGV[4] the
-- reason masked: a job it cannot remove (in flight, unknown) keeps its
-- place but not the address, so the record it gets is stored in its stead,
-- unless the job changed since it was read, and its reason becomes
-- 'forgotten: ' and the masked one: the mark by which retry, bury and
-- unknown keep the scrubbed record when the worker that holds the job
-- reports with its own copy. Then returns 1 removed, 0 no record (sent, or
-- removed since), 2 scrubbed in flight, 3 scrubbed unknown, 4 changed (read
-- it again).
local ukh = ARGV[1]
local v = redis.call('HGET', KEYS[1], ukh)
if not v then return 0 end
local n = redis.call('ZREM', KEYS[3], ukh) + redis.call('ZREM', KEYS[4], ukh) +
          redis.call('LREM', KEYS[5], 0, ukh) + redis.call('ZREM', KEYS[6], ukh)
if n > 0 then
  redis.call('HDEL', KEYS[1], ukh)
  redis.call('HDEL', KEYS[2], ukh)
  return 1
end
if not ARGV[3] then return 0 end
if v ~= ARGV[2] then return 4 end
redis.call('HSET', KEYS[1], ukh, ARGV[3])
redis.call('HSET', KEYS[2], ukh,
           'forgotten: ' .. (ARGV[4] ~= '' and ARGV[4] or 'herald forget removed its recipient'))
if redis.call('ZSCORE', KEYS[7], ukh) then return 3 end
return 2
