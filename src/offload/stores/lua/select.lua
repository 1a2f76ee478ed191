-- list and count: ARGV = mode ('list' or 'count'), nq, queue names, ns, states, offset, limit, descending ('1').
-- Without filters the site-wide index serves; otherwise the per-queue-and-state indexes that hold jobs (known
-- from the counters) are merged. Returns the count, or a JSON array of rows.
local nq = tonumber(ARGV[2])
local ns = tonumber(ARGV[3 + nq])
local keys = {}
if nq == 0 and ns == 0 then
  keys[1] = B .. 'all'
else
  local want_q, want_s = {}, {}
  for i = 1, nq do want_q[ARGV[2 + i]] = true end
  for i = 1, ns do want_s[ARGV[3 + nq + i]] = true end
  for _, field in ipairs(redis.call('HKEYS', B .. 'counts')) do
    local q, state = string.match(field, '^(.*)|([^|]*)$')
    if (nq == 0 or want_q[q]) and (ns == 0 or want_s[state]) then keys[#keys + 1] = skey(q, state) end
  end
end

if ARGV[1] == 'count' then
  local n = 0
  for _, k in ipairs(keys) do n = n + redis.call('ZCARD', k) end
  return n
end

local offset, limit = tonumber(ARGV[4 + nq + ns]), tonumber(ARGV[5 + nq + ns])
local desc = ARGV[6 + nq + ns] == '1'
local range = desc and 'ZREVRANGE' or 'ZRANGE'
if limit <= 0 or #keys == 0 then return '[]' end
local members
if #keys == 1 then
  members = redis.call(range, keys[1], offset, offset + limit - 1)
else
  local items = {}
  for _, k in ipairs(keys) do
    local r = redis.call(range, k, 0, offset + limit - 1, 'WITHSCORES')
    for j = 1, #r, 2 do items[#items + 1] = {tonumber(r[j + 1]), r[j]} end
  end
  if desc then
    table.sort(items, function(a, b) return a[1] > b[1] or (a[1] == b[1] and a[2] > b[2]) end)
  else
    table.sort(items, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
  end
  members = {}
  for j = offset + 1, math.min(#items, offset + limit) do members[#members + 1] = items[j][2] end
end
local out = {}
for _, m in ipairs(members) do out[#out + 1] = row(member_id(m)) end
return encode(out)
