-- settle: ARGV = 9 values per outcome: id, token, kind, has_data ('1' or ''), data, ended_at, retry_at, payload
-- and max_attempts ('' when unchanged). data is the result JSON (finish) or the error JSON (fail, retry); payload
-- the next attempt's arguments (retry). Returns one '1' (applied) or '0' (fenced off) per outcome.
local out = {}
local released = {}
local extra = {finish = 'state', fail = 'errors', retry = 'errors', release = 'attempts', snooze = 'attempts'}
for i = 1, #ARGV, 9 do
  local id, token, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local data, ended = ARGV[i + 4], ARGV[i + 5]
  local jk = jkey(id)
  local f = redis.call('HMGET', jk, 'state', 'lease_token', 'queue', 'seq', 'created_at', 'unique_key',
                       extra[kind] or 'state', 'priority')
  if f[1] ~= 'started' or f[2] ~= token then
    out[#out + 1] = '0'
  else
    out[#out + 1] = '1'
    local q = f[3]
    site_drop('lease', id)
    redis.call('HDEL', jk, 'lease_token', 'lease_until')
    if (kind == 'fail' or kind == 'retry') and ARGV[i + 8] ~= '' then
      redis.call('HSET', jk, 'max_attempts', ARGV[i + 8])
    end
    if kind == 'finish' then
      if ARGV[i + 3] == '1' then
        redis.call('HSET', jk, 'state', 'finished', 'ended_at', ended, 'result', data)
      else
        redis.call('HSET', jk, 'state', 'finished', 'ended_at', ended)
      end
      site_set('done', id, ended)
      move(q, id, f[4], f[5], 'started', 'finished')
      release_key(f[6], id)
    elseif kind == 'fail' then
      redis.call('HSET', jk, 'state', 'failed', 'error', data, 'errors', append_error(f[7], data), 'ended_at', ended)
      site_set('done', id, ended)
      move(q, id, f[4], f[5], 'started', 'failed')
      release_key(f[6], id)
    elseif kind == 'retry' then
      local retry_at = ARGV[i + 6]
      redis.call('HSET', jk, 'state', 'scheduled', 'run_at', retry_at, 'error', data,
                 'errors', append_error(f[7], data), 'ended_at', ended)
      if ARGV[i + 7] ~= '' then redis.call('HSET', jk, 'payload', ARGV[i + 7]) end
      schedule(id, retry_at)
      move(q, id, f[4], f[5], 'started', 'scheduled')
    elseif kind == 'snooze' then -- the job asked to run later: scheduled again, the attempt given back
      redis.call('HSET', jk, 'state', 'scheduled', 'run_at', ARGV[i + 6], 'attempts', math.max(tonumber(f[7]) - 1, 0))
      redis.call('HDEL', jk, 'started_at', 'worker')
      schedule(id, ARGV[i + 6])
      move(q, id, f[4], f[5], 'started', 'scheduled')
    else -- release: the attempt is given back and the job returns to the head of its queue
      redis.call('HSET', jk, 'state', 'queued', 'attempts', math.max(tonumber(f[7]) - 1, 0))
      redis.call('HDEL', jk, 'started_at', 'worker')
      move(q, id, f[4], f[5], 'started', 'queued')
      local k = pqkey(q, f[8])
      local ids = released[k]
      if not ids then
        ids = {}
        released[k] = ids
      end
      ids[#ids + 1] = id
      woken[q] = true
    end
  end
end
for k, ids in pairs(released) do
  for j = #ids, 1, -1 do redis.call('LPUSH', k, ids[j]) end
end
apply()
return table.concat(out)
