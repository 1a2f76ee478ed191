-- enqueue_periodic: ARGV = name, slot, then one job as read_kinds describes. Returns 1 if this call took the
-- slot.
local runs = B .. 'runs'
local last = redis.call('HGET', runs, ARGV[1])
if last and tonumber(string.match(last, '^[^|]*')) >= tonumber(ARGV[2]) then return 0 end
local kinds, o = read_kinds(2)
local holder = enqueue_one(kinds, o, seqs(1) + 1)
redis.call('HSET', runs, ARGV[1], ARGV[2] .. '|' .. (holder or ARGV[o + 2]))
apply()
return 1
