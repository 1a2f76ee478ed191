-- enqueue_periodic: ARGV = name, slot, then one job's 12 values as enqueue_one reads them. Returns 1 if this
-- call took the slot.
local runs = B .. 'runs'
local last = redis.call('HGET', runs, ARGV[1])
if last and tonumber(string.match(last, '^[^|]*')) >= tonumber(ARGV[2]) then return 0 end
local holder = enqueue_one(2, seqs(1) + 1)
redis.call('HSET', runs, ARGV[1], ARGV[2] .. '|' .. (holder or ARGV[3]))
apply()
return 1
