-- front: ARGV = id. A queued job moves to the head of its queue (RQ's at_front), ahead of every priority: to the
-- head of the priority 0 list, its priority becoming 0; its enqueued_at (its place) becomes just earlier than
-- that of the first job of each priority list. Returns 1, or 0 when there is no such queued job.
local id = ARGV[1]
local jk = jkey(id)
local f = redis.call('HMGET', jk, 'state', 'queue', 'enqueued_at', 'priority')
if f[1] ~= 'queued' then return 0 end
local q = f[2]
if redis.call('LREM', pqkey(q, f[4]), 1, id) == 0 then return 0 end
local ahead
for _, k in ipairs(pqkeys(q)) do
  local head = redis.call('LINDEX', k, 0)
  local at = head and tonumber(redis.call('HGET', jkey(head), 'enqueued_at') or '')
  if at and (not ahead or at < ahead) then ahead = at end
end
local mine = tonumber(f[3] or '')
if ahead and (not mine or ahead - 0.000001 < mine) then
  redis.call('HSET', jk, 'enqueued_at', string.format('%.6f', ahead - 0.000001))
end
if f[4] then redis.call('HDEL', jk, 'priority') end
redis.call('LPUSH', qkey(q), id)
return 1
