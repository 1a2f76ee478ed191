-- retry_now: ARGV = id, now. A failed, canceled or scheduled job is queued at the tail of its queue (attempts
-- reset for failed and canceled ones, unless another pending job now holds its unique key). Returns the job's
-- row (JSON) as it is now, or nil when there is no such job.
local id, now = ARGV[1], ARGV[2]
local jk = jkey(id)
local f = redis.call('HMGET', jk, 'state', 'queue', 'seq', 'created_at', 'unique_key', 'priority')
local state, q, uk = f[1], f[2], f[5]
if not state then return false end
if state == 'scheduled' then
  unschedule(id)
elseif state == 'failed' or state == 'canceled' then
  if uk then
    local holder = redis.call('GET', B .. 'u:' .. uk)
    if holder and holder ~= id then return cjson.encode(row(id)) end
    redis.call('SET', B .. 'u:' .. uk, id)
  end
  redis.call('HSET', jk, 'attempts', '0')
  site_drop('done', id)
else
  return cjson.encode(row(id))
end
redis.call('HSET', jk, 'state', 'queued', 'enqueued_at', now)
redis.call('HDEL', jk, 'run_at', 'ended_at')
move(q, id, f[3], f[4], state, 'queued')
push(q, id, f[6])
apply()
return cjson.encode(row(id))
