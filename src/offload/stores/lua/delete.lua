-- delete: ARGV = id. Removes the job and its index entries whatever its state; returns 1, or 0 if absent.
local n = remove(ARGV[1], true)
apply()
return n
