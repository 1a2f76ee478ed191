-- The worker registry: ARGV = operation, then its arguments.
--   register id last_seen info_json | unregister id | list seen_after (returns the infos seen after it)
local op, workers, seen = ARGV[1], B .. 'workers', B .. 'wseen'
if op == 'register' then
  redis.call('HSET', workers, ARGV[2], ARGV[4])
  redis.call('ZADD', seen, ARGV[3], ARGV[2])
  return 1
elseif op == 'unregister' then
  redis.call('HDEL', workers, ARGV[2])
  redis.call('ZREM', seen, ARGV[2])
  return 1
end
-- list: entries last seen at or before the cutoff are pruned, as the contract allows.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', seen, '-inf', ARGV[2])) do redis.call('HDEL', workers, id) end
redis.call('ZREMRANGEBYSCORE', seen, '-inf', ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', seen, '(' .. ARGV[2], '+inf')
if #ids == 0 then return {} end
return redis.call('HMGET', workers, unpack(ids))
