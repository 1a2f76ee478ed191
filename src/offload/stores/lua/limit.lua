-- limit: ARGV = queue, concurrency ('' removes the limit). Stores the queue's concurrency limit and, when it
-- has room and work, leaves its wake token so that an idle worker wakes; a full queue keeps none.
local q = ARGV[1]
if ARGV[2] == '' then
  redis.call('HDEL', B .. 'limits', q)
else
  redis.call('HSET', B .. 'limits', q, ARGV[2])
end
if has_queued(q) and not is_paused(q) and (room(q) or 1) > 0 then
  if redis.call('EXISTS', wkey(q)) == 0 then redis.call('RPUSH', wkey(q), '1') end
else
  redis.call('DEL', wkey(q))
end
return 1
