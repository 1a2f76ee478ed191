-- set_progress: ARGV = id, progress JSON, meta JSON ('' leaves a field as it is). Returns 0 if no such job.
local jk = jkey(ARGV[1])
if redis.call('EXISTS', jk) == 0 then return 0 end
if ARGV[2] ~= '' then redis.call('HSET', jk, 'progress', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', jk, 'meta', ARGV[3]) end
return 1
