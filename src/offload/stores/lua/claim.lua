-- claim: ARGV = now, lease_until, worker, token prefix, limit, promote limit, queue names in order.
-- Promotes due scheduled jobs, then pops up to `limit` ids, earlier queues first. Returns a JSON array of rows.
local now, lease_until, worker, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit = tonumber(ARGV[5])

local due = redis.call('ZRANGEBYSCORE', B .. 'sched', '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))
if #due > 0 then
  for _, id in ipairs(due) do
    local jk = jkey(id)
    local f = redis.call('HMGET', jk, 'state', 'queue', 'seq', 'created_at')
    if f[1] == 'scheduled' then
      redis.call('HSET', jk, 'state', 'queued', 'enqueued_at', now)
      move(id, f[2], f[3], f[4], 'scheduled', 'queued')
      redis.call('RPUSH', qkey(f[2]), id)
      woken[f[2]] = true
    end
  end
  redis.call('ZREM', B .. 'sched', unpack(due))
  if redis.call('EXISTS', B .. 'sched') == 0 then redis.call('DEL', B .. 'w:sched') end
end

local out = {}
for i = 7, #ARGV do
  local want = limit - #out
  if want <= 0 then break end
  local q = ARGV[i]
  local ids = redis.call('LPOP', qkey(q), want)
  if ids then
    for _, id in ipairs(ids) do
      local jk = jkey(id)
      local f = redis.call('HMGET', jk, 'state', 'seq', 'created_at')
      if f[1] == 'queued' then
        redis.call('HSET', jk, 'state', 'started', 'lease_token', prefix .. (#out + 1), 'lease_until', lease_until,
                   'worker', worker, 'started_at', now)
        redis.call('HINCRBY', jk, 'attempts', 1)
        redis.call('HDEL', jk, 'ended_at')
        redis.call('ZADD', B .. 'lease', lease_until, id)
        move(id, q, f[2], f[3], 'queued', 'started')
        out[#out + 1] = row(id)
      end
    end
    -- Work left behind: keep a token so the next idle worker wakes as well.
    if redis.call('EXISTS', qkey(q)) == 1 then
      woken[q] = true
    else
      woken[q] = nil
      redis.call('DEL', wkey(q))
    end
  end
end
flush_wakes()
return encode(out)
