-- promote: move due jobs from scheduled/retry sets to their ready lists.
-- KEYS[1] due, KEYS[2] held, then per entry: the zset (sched:LANE or
-- retry:LANE), ready:LANE
-- ARGV[1] batch per entry, ARGV[2] ready channel, then per entry the due
-- member ('s|LANE' or 'r|LANE').
-- ZRANGEBYSCORE + ZREMRANGEBYRANK remove exactly what was read, in one
-- script, so two schedulers never promote the same job twice.
-- A lane an import holds (held: 'TOKEN|LANE' -> the hold's expiry, renewed
-- with the import's lock, dropped when it ends) keeps its scheduled jobs:
-- nothing an import writes may become ready before it has succeeded
-- (issue #4). Its due entry moves to the hold's expiry, so a killed
-- import's hold lapses with its lock and the lane goes on; the import puts
-- it back when it ends. Retry entries are not an import's and go on.
-- Returns {promoted, next_due_ms or 0, now_ms}.
local now = now_ms()
local due, held, batch = KEYS[1], KEYS[2], tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', held, '-inf', now) -- lapsed: a killed import's
local holds = {}
local h = redis.call('ZRANGE', held, 0, -1, 'WITHSCORES')
for i = 1, #h, 2 do
  local lane, exp = string.match(h[i], '^[^|]*|(.*)$'), tonumber(h[i + 1])
  if lane and (holds[lane] or 0) < exp then holds[lane] = exp end
end
local total = 0
for i = 1, (#KEYS - 2) / 2 do
  local z, ready, member = KEYS[2 * i + 1], KEYS[2 * i + 2], ARGV[2 + i]
  local hold = string.sub(member, 1, 2) == 's|' and holds[string.sub(member, 3)]
  if not hold then
    local ids = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, batch)
    if #ids > 0 then
      redis.call('ZREMRANGEBYRANK', z, 0, #ids - 1)
      for c = 1, #ids, 4000 do
        redis.call('RPUSH', ready, unpack(ids, c, math.min(c + 3999, #ids)))
      end
      total = total + #ids
      redis.call('PUBLISH', ARGV[2], string.sub(member, 3))
    end
  end
  local head = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if #head > 0 then
    local at = tonumber(head[2])
    if hold and at < hold then at = hold end
    redis.call('ZADD', due, at, member)
  else
    redis.call('ZREM', due, member)
  end
end
local nxt = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
local next_due = 0
if #nxt > 0 then next_due = tonumber(nxt[2]) end
return {total, next_due, now}
