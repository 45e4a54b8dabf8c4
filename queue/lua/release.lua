-- release: a live worker hands back jobs it fetched and will not start
-- (its id changed while the fetch was on its way, so they sit in the old
-- id's record): each goes back to the front of its lane in fetch order, its
-- budget reservation refunded, as the reaper would do once the old lease
-- ran out, but now. A job no longer in the record (reaped) or whose attempt
-- started is left where it is.
-- KEYS[1] inflight:WORKER, then per lane: ready:LANE, lane:LANE
-- ARGV per lane, in KEYS order: lane, count, then count ukhs in fetch order
-- Returns how many went back.
local back_total, a = 0, 1
for li = 1, (#KEYS - 1) / 2 do
  local lane, k = ARGV[a], tonumber(ARGV[a + 1])
  local packed = redis.call('HGET', KEYS[1], lane) or ''
  local back = {}
  for i = a + 2, a + 1 + k do
    local ukh = ARGV[i]
    local p = slot_of(packed, ukh)
    if p and redis.call('HEXISTS', KEYS[1], ukh) == 0 then
      packed = string.sub(packed, 1, p - 1) .. string.sub(packed, p + 12)
      back[#back + 1] = ukh
    end
  end
  a = a + 2 + k
  if #back > 0 then
    if packed == '' then
      redis.call('HDEL', KEYS[1], lane)
    else
      redis.call('HSET', KEYS[1], lane, packed)
    end
    -- from the last: LPUSH puts them back at the front in fetch order
    local rev = {}
    for i = #back, 1, -1 do rev[#rev + 1] = back[i] end
    for c = 1, #rev, 4000 do
      redis.call('LPUSH', KEYS[2 * li], unpack(rev, c, math.min(c + 3999, #rev)))
    end
    budget_refund(KEYS[2 * li + 1], back)
    back_total = back_total + #back
  end
end
return back_total
