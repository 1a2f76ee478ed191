-- resume: ARGV = queue. Lets workers claim from the queue again and, when it holds work, leaves its wake token
-- so that an idle worker wakes (and, claiming, wakes the next). Returns 1, or 0 when it was not paused.
local q = ARGV[1]
if redis.call('HDEL', B .. 'paused', q) == 0 then return 0 end
if has_queued(q) and redis.call('EXISTS', wkey(q)) == 0 then redis.call('RPUSH', wkey(q), '1') end
return 1
