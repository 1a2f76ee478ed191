-- Shared prelude of every offload script: offload.stores.redis prepends it (after the generated FIELDS and
-- ENQUEUE_FIELDS tables) to each script before loading it.
--
-- KEYS[1] is the site's key base "<prefix>:{<site>}:". Every key a script touches is derived from it, so all
-- of a site's keys share the hash tag {<site>}. Times arrive as strings from the caller's clock and are stored
-- as given (never through a Lua number, whose tostring keeps only 14 digits); tonumber() is used only to
-- compare.
local B = KEYS[1]
local null = cjson.null
local PENDING = {scheduled = true, queued = true, started = true}
local DONE = {finished = true, failed = true, canceled = true}

local function jkey(id) return B .. 'j:' .. id end
local function qkey(q) return B .. 'q:' .. q end
local function wkey(q) return B .. 'w:' .. q end
local function skey(q, state) return B .. 's:' .. q .. ':' .. state end
-- Index members are "<15-digit seq>:<id>": equal created_at scores then sort in insertion order.
local function member(seq, id) return seq .. ':' .. id end
local function member_id(m) return string.sub(m, 17) end

-- The per-queue, per-state counters behind counts(); a field that drops to zero is removed.
local function tally(q, state, delta)
  local field = q .. '|' .. state
  if redis.call('HINCRBY', B .. 'counts', field, delta) <= 0 then
    redis.call('HDEL', B .. 'counts', field)
  end
end

-- Move a job's listing entry and counter from one state to another.
local function move(id, q, seq, created, from, to)
  local m = member(seq, id)
  redis.call('ZREM', skey(q, from), m)
  redis.call('ZADD', skey(q, to), created, m)
  tally(q, from, -1)
  tally(q, to, 1)
end

-- Wake tokens: w:<queue> holds one token while the queue has work nobody has been woken for; waiters BLPOP
-- it. It never outlives the queue list, so an idle site keeps no wake keys.
local function wake(q)
  if redis.call('EXISTS', wkey(q)) == 0 then redis.call('RPUSH', wkey(q), '1') end
end
local function unwake_if_empty(q)
  if redis.call('EXISTS', qkey(q)) == 0 then redis.call('DEL', wkey(q)) end
end
local woken = {}
local function flush_wakes()
  for q in pairs(woken) do wake(q) end
end

-- Scheduled jobs: one ZSET by run_at per site. w:sched gets a token when the earliest due time moves
-- earlier, so a waiter can shorten its sleep.
local function schedule(id, run_at)
  local head = redis.call('ZRANGE', B .. 'sched', 0, 0, 'WITHSCORES')
  redis.call('ZADD', B .. 'sched', run_at, id)
  if head[2] == nil or tonumber(run_at) < tonumber(head[2]) then
    if redis.call('EXISTS', B .. 'w:sched') == 0 then redis.call('RPUSH', B .. 'w:sched', '1') end
  end
end
local function unschedule(id)
  redis.call('ZREM', B .. 'sched', id)
  if redis.call('EXISTS', B .. 'sched') == 0 then redis.call('DEL', B .. 'w:sched') end
end

local function release_key(uk, id)
  if uk then
    local k = B .. 'u:' .. uk
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
end

-- Append one JSON error document to a JSON array kept as text (no decode/encode round trip).
local function append_error(errors, err)
  if not errors or errors == '[]' then return '[' .. err .. ']' end
  return string.sub(errors, 1, -2) .. ',' .. err .. ']'
end

-- Delete a job and every index entry. in_list=false when the caller already dropped the queue list.
local function remove(id, in_list)
  local jk = jkey(id)
  local f = redis.call('HMGET', jk, 'state', 'queue', 'seq', 'unique_key')
  local state, q = f[1], f[2]
  if not state then return 0 end
  local m = member(f[3], id)
  redis.call('ZREM', B .. 'all', m)
  redis.call('ZREM', skey(q, state), m)
  tally(q, state, -1)
  if state == 'queued' then
    if in_list then
      redis.call('LREM', qkey(q), 1, id)
      unwake_if_empty(q)
    end
  elseif state == 'scheduled' then
    unschedule(id)
  elseif state == 'started' then
    redis.call('ZREM', B .. 'lease', id)
  else
    redis.call('ZREM', B .. 'done', id)
  end
  release_key(f[4], id)
  redis.call('DEL', jk)
  return 1
end

-- A job as a positional row (FIELDS order, id first), missing fields as JSON null.
local function row(id)
  local r = redis.call('HMGET', jkey(id), unpack(FIELDS, 2))
  for i = 1, #FIELDS - 1 do
    if r[i] == false then r[i] = null end
  end
  return {id, unpack(r)}
end
local function encode(list)
  if #list == 0 then return '[]' end
  return cjson.encode(list)
end

-- Store one new job given as a row in ENQUEUE_FIELDS order. Returns nil when stored, or the id of the pending
-- job that blocks it (same id, or same unique key).
local function enqueue_one(r, seq)
  local id, q, state, uk = r[1], r[2], r[7], r[16]
  local jk = jkey(id)
  local old = redis.call('HGET', jk, 'state')
  if old and PENDING[old] then return id end
  if uk ~= null then
    local holder = redis.call('GET', B .. 'u:' .. uk)
    if holder then return holder end
  end
  if old then remove(id, true) end
  local args = {}
  for i = 1, #ENQUEUE_FIELDS do
    local v = r[i]
    if v ~= null then
      args[#args + 1] = ENQUEUE_FIELDS[i]
      args[#args + 1] = v
    end
  end
  args[#args + 1] = 'seq'
  args[#args + 1] = seq
  redis.call('HSET', jk, unpack(args))
  local m = member(seq, id)
  redis.call('ZADD', B .. 'all', r[8], m)
  redis.call('ZADD', skey(q, state), r[8], m)
  tally(q, state, 1)
  if uk ~= null then redis.call('SET', B .. 'u:' .. uk, id) end
  if state == 'queued' then
    redis.call('RPUSH', qkey(q), id)
    woken[q] = true
  elseif state == 'scheduled' then
    local run_at = r[10]
    if run_at == null then run_at = '0' end
    schedule(id, run_at)
  end
  return nil
end

local function seqs(n)
  return redis.call('INCRBY', B .. 'seq', n) - n
end
local function fmt_seq(n) return string.format('%015d', n) end
