-- Shared by decide.lua and the cluster's begin.lua and record.lua: Rust prepends this file to
-- each when it builds the script (a Redis script cannot call another).

-- The first answer to an Idempotency-Key stored at `key`, marked replayed; {-1} when the key
-- was first used with another request; nil when the key is new.
local function first_answer(key, fingerprint)
  local stored = redis.call('GET', key)
  if not stored then return nil end
  local first = cmsgpack.unpack(stored)
  if first[1] ~= fingerprint then return {-1} end
  local reply = first[2]
  -- decide.lua's reply is a string that begins with its replayed byte; record.lua's a table.
  if type(reply) == 'string' then return '\1' .. string.sub(reply, 2) end
  reply[5] = 1
  return reply
end
