-- get: ARGV = id. Returns the job's row (JSON), or nil.
if redis.call('EXISTS', jkey(ARGV[1])) == 0 then return false end
return cjson.encode(row(ARGV[1]))
