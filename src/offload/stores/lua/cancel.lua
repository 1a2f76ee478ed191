-- cancel: ARGV = id, now. Returns the job's row (JSON) as it is now, or nil when there is no such job.
local id, now = ARGV[1], ARGV[2]
local jk = jkey(id)
local f = redis.call('HMGET', jk, 'state', 'queue', 'seq', 'created_at', 'unique_key', 'priority')
local state, q = f[1], f[2]
if not state then return false end
if PENDING[state] then
  if state == 'queued' then
    redis.call('LREM', pqkey(q, f[6]), 1, id)
    unwake_if_empty(q)
  elseif state == 'scheduled' then
    unschedule(id)
  else
    site_drop('lease', id)
  end
  redis.call('HSET', jk, 'state', 'canceled', 'ended_at', now)
  redis.call('HDEL', jk, 'lease_token', 'lease_until')
  site_set('done', id, now)
  move(q, id, f[3], f[4], state, 'canceled')
  release_key(f[5], id)
  apply()
end
return cjson.encode(row(id))
