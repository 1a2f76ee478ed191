-- reap_dead_workers: ARGV = the caller's worker id, now, seen_before, then the ids the caller declares dead.
-- The caller's registry entry (if any) is seen at now; every other worker last seen before seen_before, or
-- declared dead, loses its entry, and its started jobs go back to the head of their queue (attempt counted) or
-- fail once attempts are spent, with a "WorkerLost" error. Returns a JSON array of rows.
local me, now = ARGV[1], ARGV[2]
local workers, seen = B .. 'workers', B .. 'wseen'
redis.call('ZADD', seen, 'XX', now, me)
local gone, any = {}, false
for _, id in ipairs(redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. ARGV[3])) do
  if id ~= me then
    gone[id], any = true, true
  end
end
for i = 4, #ARGV do
  if ARGV[i] ~= me then
    gone[ARGV[i]], any = true, true
  end
end
if not any then return '[]' end
for id in pairs(gone) do
  redis.call('HDEL', workers, id)
  redis.call('ZREM', seen, id)
end
-- The started jobs are the lease ZSET's members; only a dead worker's are touched.
local changed, heads = {}, {}
for _, id in ipairs(redis.call('ZRANGE', B .. 'lease', 0, -1)) do
  local jk = jkey(id)
  local f = redis.call('HMGET', jk, 'state', 'queue', 'seq', 'created_at', 'attempts', 'max_attempts', 'worker',
                       'errors', 'unique_key', 'priority')
  if f[1] == 'started' and f[7] and gone[f[7]] then
    local q = f[2]
    site_drop('lease', id)
    local message = 'worker ' .. f[7] .. ' was declared dead (no heartbeat, or its process is gone); attempt ' ..
                    f[5]
    local err = '{"type":"WorkerLost","reason":"abandoned","message":' .. cjson.encode(message) ..
                ',"traceback":null}'
    redis.call('HSET', jk, 'error', err, 'errors', append_error(f[8], err))
    redis.call('HDEL', jk, 'lease_token', 'lease_until')
    if tonumber(f[5]) < tonumber(f[6]) then
      redis.call('HSET', jk, 'state', 'queued')
      move(q, id, f[3], f[4], 'started', 'queued')
      local k = pqkey(q, f[10])  -- the waiting list of its priority
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
local seqs = {}
for _, id in ipairs(changed) do seqs[id] = tonumber(redis.call('HGET', jkey(id), 'seq')) end
for k, head in pairs(heads) do
  table.sort(head, function(a, b) return seqs[a] < seqs[b] end)  -- their order of arrival, not of lease
  for j = #head, 1, -1 do redis.call('LPUSH', k, head[j]) end
end
apply()
local out = {}
for _, id in ipairs(changed) do out[#out + 1] = row(id) end
return encode(out)
