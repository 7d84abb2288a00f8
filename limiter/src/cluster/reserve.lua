-- Reserves one request in one rule's quota, in the quota's own slot (cluster.rs explains the
-- protocol). A reservation is a quota member like an accepted request's, so every later
-- decision counts it, plus a lease record the gateway drops when it settles.
--
-- KEYS[1]  the rule's quota: sorted set, member = event id, score = decision time µs
-- KEYS[2]  its leases, same hash tag: member = '<event id>@<partition of the event>',
--          score = when the lease ends, µs of this node's clock
-- ARGV[1]  the event id
-- ARGV[2]  its lease member
-- ARGV[3]  the decision time T, µs (from the client's partition, see begin.lua)
-- ARGV[4]  the lease, µs
-- ARGV[5]  how long both keys outlive their last write, ms
-- ARGV[6]  the number of windows w, then w pairs: limit, µs
--
-- Returns {3, lease members…} when some lease ended: nothing is reserved, the caller fences
-- and settles those first. {4} when a member was decided after T: nothing is reserved, and the
-- caller decides again at a new T at once, so every quota takes its members in the order of
-- their decision times and each decision sees every earlier one (as the sequential model
-- does). Else {status, then per window: count, oldest µs or -1, wait µs or -1}
-- with status 1 reserved, 0 full, 2 busy:
--   count   every member inside the window (committed, reserved, and decided after T)
--   wait    when the committed members decided at or before T fill the window alone (so no
--           request in flight can change the answer): how long until one more fits, else -1
-- A window has room when count < limit; the request is reserved only if every window has
-- room. It is full when some window is filled by committed members alone and no window is
-- merely busy (filled only with reservations or members decided after T): a busy answer could
-- still go either way, so the caller settles nothing on it, waits and decides again later.

local quota, leases = KEYS[1], KEYS[2]
local now = tonumber(ARGV[3])
local clock = redis.call('TIME')
local node_now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', string.format('%d', node_now))
if #expired > 0 then
  local reply = {3}
  for i = 1, #expired do reply[#reply + 1] = expired[i] end
  return reply
end

local windows, longest, at = {}, 0, 7
for i = 1, tonumber(ARGV[6]) do
  local d = tonumber(ARGV[at + 1])
  windows[i] = {limit = tonumber(ARGV[at]), d = d}
  longest = math.max(longest, d)
  at = at + 2
end

-- A member decided at t counts in a window of length d while t > T - d; older ones count nowhere.
redis.call('ZREMRANGEBYSCORE', quota, '-inf', string.format('%d', now - longest))
local held = {}
for _, member in ipairs(redis.call('ZRANGE', leases, 0, -1)) do
  held[string.match(member, '^[^@]+')] = true
end
local entries = redis.call('ZRANGE', quota, 0, -1, 'WITHSCORES')
if #entries > 0 and tonumber(entries[#entries]) > now then return {4} end

local reply, room, busy = {0}, true, false
for _, win in ipairs(windows) do
  local count, oldest, settled = 0, -1, {}
  for j = 1, #entries, 2 do
    local t = tonumber(entries[j + 1])
    if t > now - win.d then
      count = count + 1
      if oldest < 0 then oldest = t end
      if t <= now and not held[entries[j]] then settled[#settled + 1] = t end
    end
  end
  local wait = -1
  if count >= win.limit then
    room = false
    if #settled >= win.limit then
      -- The (settled - limit + 1)-th oldest must leave before one more fits, as in decide.lua.
      wait = settled[#settled - win.limit + 1] + win.d - now
    else
      busy = true
    end
  end
  reply[#reply + 1] = count
  reply[#reply + 1] = oldest
  reply[#reply + 1] = wait
end

if room then
  reply[1] = 1
  local ttl = string.format('%d', tonumber(ARGV[5]))
  redis.call('ZADD', quota, string.format('%d', now), ARGV[1])
  redis.call('ZADD', leases, string.format('%d', node_now + tonumber(ARGV[4])), ARGV[2])
  redis.call('PEXPIRE', quota, ttl)
  redis.call('PEXPIRE', leases, ttl)
elseif busy then
  reply[1] = 2
end
return reply
