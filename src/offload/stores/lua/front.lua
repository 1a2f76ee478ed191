-- front: ARGV = id. A queued job moves to the head of its queue list (RQ's at_front); its enqueued_at (its place)
-- becomes just earlier than that of the job that was first. Returns 1, or 0 when there is no such queued job.
local id = ARGV[1]
local jk = jkey(id)
local f = redis.call('HMGET', jk, 'state', 'queue', 'enqueued_at')
if f[1] ~= 'queued' then return 0 end
local q = f[2]
if redis.call('LREM', qkey(q), 1, id) == 0 then return 0 end
local head = redis.call('LINDEX', qkey(q), 0)
if head then
  local ahead = tonumber(redis.call('HGET', jkey(head), 'enqueued_at') or '')
  local mine = tonumber(f[3] or '')
  if ahead and (not mine or ahead - 0.000001 < mine) then
    redis.call('HSET', jk, 'enqueued_at', string.format('%.6f', ahead - 0.000001))
  end
end
redis.call('LPUSH', qkey(q), id)
return 1
