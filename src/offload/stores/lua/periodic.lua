-- enqueue_periodic: ARGV = name, slot, row (JSON, ENQUEUE_FIELDS order). Returns 1 if this call took the slot.
local runs = B .. 'runs'
local last = redis.call('HGET', runs, ARGV[1])
if last and tonumber(string.match(last, '^[^|]*')) >= tonumber(ARGV[2]) then return 0 end
local r = cjson.decode(ARGV[3])
local holder = enqueue_one(r, fmt_seq(seqs(1)))
redis.call('HSET', runs, ARGV[1], ARGV[2] .. '|' .. (holder or r[1]))
flush_wakes()
return 1
