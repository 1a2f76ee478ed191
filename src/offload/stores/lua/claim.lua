-- claim: ARGV = now, lease_until, worker, token prefix, limit, promote limit, queue names in order.
-- Promotes due scheduled jobs, then pops up to `limit` ids, earlier queues first, within a queue from its
-- priority lists in order (see pqkey); paused queues are skipped, limited ones give at most their room. Returns a JSON array of rows.
-- A claim sent ahead, to run when the BLPOP before it in the same pipeline returns, cannot know its time: its
-- now is "+<caller's time>+<server's TIME at that moment>+<lease>", and the time of the claim is the caller's
-- plus what the server's clock says has passed since (only a duration is taken from the server's clock).
local now, lease_until, worker, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit = tonumber(ARGV[5])
if string.sub(now, 1, 1) == '+' then
  local caller, ref, lease = string.match(now, '^%+([^+]+)%+([^+]+)%+([^+]+)$')
  local t = redis.call('TIME')
  local at = tonumber(caller) + math.max(0, tonumber(t[1]) + tonumber(t[2]) / 1e6 - tonumber(ref))
  now, lease_until = string.format('%.6f', at), string.format('%.6f', at + tonumber(lease))
end

local due = redis.call('ZRANGEBYSCORE', B .. 'sched', '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))
if #due > 0 then
  for _, id in ipairs(due) do
    local jk = jkey(id)
    local f = redis.call('HMGET', jk, 'state', 'queue', 'seq', 'created_at', 'priority')
    if f[1] == 'scheduled' then
      redis.call('HSET', jk, 'state', 'queued', 'enqueued_at', now)
      move(f[2], id, f[3], f[4], 'scheduled', 'queued')
      push(f[2], id, f[5])
    end
  end
  redis.call('ZREM', B .. 'sched', unpack(due))
  if redis.call('EXISTS', B .. 'sched') == 0 then redis.call('DEL', B .. 'w:sched') end
  apply()
end

-- Adds to `ids` (a list, or false) up to `want` ids from priorities 1-9 in order, looked at only when one of
-- their lists exists. Returns the list, or false when it stays empty.
local function pop_lower(q, ids, want)
  local keys = pqkeys(q)
  if redis.call('EXISTS', unpack(keys, 2)) == 0 then return ids end
  ids = ids or {}
  for p = 2, 10 do
    local more = redis.call('LPOP', keys[p], want - #ids)
    if more then
      for _, id in ipairs(more) do ids[#ids + 1] = id end
      if #ids >= want then break end
    end
  end
  return #ids > 0 and ids
end

-- Up to `want` ids of a queue with a per-key limit of `kcap`, first to last, passing over (in place) a job whose
-- limit_key has kcap jobs started, counting those this call takes. Looks at the first 1,000 of each list.
local function pick_keyed(q, want, kcap)
  local running, taken, ids = B .. 'kr:' .. q, {}, {}
  for _, key in ipairs(pqkeys(q)) do
    for _, id in ipairs(redis.call('LRANGE', key, 0, 999)) do
      local lk = redis.call('HGET', jkey(id), 'limit_key')
      local free = true
      if lk then
        free = tonumber(redis.call('HGET', running, lk) or 0) + (taken[lk] or 0) < kcap
        if free then taken[lk] = (taken[lk] or 0) + 1 end
      end
      if free then
        redis.call('LREM', key, 1, id)
        ids[#ids + 1] = id
        if #ids >= want then return ids end
      end
    end
  end
  return #ids > 0 and ids
end

local out = {}
for i = 7, #ARGV do
  local want = limit - #out
  if want <= 0 then break end
  local q = ARGV[i]
  local ids = false
  local free = room(q)
  local kcap = false
  if free and free < want then want = free end
  if want <= 0 then
    redis.call('DEL', wkey(q))  -- full: no idle worker wakes for its work until one of its jobs stops
  elseif not is_paused(q) then
    kcap = key_cap(q)
    if kcap then
      ids = pick_keyed(q, want, kcap)
      if not ids then redis.call('DEL', wkey(q)) end  -- every key full: wait for one of its jobs to stop
    else
      ids = redis.call('LPOP', qkey(q), want)
      if not ids or #ids < want then ids = pop_lower(q, ids, want) end
    end
  end
  if ids then
    for _, id in ipairs(ids) do
      local jk = jkey(id)
      local h = redis.call('HMGET', jk, 'state', 'seq', 'created_at', 'attempts', 'ended_at', 'spec', 'payload',
                           'enqueued_at', 'run_at', 'result', 'error', 'errors', 'progress', 'meta',
                           'max_attempts', 'priority', 'limit_key')
      if h[1] == 'queued' then
        local attempts = tonumber(h[4]) + 1
        local token = prefix .. (#out + 1)
        redis.call('HSET', jk, 'state', 'started', 'attempts', attempts, 'lease_token', token,
                   'lease_until', lease_until, 'worker', worker, 'started_at', now)
        if h[5] then redis.call('HDEL', jk, 'ended_at') end
        site_set('lease', id, lease_until)
        move(q, id, h[2], h[3], 'queued', 'started')
        -- The row in ROW_FIELDS order, from what was read and what was just written.
        out[#out + 1] = {id, h[6], h[7], 'started', h[8] or null, h[9] or null, now, null, attempts, h[10] or null,
                         h[11] or null, h[12] or null, worker, lease_until, token, h[13] or null, h[14] or null,
                         h[15] or null, h[16] or null, h[17] or null}
      end
    end
    -- Work left behind: keep a token so the next idle worker wakes as well.
    if has_queued(q) and (not free or free > #ids) and (not kcap or #ids >= want) then
      woken[q] = true
    else
      woken[q] = nil
      redis.call('DEL', wkey(q))
    end
  end
end
apply()
return encode(out)
