-- extend_leases: ARGV = lease_until, then job id and token pairs. Returns a JSON array of the ids not held.
local lease_until = ARGV[1]
local lost = {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local jk = jkey(id)
  local f = redis.call('HMGET', jk, 'state', 'lease_token')
  if f[1] == 'started' and f[2] == token then
    redis.call('HSET', jk, 'lease_until', lease_until)
    site_set('lease', id, lease_until)
  else
    lost[#lost + 1] = id
  end
end
apply()
return encode(lost)
