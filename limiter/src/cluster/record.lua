-- Records a decision made across slots (cluster.rs) as its event, on the client's partition,
-- with everything decide.lua writes there: the event, the body for the dispatcher and the
-- Idempotency-Key record. The quotas were decided by reserve.lua; this step only refuses.
--
-- KEYS[1]  the event stream of the client's partition
-- KEYS[2]  the id's fence, KEYS[3] its recorded mark (see fence.lua)
-- KEYS[4]  where an accepted body waits for the dispatcher
-- KEYS[5]  the Idempotency-Key record, when ARGV[6] is not empty
-- ARGV[1]  the pending event: map entries without the map's header (as for decide.lua)
-- ARGV[2]  the event id
-- ARGV[3]  1 accepted, 0 rejected
-- ARGV[4]  the decision time T, µs (the event's at_us and every quota member's score)
-- ARGV[5]  retry_after, s (0 when accepted)
-- ARGV[6]  the request's fingerprint under an Idempotency-Key, or ''
-- ARGV[7]  the message as a refused request keeps it, ARGV[8] the name of that form
-- ARGV[9]  the full body when the event does not carry it, or ''
-- ARGV[10] how long the body waits for the dispatcher, ms
-- ARGV[11] how long the recorded mark lasts, ms
-- ARGV[12] how many map entries ARGV[1] holds
-- ARGV[13] the message as an accepted request keeps it, ARGV[14] the name of that form
-- ARGV[15] the number of violated windows v, then v names, then the number of shadow
--          windows s that would have refused, then s names, then per rule and window of the
--          policy: remaining, reset_after s, retry_after s (as decide.lua replies)
--
-- Returns decide.lua's reply; {-2} when the id is fenced (its lease ended and a reclaimer may
-- have released its reservations: nothing is recorded); {-1} or the first answer (replayed =
-- 1) for an Idempotency-Key seen before, recording nothing.

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

if redis.call('EXISTS', KEYS[2]) == 1 then return {-2} end
local fingerprint = ARGV[6]
local idem = nil
if fingerprint ~= '' then
  idem = KEYS[5]
  local first = first_answer(idem, fingerprint)
  if first then return first end
end

local outcome = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local retry_after = tonumber(ARGV[5])
local at = 15
local violated, shadow = {}, {}
for i = 1, tonumber(ARGV[at]) do violated[i] = ARGV[at + i] end
at = at + tonumber(ARGV[at]) + 1
for i = 1, tonumber(ARGV[at]) do shadow[i] = ARGV[at + i] end
at = at + tonumber(ARGV[at]) + 1
local message, stored = ARGV[13], ARGV[14]
if outcome == 1 then
  if ARGV[9] ~= '' then
    redis.call('SET', KEYS[4], ARGV[9], 'PX', ARGV[10])
  end
  -- From here a reclaimer commits this id's reservations instead of releasing them.
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[11])
else
  message, stored = ARGV[7], ARGV[8]
end
local event = event_bytes(ARGV[1], tonumber(ARGV[12]), {at_us = now,
  outcome = outcome == 1 and 'accepted' or 'rejected', violated = violated, shadow = shadow,
  retry_after = retry_after, message = message, stored = stored})
local id = redis.call('XADD', KEYS[1], '*', 'e', event)

local reply = {outcome, now, retry_after, id, 0, ARGV[2], ''}
for i = at, #ARGV do reply[#reply + 1] = tonumber(ARGV[i]) end
if idem then
  redis.call('SET', idem, cmsgpack.pack({fingerprint, reply}), 'PX', 86400000)
end
return reply
