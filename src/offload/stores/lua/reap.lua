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
  local f = redis.call('HMGET', jkey(id), unpack(ABANDON_FIELDS))
  if f[1] == 'started' and f[7] and gone[f[7]] then
    site_drop('lease', id)
    abandon(id, f, 'WorkerLost',
            'worker ' .. f[7] .. ' was declared dead (no heartbeat, or its process is gone); attempt ' .. f[5], now,
            heads)
    changed[#changed + 1] = id
  end
end
requeue_heads(heads)
apply()
local out = {}
for _, id in ipairs(changed) do out[#out + 1] = row(id) end
return encode(out)
