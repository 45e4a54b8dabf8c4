-- register: create or renew a worker's lease (Redis time, not host clocks).
-- KEYS[1] workers   ARGV[1] worker  ARGV[2] lease_ms  ARGV[3] 'new' | 'renew'
-- Returns 0, or 1 on renew when the lease had already ended (the worker may
-- have been reaped: it must stop and register under a new id).
local now = now_ms()
if ARGV[3] == 'renew' then
  local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not exp or tonumber(exp) < now then return 1 end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 0
