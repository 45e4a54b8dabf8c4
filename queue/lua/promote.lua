-- promote: move due jobs from scheduled/retry sets to their ready lists.
-- KEYS[1] due, then per entry: the zset (sched:LANE or retry:LANE), ready:LANE
-- ARGV[1] batch per entry, ARGV[2] ready channel, then per entry the due
-- member ('s|LANE' or 'r|LANE').
-- ZRANGEBYSCORE + ZREMRANGEBYRANK remove exactly what was read, in one
-- script, so two schedulers never promote the same job twice.
-- Returns {promoted, next_due_ms or 0, now_ms}.
local now = now_ms()
local due, batch = KEYS[1], tonumber(ARGV[1])
local total = 0
for i = 1, (#KEYS - 1) / 2 do
  local z, ready, member = KEYS[2 * i], KEYS[2 * i + 1], ARGV[2 + i]
  local ids = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, batch)
  if #ids > 0 then
    redis.call('ZREMRANGEBYRANK', z, 0, #ids - 1)
    for c = 1, #ids, 4000 do
      redis.call('RPUSH', ready, unpack(ids, c, math.min(c + 3999, #ids)))
    end
    total = total + #ids
    redis.call('PUBLISH', ARGV[2], string.sub(member, 3))
  end
  local head = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if #head > 0 then
    redis.call('ZADD', due, head[2], member)
  else
    redis.call('ZREM', due, member)
  end
end
local nxt = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
local next_due = 0
if #nxt > 0 then next_due = tonumber(nxt[2]) end
return {total, next_due, now}
