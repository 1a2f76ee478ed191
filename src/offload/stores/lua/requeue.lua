-- requeue_expired: ARGV = now. Started jobs whose lease ended before now go back to the head of their queue
-- (attempt counted; a dead worker's jobs have waited their turn already) or fail once attempts are spent; an
-- "abandoned" error is recorded either way. Returns a JSON array of rows.
local now = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', B .. 'lease', '-inf', '(' .. now)
local changed = {}
local heads = {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', jkey(id), unpack(ABANDON_FIELDS))
  site_drop('lease', id)
  if f[1] == 'started' then
    abandon(id, f, 'LeaseExpired',
            'worker ' .. (f[7] or 'None') .. ' stopped renewing the lease (killed or lost); attempt ' .. f[5], now,
            heads)
    changed[#changed + 1] = id
  end
end
requeue_heads(heads)
apply()
local out = {}
for _, id in ipairs(changed) do out[#out + 1] = row(id) end
return encode(out)
