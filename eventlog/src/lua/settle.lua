-- Settles entries of one partition atomically: writes their dead letters, then acks the given
-- entries (settled and dead-lettered alike). Both keys share the partition's hash tag.
--
-- KEYS[1]  the event stream          KEYS[2]  the partition's dead-letter stream
-- ARGV[1]  group   ARGV[2]  dead-letter cap (approximate MAXLEN)   ARGV[3]  n dead letters
-- ARGV[4]  k, the field/value arguments per dead letter (the schema lives in Rust: dead.rs)
-- ARGV[5 .. 4+k*n]  the dead letters' fields and values
-- ARGV[5+k*n ..]    entry ids to ack
-- Returns the number of entries acked.
local group, cap, n, k = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 0, n - 1 do
  local at = 5 + k * i
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', cap, '*', unpack(ARGV, at, at + k - 1))
end
local first = 5 + k * n
if #ARGV < first then return 0 end
local acked = 0
-- XACK in chunks: Lua's unpack has a stack limit well below a batch of 5,000.
local chunk = 500
for i = first, #ARGV, chunk do
  acked = acked + redis.call('XACK', KEYS[1], group, unpack(ARGV, i, math.min(i + chunk - 1, #ARGV)))
end
return acked
