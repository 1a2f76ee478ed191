-- enqueue_many: ARGV[1] is a JSON array of rows in ENQUEUE_FIELDS order.
-- Returns a JSON array of [index, row] for each job that was not added (its blocking job's row).
local rows = cjson.decode(ARGV[1])
local first = seqs(#rows)
local dups = {}
for i = 1, #rows do
  local holder = enqueue_one(rows[i], fmt_seq(first + i))
  if holder then dups[#dups + 1] = {i, row(holder)} end
end
flush_wakes()
return encode(dups)
