-- unknown: the worker cannot tell whether its job was sent (its answer was
-- lost and an inline read-back cannot prove either way): the job leaves its
-- in-flight record for its lane's unknown set, where the reconciler (or an
-- operator) settles it. Its budget stays reserved (it may have been spent).
-- KEYS[1] jobs  KEYS[2] inflight:WORKER  KEYS[3] unknown:LANE  KEYS[4] reasons
-- KEYS[5] stats
-- ARGV[1] ukh  ARGV[2] lane  ARGV[3] reason  ARGV[4] value ('' keeps the
-- stored one: the parts of a thread already sent)
-- Returns 1, or 0 when the job was not the worker's (reaped: the reaper put
-- it in unknown already). A job `herald forget` scrubbed meanwhile (its
-- reason 'forgotten: ...', cancel.lua) keeps its stored value and reason.
if not inflight_take(KEYS[2], ARGV[2], ARGV[1]) then return 0 end
if string.sub(redis.call('HGET', KEYS[4], ARGV[1]) or '', 1, 10) ~= 'forgotten:' then
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[4]) end
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
end
redis.call('ZADD', KEYS[3], now_ms(), ARGV[1])
redis.call('HINCRBY', KEYS[5], 'unknown', 1)
return 1
