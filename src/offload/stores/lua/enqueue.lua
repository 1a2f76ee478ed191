-- enqueue_many: ARGV holds the jobs one after another, 12 values each, as enqueue_one reads them.
-- Returns a JSON array of [index, row] for each job not added (the row of the pending job in its way).
local n = #ARGV / 12
local first = seqs(n)
local dups = {}
for i = 1, n do
  local holder = enqueue_one((i - 1) * 12, first + i)
  if holder then dups[#dups + 1] = {i, holder} end
end
apply()
for _, dup in ipairs(dups) do dup[2] = row(dup[2]) end
return encode(dups)
