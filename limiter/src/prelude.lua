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
  reply[5] = 1
  return reply
end

-- The header of a MessagePack map of `entries` entries: fixmap up to 15, else map16.
local function map_header(entries)
  if entries < 16 then return string.char(0x80 + entries) end
  return string.char(0xde, math.floor(entries / 256), entries % 256)
end

-- The event as the stream keeps it: ingest's `entries` map entries (`pending`, a MessagePack
-- map without its header) and the decision's, under one header. Nothing ingest wrote is decoded
-- or re-encoded.
local function event_bytes(pending, entries, decision)
  local tail = cmsgpack.pack('at_us', decision.at_us, 'outcome', decision.outcome,
    'violated', decision.violated, 'retry_after', decision.retry_after,
    'message', decision.message, 'stored', decision.stored)
  entries = entries + 6
  if #decision.shadow > 0 then
    tail = tail .. cmsgpack.pack('shadow_violated', decision.shadow)
    entries = entries + 1
  end
  return map_header(entries) .. pending .. tail
end

