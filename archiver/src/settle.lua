-- Settles one archived batch of one partition atomically: writes its dead letters, then acks
-- every entry of the batch (archived or dead-lettered). Both keys share the partition's hash tag.
--
-- KEYS[1]  the event stream          KEYS[2]  the partition's dead-letter stream
-- ARGV[1]  group   ARGV[2]  dead-letter cap (approximate MAXLEN)   ARGV[3]  n dead letters
-- ARGV[4 .. 3+3n]  (stream_id, reason, payload) per dead letter
-- ARGV[4+3n ..]    entry ids to ack
-- Returns the number of entries acked.
local group, cap, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 0, n - 1 do
  local at = 4 + 3 * i
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', cap, '*',
    'group', group, 'stream_id', ARGV[at], 'reason', ARGV[at + 1], 'payload', ARGV[at + 2])
end
local first = 4 + 3 * n
if #ARGV < first then return 0 end
local acked = 0
-- XACK in chunks: Lua's unpack has a stack limit well below a batch of 5,000.
local chunk = 500
for i = first, #ARGV, chunk do
  acked = acked + redis.call('XACK', KEYS[1], group, unpack(ARGV, i, math.min(i + chunk - 1, #ARGV)))
end
return acked
