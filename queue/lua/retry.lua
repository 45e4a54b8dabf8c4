-- retry: the worker's job goes back to its lane's retry set at a time.
-- KEYS[1] jobs  KEYS[2] due  KEYS[3] inflight:WORKER  KEYS[4] retry:LANE
-- KEYS[5] stats  KEYS[6] unknown:LANE  KEYS[7] reasons  KEYS[8] lane:LANE
-- ARGV[1] ukh  ARGV[2] at_ms  ARGV[3] value  ARGV[4] lane  ARGV[5] wake channel
-- ARGV[6] '1' when ARGV[2] is a delay from Redis's clock (the worker's: its
-- host clock may differ from the one promote uses)  ARGV[7] '1' when a part
-- of the job (a thread) was posted
-- A job reaped while its attempt ran sits in the unknown set; a definite
-- failure reported late settles it from there, keeping its attempt count.
-- Nothing was sent: the budget the fetch reserved for it is given back;
-- unless a part of it was: then the budget is spent.
-- A job `herald forget` scrubbed meanwhile (its reason 'forgotten: ...',
-- cancel.lua) keeps its stored value: the worker's copy has the address.
-- Returns 1, or 0 when the job is neither the worker's nor unknown.
local forgotten = string.sub(redis.call('HGET', KEYS[7], ARGV[1]) or '', 1, 10) == 'forgotten:'
if not inflight_take(KEYS[3], ARGV[4], ARGV[1]) then
  if redis.call('ZREM', KEYS[6], ARGV[1]) == 0 then return 0 end
  redis.call('HDEL', KEYS[7], ARGV[1])
end
local now = now_ms()
local minute = math.floor(now / 60000)
local at = tonumber(ARGV[2])
if ARGV[6] == '1' then at = now + at end
if ARGV[7] == '1' then
  budget_drop(KEYS[8], {ARGV[1]})
else
  budget_refund(KEYS[8], {ARGV[1]})
end
local old_min = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if not forgotten then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
redis.call('ZADD', KEYS[4], at, ARGV[1])
local head = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
redis.call('ZADD', KEYS[2], head[2], 'r|' .. ARGV[4])
redis.call('HINCRBY', KEYS[5], 'retried|' .. ARGV[4], 1)
bump(KEYS[5], 'retry', ARGV[4], minute, 1)
if #old_min == 0 or at < tonumber(old_min[2]) then
  redis.call('PUBLISH', ARGV[5], at)
end
return 1
