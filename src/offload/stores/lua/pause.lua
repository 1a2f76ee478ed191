-- pause: ARGV = queue, now. Marks the queue paused (claim skips it) and drops its wake token, so that no idle
-- worker wakes for its work. Returns 1, or 0 when it was paused already (its time is kept).
local q = ARGV[1]
if redis.call('HSETNX', B .. 'paused', q, ARGV[2]) == 0 then return 0 end
redis.call('DEL', wkey(q))
return 1
