-- quota: what a platform's remaining-quota headers said after a send, kept
-- for the fetch and charge scripts as q_left until q_reset (Redis's clock)
-- in the lane's state hash. The answers of sends in flight together come
-- back in any order: within one reset window the count only goes down (an
-- older answer written late must not raise a newer, lower one, nor forget
-- the sends fetched since); a later window starts afresh.
-- KEYS[1] lane:LANE   ARGV[1] calls left, as the answer said
-- ARGV[2] ms until the platform's reset   ARGV[3] calls of the lane fetched
-- after the answered one (its answer cannot have counted them)
-- Returns the count left as kept.
local now = now_ms()
local left = math.max(0, (tonumber(ARGV[1]) or 0) - (tonumber(ARGV[3]) or 0))
local reset = now + (tonumber(ARGV[2]) or 0)
local st = redis.call('HMGET', KEYS[1], 'q_left', 'q_reset')
local kept, kept_reset = tonumber(st[1] or ''), tonumber(st[2] or '') or 0
-- a reset read from the platform's Date (whole seconds) moves by up to a
-- second from answer to answer: within this much it is the same window
local slack = 2000
if kept and kept_reset > now then
  -- an answer of the window before: it says nothing of this one
  if reset < kept_reset - slack then return kept end
  if reset <= kept_reset + slack then
    if left >= kept then return kept end
    reset = kept_reset
  end
end
redis.call('HSET', KEYS[1], 'q_left', left, 'q_reset', reset)
return left
