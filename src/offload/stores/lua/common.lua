-- Shared helpers of the offload scripts, used two ways by offload.stores.redis (after the generated ROW_FIELDS
-- table). As one Redis Functions library (Redis 7+), every block is defined once, when the library loads; each
-- function starts with forget(), since what a call leaves in the tables below outlives it there. As EVALSHA
-- scripts (Redis 6.2), each script is prefixed with only the blocks it uses, directly or through another
-- block: unused closures would cost every call. Blocks are separated by blank lines, so a block has none inside.
--
-- KEYS[1] is the site's key base "<prefix>:{<site>}:"; every key a script touches derives from it. Times arrive
-- as strings from the caller's clock and are stored as given (never through a Lua number, whose tostring keeps
-- 14 digits); tonumber() only compares them.

-- Per call: in the library this block becomes declarations that each function assigns when called (a library
-- cannot reach KEYS or cjson while it loads).
local B = KEYS[1]
local null = cjson.null

local PENDING = {scheduled = true, queued = true, started = true}

local function jkey(id) return B .. 'j:' .. id end

local function qkey(q) return B .. 'q:' .. q end

-- Priorities (issue 22): the queued ids of priority p wait in q:<Q> for 0 (the default, and every job of data
-- written before priorities existed) and in q:<Q>#<p> for 1-9 ('#' is never part of a queue name); a job hash
-- holds `priority` only when it is not 0. pqkeys(q) lists the ten lists of a queue, first to last.
local function pqkey(q, p)
  if not p or p == '0' or p == 0 then return qkey(q) end
  return qkey(q) .. '#' .. p
end

local function pqkeys(q)
  local keys = {qkey(q)}
  for p = 1, 9 do keys[p + 1] = qkey(q) .. '#' .. p end
  return keys
end

local function has_queued(q) return redis.call('EXISTS', unpack(pqkeys(q))) > 0 end

-- Paused queues (issue 22): HASH paused, Q -> paused_at. A paused queue keeps no wake token.
local function is_paused(q) return redis.call('HEXISTS', B .. 'paused', q) == 1 end

local function wkey(q) return B .. 'w:' .. q end

-- Concurrency limits (issue 22): HASH limits, Q -> how many of its jobs may be started at once. room(q) is how
-- many more may start (the started count of HASH counts, as apply() last wrote it), or nil without a limit.
local function room(q)
  local cap = redis.call('HGET', B .. 'limits', q)
  if not cap then return nil end
  return tonumber(cap) - tonumber(redis.call('HGET', B .. 'counts', q .. '|started') or 0)
end

-- Per-key limits: field '<Q>#key' of HASH limits ('#' is never part of a queue name); HASH kr:<Q> counts the
-- queue's started jobs per limit_key while the queue has one (move() keeps it, limit.lua rebuilds it).
local function key_cap(q)
  local cap = redis.call('HGET', B .. 'limits', q .. '#key')
  return cap and tonumber(cap)
end

local function skey(q, state) return B .. 's:' .. q .. ':' .. state end

-- Listing members are "<15-digit seq>:<id>", so equal created_at scores sort in insertion order.
local function member_id(m) return string.sub(m, 17) end

local function chunked(command, key, args)
  for i = 1, #args, 4000 do redis.call(command, key, unpack(args, i, math.min(i + 3999, #args))) end
end

-- counts(): the number of jobs per queue and state; a field that reaches zero is removed. Returns the new count.
local function tally(q, state, n)
  if n == 0 then return nil end
  local count = redis.call('HINCRBY', B .. 'counts', q .. '|' .. state, n)
  if count <= 0 then redis.call('HDEL', B .. 'counts', q .. '|' .. state) end
  return count
end

-- ZADD of score/member pairs to an index; `new` when the index does not exist yet. Redis keeps a small ZSET as a
-- listpack, where each insert parses the score of every entry before it (some 25 us per ZADD at 120 jobs, 1 us
-- in a skiplist), and keeps a skiplist once it has one: a new index is made one by a member longer than
-- zset-max-listpack-value in the ZADD that creates it, removed at once, so no reader ever sees it.
local SKIPLIST  -- set on first use: a library cannot reach `string` while it loads
local function index_add(key, args, new)
  local from = 1
  if new then
    SKIPLIST = SKIPLIST or string.rep('~', 256)
    local last = math.min(#args, 3998)
    redis.call('ZADD', key, 0, SKIPLIST, unpack(args, 1, last))
    redis.call('ZREM', key, SKIPLIST)
    from = last + 1
  end
  for i = from, #args, 4000 do redis.call('ZADD', key, unpack(args, i, math.min(i + 3999, #args))) end
end

-- Index changes are gathered and written by apply(): one ZREM, ZADD and pair of counter updates per queue
-- and transition rather than per job. A job changes state at most once between two apply() calls.
-- Listing ZSETs s:<queue>:<state> (by created_at) exist for every state but started, whose index is the lease
-- ZSET. 'new' and 'gone' stand for no state.
local groups, group_list = {}, {}
local keyed = {}  -- per call: queue -> whether it has a per-key limit
local function move(q, id, seq, created, from, to)
  if from == 'started' or to == 'started' then
    if keyed[q] == nil then keyed[q] = redis.call('HEXISTS', B .. 'limits', q .. '#key') == 1 end
    local lk = keyed[q] and redis.call('HGET', jkey(id), 'limit_key')
    if lk then
      local n = redis.call('HINCRBY', B .. 'kr:' .. q, lk, from == 'started' and -1 or 1)
      if n <= 0 then redis.call('HDEL', B .. 'kr:' .. q, lk) end
    end
  end
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
local function push(q, id, p)
  local k = pqkey(q, p)
  local ids = pushes[k]
  if not ids then
    ids = {}
    pushes[k] = ids
  end
  ids[#ids + 1] = id
  woken[q] = true
end

-- Drops the writes gathered above: once apply() has made them, and at the start of each library call (one that
-- failed half-way must not leave its writes to the next).
local function forget()
  groups, group_list, site_add, site_rem, woken, pushes, keyed = {}, {}, {}, {}, {}, {}, {}
end

local function apply()
  for k, ids in pairs(pushes) do chunked('RPUSH', k, ids) end
  for _, g in ipairs(group_list) do
    if #g.rem > 0 then chunked('ZREM', skey(g.q, g.from), g.rem) end
    if g.from ~= 'new' then tally(g.q, g.from, -g.n) end
    -- The counters match the listing indexes (started jobs have none): a count of g.n is a new index.
    local count = g.to ~= 'gone' and tally(g.q, g.to, g.n)
    if #g.add > 0 then index_add(skey(g.q, g.to), g.add, count == g.n) end
    -- A job of a limited queue stopped: the queue may have room again for work that waits.
    if g.from == 'started' and (redis.call('HEXISTS', B .. 'limits', g.q) == 1
        or redis.call('HEXISTS', B .. 'limits', g.q .. '#key') == 1) and has_queued(g.q) then
      woken[g.q] = true
    end
  end
  for name, ids in pairs(site_rem) do chunked('ZREM', B .. name, ids) end
  for name, args in pairs(site_add) do chunked('ZADD', B .. name, args) end
  for q in pairs(woken) do
    if redis.call('EXISTS', wkey(q)) == 0 and not is_paused(q) and (room(q) or 1) > 0 then
      redis.call('RPUSH', wkey(q), '1')
    end
  end
  forget()
end

local function unwake_if_empty(q)
  if not has_queued(q) then redis.call('DEL', wkey(q)) end
end

-- Scheduled jobs, by run_at (written at once: schedule reads the head). w:sched gets a token when the
-- earliest due time moves earlier, so a sleeping waiter looks again.
local function schedule(id, run_at)
  local head = redis.call('ZRANGE', B .. 'sched', 0, 0, 'WITHSCORES')
  index_add(B .. 'sched', {run_at, id}, head[2] == nil)
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

-- A started job whose worker is gone (its lease ran out, or it was declared dead): the error of type kind is
-- recorded and the attempt counted; the job goes back to the head of its priority's waiting list (collected in
-- heads, pushed by requeue_heads) or fails once its attempts are spent. f: the job's ABANDON_FIELDS.
local ABANDON_FIELDS = {'state', 'queue', 'seq', 'created_at', 'attempts', 'max_attempts', 'worker', 'errors',
                        'unique_key', 'priority'}
local function abandon(id, f, kind, message, now, heads)
  local jk, q = jkey(id), f[2]
  local err = '{"type":"' .. kind .. '","reason":"abandoned","message":' .. cjson.encode(message) ..
              ',"traceback":null}'
  redis.call('HSET', jk, 'error', err, 'errors', append_error(f[8], err))
  redis.call('HDEL', jk, 'lease_token', 'lease_until')
  if tonumber(f[5]) < tonumber(f[6]) then
    redis.call('HSET', jk, 'state', 'queued')
    move(q, id, f[3], f[4], 'started', 'queued')
    local k = pqkey(q, f[10])
    local head = heads[k]
    if not head then
      head = {}
      heads[k] = head
    end
    head[#head + 1] = {tonumber(f[3]), id}
    woken[q] = true
  else
    redis.call('HSET', jk, 'state', 'failed', 'ended_at', now)
    site_set('done', id, now)
    move(q, id, f[3], f[4], 'started', 'failed')
    release_key(f[9], id)
  end
end

-- Push the jobs abandon collected back at the head of their lists, in their order of arrival (seq).
local function requeue_heads(heads)
  for k, head in pairs(heads) do
    table.sort(head, function(a, b) return a[1] < b[1] end)
    for j = #head, 1, -1 do redis.call('LPUSH', k, head[j][2]) end
  end
end

-- Delete a job and its index entries; in_list false when the caller already dropped the queue list.
local function remove(id, in_list)
  local jk = jkey(id)
  local f = redis.call('HMGET', jk, 'state', 'queue', 'seq', 'unique_key', 'priority')
  local state, q = f[1], f[2]
  if not state then return 0 end
  move(q, id, f[3], nil, state, 'gone')
  if state == 'queued' then
    if in_list then
      redis.call('LREM', pqkey(q, f[5]), 1, id)
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

-- New jobs arrive in ARGV from o + 1 on as kinds, the values that most jobs of a batch share, then the jobs:
-- the number of kinds; per kind its queue, state, enqueued_at, attempts, max_attempts, meta, priority (a digit)
-- and limit_key;
-- per job its kind
-- (1, 2, ...), id, created_at, run_at, unique_key ('=' and the key), spec and payload; '' for an absent value.
-- Returns the kinds by the text of their number, and the offset of the first job. A kind's `fields` are its part
-- of a job hash, ready for HSET.
local function read_kinds(o)
  local count = tonumber(ARGV[o + 1])
  local kinds = {}
  for i = 1, count do
    local b = o + 1 + (i - 1) * 8
    local q, state, enqueued_at, meta, p = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 6], ARGV[b + 7]
    local fields = {'queue', q, 'state', state, 'attempts', ARGV[b + 4], 'max_attempts', ARGV[b + 5]}
    if enqueued_at ~= '' then
      fields[#fields + 1] = 'enqueued_at'
      fields[#fields + 1] = enqueued_at
    end
    if meta ~= '' then
      fields[#fields + 1] = 'meta'
      fields[#fields + 1] = meta
    end
    if p ~= '0' then
      fields[#fields + 1] = 'priority'
      fields[#fields + 1] = p
    end
    if ARGV[b + 8] ~= '' then
      fields[#fields + 1] = 'limit_key'
      fields[#fields + 1] = ARGV[b + 8]
    end
    kinds[tostring(i)] = {q = q, state = state, fields = fields, p = p}
  end
  return kinds, o + 1 + count * 8
end

-- Store one new job, the 7 values from ARGV[o + 1] on (see read_kinds); `jk` its key if the caller has it,
-- `unused` when the caller knows that no job has its id. Returns nil when stored, or the id of the pending job
-- in the way (same id or same unique key).
local function enqueue_one(kinds, o, seq, jk, unused)
  local kind, id, created, run_at, uk = kinds[ARGV[o + 1]], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4], ARGV[o + 5]
  jk = jk or jkey(id)
  local old = not unused and redis.call('HGET', jk, 'state')
  if old and PENDING[old] then return id end
  local key = uk ~= '' and string.sub(uk, 2) or nil
  if key then
    local holder = redis.call('GET', B .. 'u:' .. key)
    if holder then return holder end
  end
  if old then remove(id, true) end
  local seq_text = string.format('%015d', seq)
  if run_at == '' and not key then
    redis.call('HSET', jk, 'spec', ARGV[o + 6], 'payload', ARGV[o + 7], 'created_at', created, 'seq', seq_text,
               unpack(kind.fields))
  else
    local args = {'spec', ARGV[o + 6], 'payload', ARGV[o + 7], 'created_at', created, 'seq', seq_text,
                  unpack(kind.fields)}
    if run_at ~= '' then
      args[#args + 1] = 'run_at'
      args[#args + 1] = run_at
    end
    if key then
      args[#args + 1] = 'unique_key'
      args[#args + 1] = key
      redis.call('SET', B .. 'u:' .. key, id)
    end
    redis.call('HSET', jk, unpack(args))
  end
  local q, state = kind.q, kind.state
  move(q, id, seq_text, created, 'new', state)
  if state == 'queued' then
    push(q, id, kind.p)
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

-- The usual single enqueue, in direct commands rather than through the batching of enqueue_one and apply():
-- ARGV holds one kind and one job (16 values, see read_kinds), a queued job of priority 0 with no run_at, no
-- unique key and no limit key, whose id is not in use. Returns false, having written nothing, for any other call.
local NO_META = {}
local function add_queued()
  if #ARGV ~= 16 or ARGV[3] ~= 'queued' or ARGV[4] == '' or ARGV[8] ~= '0' or ARGV[9] ~= '' or ARGV[13] ~= ''
      or ARGV[14] ~= '' then
    return false
  end
  local q, id, created, meta = ARGV[2], ARGV[11], ARGV[12], ARGV[7]
  local jk = jkey(id)
  if redis.call('EXISTS', jk) == 1 then return false end
  local seq = string.format('%015d', redis.call('INCR', B .. 'seq'))
  redis.call('HSET', jk, 'spec', ARGV[15], 'payload', ARGV[16], 'created_at', created, 'seq', seq, 'queue', q,
             'state', 'queued', 'attempts', ARGV[5], 'max_attempts', ARGV[6], 'enqueued_at', ARGV[4],
             unpack(meta ~= '' and {'meta', meta} or NO_META))
  local count = redis.call('HINCRBY', B .. 'counts', q .. '|queued', 1)
  index_add(skey(q, 'queued'), {created, seq .. ':' .. id}, count == 1)
  redis.call('RPUSH', qkey(q), id)
  if redis.call('EXISTS', wkey(q)) == 0 and not is_paused(q) then redis.call('RPUSH', wkey(q), '1') end
  return true
end
