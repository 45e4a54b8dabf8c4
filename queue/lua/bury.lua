-- bury: a job goes to its lane's dead set with the reason.
-- KEYS[1] jobs  KEYS[2] reasons  KEYS[3] inflight:WORKER  KEYS[4] dead:LANE
-- KEYS[5] stats  KEYS[6] unknown:LANE  KEYS[7] lane:LANE
-- ARGV[1] ukh  ARGV[2] reason  ARGV[3] value ('' keeps the stored one)
-- ARGV[4] lane  ARGV[5] '1' when the job must be the worker's in-flight job
-- (otherwise an operator buries it from the unknown set)  ARGV[6] '1' when a
-- part of the job (a thread) was posted
-- The budget the fetch reserved is given back only when nothing was sent:
-- not when a part was posted, nor for a job from the unknown set (it may
-- have been sent).
-- A job `herald forget` scrubbed meanwhile (its reason 'forgotten: ...',
-- cancel.lua) keeps its stored value and that reason: the worker's copy and
-- reason may name the address.
-- Returns 1, or 0 when it was not found where expected.
local now = now_ms()
local forgotten = string.sub(redis.call('HGET', KEYS[2], ARGV[1]) or '', 1, 10) == 'forgotten:'
if ARGV[5] == '1' then
  -- the worker's job, or one reaped while its attempt ran (then unknown)
  if not inflight_take(KEYS[3], ARGV[4], ARGV[1]) and
     redis.call('ZREM', KEYS[6], ARGV[1]) == 0 then
    return 0
  end
else
  if redis.call('ZREM', KEYS[6], ARGV[1]) == 0 then return 0 end
end
if ARGV[5] == '1' and ARGV[6] ~= '1' then
  budget_refund(KEYS[7], {ARGV[1]})
else
  budget_drop(KEYS[7], {ARGV[1]})
end
if not forgotten then
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('HINCRBY', KEYS[5], 'dead|' .. ARGV[4], 1)
bump(KEYS[5], 'dead', ARGV[4], math.floor(now / 60000), 1)
return 1
