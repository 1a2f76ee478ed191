-- clear: ARGV = queue names (none: every queue of the site). Deletes their queued and scheduled jobs; returns
-- how many.
local queues = ARGV
if #ARGV == 0 then
  queues = {}
  local seen = {}
  for _, field in ipairs(redis.call('HKEYS', B .. 'counts')) do
    local q, state = string.match(field, '^(.*)|([^|]*)$')
    if (state == 'queued' or state == 'scheduled') and not seen[q] then
      seen[q] = true
      queues[#queues + 1] = q
    end
  end
end
local n = 0
for _, q in ipairs(queues) do
  local keys = pqkeys(q)
  for _, k in ipairs(keys) do
    for _, id in ipairs(redis.call('LRANGE', k, 0, -1)) do n = n + remove(id, false) end
  end
  redis.call('DEL', wkey(q), unpack(keys))
  for _, m in ipairs(redis.call('ZRANGE', skey(q, 'scheduled'), 0, -1)) do n = n + remove(member_id(m), true) end
end
apply()
return n
