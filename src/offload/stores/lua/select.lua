-- list: ARGV = nq, queue names, ns, states, offset, limit, descending ('1').
-- Merges the listing indexes of the wanted queues and states that hold jobs (known from the counters); started
-- jobs come from the lease index. Returns a JSON array of rows, by created_at then insertion.
local nq = tonumber(ARGV[1])
local ns = tonumber(ARGV[2 + nq])
local offset, limit = tonumber(ARGV[3 + nq + ns]), tonumber(ARGV[4 + nq + ns])
local desc = ARGV[5 + nq + ns] == '1'
if limit <= 0 then return '[]' end
local want_q, want_s = {}, {}
for i = 1, nq do want_q[ARGV[1 + i]] = true end
for i = 1, ns do want_s[ARGV[2 + nq + i]] = true end

local keys, started = {}, false
for _, field in ipairs(redis.call('HKEYS', B .. 'counts')) do
  local q, state = string.match(field, '^(.*)|([^|]*)$')
  if (nq == 0 or want_q[q]) and (ns == 0 or want_s[state]) then
    if state == 'started' then started = true else keys[#keys + 1] = skey(q, state) end
  end
end

local range = desc and 'ZREVRANGE' or 'ZRANGE'
local members
if #keys == 1 and not started then
  members = redis.call(range, keys[1], offset, offset + limit - 1)
else
  local items = {}
  for _, k in ipairs(keys) do
    local r = redis.call(range, k, 0, offset + limit - 1, 'WITHSCORES')
    for j = 1, #r, 2 do items[#items + 1] = {tonumber(r[j + 1]), r[j]} end
  end
  if started then
    for _, id in ipairs(redis.call('ZRANGE', B .. 'lease', 0, -1)) do
      local h = redis.call('HMGET', jkey(id), 'queue', 'created_at', 'seq')
      if h[1] and (nq == 0 or want_q[h[1]]) then items[#items + 1] = {tonumber(h[2]), h[3] .. ':' .. id} end
    end
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
