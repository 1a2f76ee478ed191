-- limit: ARGV = queue, limit ('' removes it), which ('' the queue's concurrency limit, 'key' its per-key limit).
-- Stores the limit; a per-key limit also (re)counts the queue's started jobs per limit_key (HASH kr:<Q>) from
-- the lease index. When the queue has room and work, leaves its wake token so that an idle worker wakes (and
-- looks); a full queue keeps none.
local q, field = ARGV[1], ARGV[1]
if ARGV[3] == 'key' then
  field = q .. '#key'
  redis.call('DEL', B .. 'kr:' .. q)
end
if ARGV[2] == '' then
  redis.call('HDEL', B .. 'limits', field)
else
  redis.call('HSET', B .. 'limits', field, ARGV[2])
  if ARGV[3] == 'key' then
    for _, id in ipairs(redis.call('ZRANGE', B .. 'lease', 0, -1)) do
      local f = redis.call('HMGET', jkey(id), 'queue', 'limit_key', 'state')
      if f[1] == q and f[2] and f[3] == 'started' then redis.call('HINCRBY', B .. 'kr:' .. q, f[2], 1) end
    end
  end
end
if has_queued(q) and not is_paused(q) and (room(q) or 1) > 0 then
  if redis.call('EXISTS', wkey(q)) == 0 then redis.call('RPUSH', wkey(q), '1') end
else
  redis.call('DEL', wkey(q))
end
return 1
