-- waiting: ARGV = now. Reads only. For each queue with queued jobs, the earliest enqueued_at of the jobs at the
-- heads of its priority lists (each list's head waits longest in it); for due scheduled jobs (the first 1,000 by
-- run_at, enough to find every queue's earliest), their run_at. Returns a flat list: queue, time, ...
local now = tonumber(ARGV[1])
local since = {}
local fields = redis.call('HKEYS', B .. 'counts')
for _, field in ipairs(fields) do
  local q = string.match(field, '^(.*)|queued$')
  if q then
    for _, k in ipairs(pqkeys(q)) do
      local head = redis.call('LINDEX', k, 0)
      if head then
        local f = redis.call('HMGET', jkey(head), 'enqueued_at', 'created_at')
        local t = f[1] or f[2]
        if t and (since[q] == nil or tonumber(t) < tonumber(since[q])) then since[q] = t end
      end
    end
  end
end
local due = redis.call('ZRANGEBYSCORE', B .. 'sched', '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, 1000)
for i = 1, #due, 2 do
  local q = redis.call('HGET', jkey(due[i]), 'queue')
  if q and tonumber(due[i + 1]) <= now and (since[q] == nil or tonumber(due[i + 1]) < tonumber(since[q])) then
    since[q] = due[i + 1]
  end
end
local out = {}
for q, t in pairs(since) do
  out[#out + 1] = q
  out[#out + 1] = t
end
return out
