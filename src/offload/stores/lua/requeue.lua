-- requeue_expired: ARGV = now. Started jobs whose lease ended before now go back to the head of their queue
-- (attempt counted; a dead worker's jobs have waited their turn already) or fail once attempts are spent; an
-- "abandoned" error is recorded either way. Returns a JSON array of rows.
local now = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', B .. 'lease', '-inf', '(' .. now)
local changed = {}
local heads = {}
for _, id in ipairs(ids) do
  local jk = jkey(id)
  local f = redis.call('HMGET', jk, 'state', 'queue', 'seq', 'created_at', 'attempts', 'max_attempts', 'worker',
                       'errors', 'unique_key', 'priority')
  site_drop('lease', id)
  if f[1] == 'started' then
    local q = f[2]
    local message = 'worker ' .. (f[7] or 'None') .. ' stopped renewing the lease (killed or lost); attempt ' .. f[5]
    local err = '{"type":"LeaseExpired","reason":"abandoned","message":' .. cjson.encode(message) ..
                ',"traceback":null}'
    redis.call('HSET', jk, 'error', err, 'errors', append_error(f[8], err))
    redis.call('HDEL', jk, 'lease_token', 'lease_until')
    if tonumber(f[5]) < tonumber(f[6]) then
      redis.call('HSET', jk, 'state', 'queued')
      move(q, id, f[3], f[4], 'started', 'queued')
      local k = pqkey(q, f[10])
      local head = heads[k]
      if not head then
        head = {}
        heads[k] = head
      end
      head[#head + 1] = id
      woken[q] = true
    else
      redis.call('HSET', jk, 'state', 'failed', 'ended_at', now)
      site_set('done', id, now)
      move(q, id, f[3], f[4], 'started', 'failed')
      release_key(f[9], id)
    end
    changed[#changed + 1] = id
  end
end
for k, head in pairs(heads) do
  for j = #head, 1, -1 do redis.call('LPUSH', k, head[j]) end
end
apply()
local out = {}
for _, id in ipairs(changed) do out[#out + 1] = row(id) end
return encode(out)
