-- enqueue_many: ARGV holds kinds and jobs, as read_kinds describes. Returns a JSON array of [index, row] for
-- each job not added (the row of the pending job in its way).
if add_queued() then return '[]' end
local kinds, o = read_kinds(0)
local n = (#ARGV - o) / 7
local first = seqs(n)
local dups, seen = {}, {}
for c = 1, n, 4000 do
  local last = math.min(c + 3999, n)
  -- Ids are almost never reused: one EXISTS for a chunk of jobs spares a lookup per job when none is in use
  -- (`seen` catches an id given twice in the batch).
  local keys = {}
  for i = c, last do keys[i - c + 1] = jkey(ARGV[o + i * 7 - 5]) end
  local unused = redis.call('EXISTS', unpack(keys)) == 0
  for i = c, last do
    local at = o + (i - 1) * 7
    local id = ARGV[at + 2]
    local holder = enqueue_one(kinds, at, first + i, keys[i - c + 1], unused and not seen[id])
    seen[id] = true
    if holder then dups[#dups + 1] = {i, holder} end
  end
end
apply()
for _, dup in ipairs(dups) do dup[2] = row(dup[2]) end
return encode(dups)
