-- purge: ARGV = ended_before, limit. Deletes up to `limit` done jobs that ended before the cutoff; returns how
-- many.
local ids = redis.call('ZRANGEBYSCORE', B .. 'done', '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  if remove(id, true) == 0 then site_drop('done', id) end
end
apply()
return #ids
