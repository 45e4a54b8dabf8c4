-- resolve: operator and reconciler moves out of the unknown and dead sets.
-- KEYS[1] jobs KEYS[2] done KEYS[3] reasons KEYS[4] unknown:LANE
-- KEYS[5] dead:LANE KEYS[6] ready:LANE KEYS[7] stats KEYS[8] lane:LANE
-- KEYS[9] platform_ids KEYS[10] polls
-- ARGV[1] op: sent | resend | dead_retry | dead_purge
-- ARGV[2] ukh ARGV[3] id ARGV[4] platform id ARGV[5] lane
-- ARGV[6] new value ('' keeps the stored one)
-- ARGV[7..]: 'sent' records the job with a platform id as ack.lua does
-- (sent_record; ARGV[8] its platform_ids field when ARGV[7] is 1).
-- An unknown job kept its fetch's budget reservation: 'sent' spends it,
-- 'resend' gives it back (the next fetch reserves again).
-- Returns 1 when done, 0 when the job was not in the expected set, 2 (and
-- nothing changes) when 'sent' names a platform id recorded for another
-- job: one post never settles two jobs.
local now = now_ms()
local op, ukh = ARGV[1], ARGV[2]
if op == 'sent' and sent_taken(KEYS[9], 7, 1) then return 2 end
if op == 'sent' or op == 'resend' then
  if redis.call('ZREM', KEYS[4], ukh) == 0 then return 0 end
else
  if redis.call('ZREM', KEYS[5], ukh) == 0 then return 0 end
end
redis.call('HDEL', KEYS[3], ukh)
if op == 'sent' then
  -- the done record names the job by its full id: stored time prefix + ukh
  local v = redis.call('HGET', KEYS[1], ukh)
  local id = ARGV[3]
  if v then id = string.sub(v, 1, 8) .. ukh end
  redis.call('HDEL', KEYS[1], ukh)
  budget_drop(KEYS[8], {ukh}) -- its reservation is spent
  redis.call('HSET', KEYS[2], ukh, id .. '\t' .. ARGV[4] .. '\t' .. now)
  redis.call('HINCRBY', KEYS[7], 'sent|' .. ARGV[5], 1)
  bump(KEYS[7], 'sent', ARGV[5], math.floor(now / 60000), 1)
  sent_record(KEYS[9], KEYS[10], 7, 1, nil)
elseif op == 'dead_purge' then
  redis.call('HDEL', KEYS[1], ukh)
else
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], ukh, ARGV[6]) end
  if op == 'resend' then
    budget_refund(KEYS[8], {ukh})
    redis.call('LPUSH', KEYS[6], ukh)
  else
    redis.call('RPUSH', KEYS[6], ukh)
  end
end
return 1
