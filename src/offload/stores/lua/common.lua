-- Shared helpers of the offload scripts. offload.stores.redis prepends to each script only the blocks below
-- that the script uses, directly or through another block, after the generated ROW_FIELDS table: unused
-- closures would cost every call. Blocks are separated by blank lines, so a block has none inside.
--
-- KEYS[1] is the site's key base "<prefix>:{<site>}:"; every key a script touches derives from it. Times arrive
-- as strings from the caller's clock and are stored as given (never through a Lua number, whose tostring keeps
-- 14 digits); tonumber() only compares them.

local B = KEYS[1]

local null = cjson.null

local PENDING = {scheduled = true, queued = true, started = true}

local function jkey(id) return B .. 'j:' .. id end

local function qkey(q) return B .. 'q:' .. q end

local function wkey(q) return B .. 'w:' .. q end

local function skey(q, state) return B .. 's:' .. q .. ':' .. state end

-- Listing members are "<15-digit seq>:<id>", so equal created_at scores sort in insertion order.
local function member_id(m) return string.sub(m, 17) end

local function chunked(command, key, args)
  for i = 1, #args, 4000 do redis.call(command, key, unpack(args, i, math.min(i + 3999, #args))) end
end

-- counts(): the number of jobs per queue and state; a field that reaches zero is removed.
local function tally(q, state, n)
  if n ~= 0 and redis.call('HINCRBY', B .. 'counts', q .. '|' .. state, n) <= 0 then
    redis.call('HDEL', B .. 'counts', q .. '|' .. state)
  end
end

-- Index changes are gathered and written by apply(): one ZREM, ZADD and pair of counter updates per queue
-- and transition rather than per job. A job changes state at most once between two apply() calls.
-- Listing ZSETs s:<queue>:<state> (by created_at) exist for every state but started, whose index is the lease
-- ZSET. 'new' and 'gone' stand for no state.
local groups, group_list = {}, {}
local function move(q, id, seq, created, from, to)
  local k = q .. '|' .. from .. '|' .. to
  local g = groups[k]
  if not g then
    g = {q = q, from = from, to = to, n = 0, rem = {}, add = {}}
    groups[k] = g
    group_list[#group_list + 1] = g
  end
  local m = seq .. ':' .. id
  if from ~= 'started' and from ~= 'new' then g.rem[#g.rem + 1] = m end
  if to ~= 'started' and to ~= 'gone' then
    local add = g.add
    add[#add + 1] = created
    add[#add + 1] = m
  end
  g.n = g.n + 1
end

-- The site-wide ZSETs of job ids: lease (started jobs by lease_until) and done (by ended_at, for purge).
local site_add, site_rem = {}, {}
local function site_set(name, id, score)
  local t = site_add[name]
  if not t then
    t = {}
    site_add[name] = t
  end
  t[#t + 1] = score
  t[#t + 1] = id
end
local function site_drop(name, id)
  local t = site_rem[name]
  if not t then
    t = {}
    site_rem[name] = t
  end
  t[#t + 1] = id
end

-- Wake tokens: w:<queue> holds one token while the queue has work that no idle worker has been woken for.
-- Waiters BLPOP it; a script that empties a queue list drops it, so an idle site keeps no wake keys.
local woken = {}
local pushes = {}
local function push(q, id)
  local ids = pushes[q]
  if not ids then
    ids = {}
    pushes[q] = ids
  end
  ids[#ids + 1] = id
  woken[q] = true
end

local function apply()
  for q, ids in pairs(pushes) do chunked('RPUSH', qkey(q), ids) end
  pushes = {}
  for _, g in ipairs(group_list) do
    if #g.rem > 0 then chunked('ZREM', skey(g.q, g.from), g.rem) end
    if #g.add > 0 then chunked('ZADD', skey(g.q, g.to), g.add) end
    if g.from ~= 'new' then tally(g.q, g.from, -g.n) end
    if g.to ~= 'gone' then tally(g.q, g.to, g.n) end
  end
  groups, group_list = {}, {}
  for name, ids in pairs(site_rem) do chunked('ZREM', B .. name, ids) end
  for name, args in pairs(site_add) do chunked('ZADD', B .. name, args) end
  site_add, site_rem = {}, {}
  for q in pairs(woken) do
    if redis.call('EXISTS', wkey(q)) == 0 then redis.call('RPUSH', wkey(q), '1') end
  end
  woken = {}
end

local function unwake_if_empty(q)
  if redis.call('EXISTS', qkey(q)) == 0 then redis.call('DEL', wkey(q)) end
end

-- Scheduled jobs, by run_at (written at once: schedule reads the head). w:sched gets a token when the
-- earliest due time moves earlier, so a sleeping waiter looks again.
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

-- Append one JSON error document to a JSON array kept as text (no decode and encode).
local function append_error(errors, err)
  if not errors or errors == '[]' then return '[' .. err .. ']' end
  return string.sub(errors, 1, -2) .. ',' .. err .. ']'
end

-- Delete a job and its index entries; in_list false when the caller already dropped the queue list.
local function remove(id, in_list)
  local jk = jkey(id)
  local f = redis.call('HMGET', jk, 'state', 'queue', 'seq', 'unique_key')
  local state, q = f[1], f[2]
  if not state then return 0 end
  move(q, id, f[3], nil, state, 'gone')
  if state == 'queued' then
    if in_list then
      redis.call('LREM', qkey(q), 1, id)
      unwake_if_empty(q)
    end
  elseif state == 'scheduled' then
    unschedule(id)
  elseif state == 'started' then
    site_drop('lease', id)
  else
    site_drop('done', id)
  end
  release_key(f[4], id)
  redis.call('DEL', jk)
  return 1
end

-- A job as the row the Python side decodes: id, then ROW_FIELDS, missing ones as JSON null.
local function row(id)
  local r = redis.call('HMGET', jkey(id), unpack(ROW_FIELDS))
  for i = 1, #ROW_FIELDS do
    if r[i] == false then r[i] = null end
  end
  return {id, unpack(r)}
end

local function encode(list)
  if #list == 0 then return '[]' end
  return cjson.encode(list)
end

-- Store one new job, read from ARGV[o + 1 ..]: id, queue, state, created_at, enqueued_at, run_at, attempts,
-- max_attempts, meta, unique_key ('=' and the key), spec, payload; '' for an absent value. Returns nil when
-- stored, or the id of the pending job in the way (same id or same unique key).
local function enqueue_one(o, seq)
  local id, q, state, created, uk = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4], ARGV[o + 10]
  local jk = jkey(id)
  local old = redis.call('HGET', jk, 'state')
  if old and PENDING[old] then return id end
  if uk ~= '' then
    uk = string.sub(uk, 2)
    local holder = redis.call('GET', B .. 'u:' .. uk)
    if holder then return holder end
  end
  if old then remove(id, true) end
  local seq_text = string.format('%015d', seq)
  local args = {'spec', ARGV[o + 11], 'payload', ARGV[o + 12], 'queue', q, 'state', state, 'created_at', created,
                'attempts', ARGV[o + 7], 'max_attempts', ARGV[o + 8], 'seq', seq_text}
  local enqueued_at, run_at, meta = ARGV[o + 5], ARGV[o + 6], ARGV[o + 9]
  if enqueued_at ~= '' then
    args[#args + 1] = 'enqueued_at'
    args[#args + 1] = enqueued_at
  end
  if run_at ~= '' then
    args[#args + 1] = 'run_at'
    args[#args + 1] = run_at
  end
  if meta ~= '' then
    args[#args + 1] = 'meta'
    args[#args + 1] = meta
  end
  if uk ~= '' then
    args[#args + 1] = 'unique_key'
    args[#args + 1] = uk
    redis.call('SET', B .. 'u:' .. uk, id)
  end
  redis.call('HSET', jk, unpack(args))
  move(q, id, seq_text, created, 'new', state)
  if state == 'queued' then
    push(q, id)
  elseif state == 'scheduled' then
    schedule(id, run_at ~= '' and run_at or '0')
  elseif state == 'started' then
    site_set('lease', id, '0')
  end
  return nil
end

local function seqs(n)
  return redis.call('INCRBY', B .. 'seq', n) - n
end
