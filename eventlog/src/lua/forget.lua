-- Removes consumers that have nothing pending and have been idle for ARGV[3] ms, except
-- ARGV[2] (ourselves). Inside a script, so no consumer can read entries between the check and
-- the removal (removing a consumer drops its pending entries).
--
-- KEYS[1]  the event stream   ARGV[1]  group   ARGV[2]  this consumer   ARGV[3]  idle ms
local removed = 0
local min_idle = tonumber(ARGV[3])
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if name ~= ARGV[2] and pending == 0 and idle >= min_idle then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed = removed + 1
  end
end
return removed
