-- circuit: what a worker saw of a lane, for the fleet's breaker in the
-- lane's state hash (fetch's admit() gates on it, ack counts successes).
-- KEYS[1] lane:LANE   ARGV[1] op  ARGV[2] K  ARGV[3] open_ms  ARGV[4] max_ms
-- op 'fail': a transient failure. K in a row anywhere in the fleet open it
--   for open_ms; the half-open probe's failure opens it again for twice as
--   long (at most max_ms); one reported while open (a send that started
--   before) only counts.
-- op 'ok': a success: the run of failures ends (ack does it too, later).
-- op 'release': the probe ended neither way (a 429, a refusal): the next
--   fetch may admit another probe.
-- Returns 0 unchanged, 1 opened, 2 opened again (the probe failed).
local now = now_ms()
local op, lane = ARGV[1], KEYS[1]
if op == 'ok' then
  redis.call('HSET', lane, 'c_fail', 0)
  return 0
end
local st = redis.call('HMGET', lane, 'circuit', 'c_open_ms')
if op == 'release' then
  if st[1] == 'half-open' then redis.call('HDEL', lane, 'c_probe_until') end
  return 0
end
local fails = redis.call('HINCRBY', lane, 'c_fail', 1)
local open = tonumber(ARGV[3])
local r = 0
if st[1] == 'half-open' then
  open = math.min(math.max((tonumber(st[2]) or 0) * 2, open), tonumber(ARGV[4]))
  r = 2
elseif st[1] ~= 'open' and fails >= tonumber(ARGV[2]) then
  r = 1
end
if r > 0 then
  redis.call('HSET', lane, 'circuit', 'open', 'circuit_until_ms', now + open, 'c_open_ms', open)
  redis.call('HDEL', lane, 'c_probe_until')
end
return r
