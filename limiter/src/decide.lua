-- smsgate's decision: check every rolling window of one client and record the request as an
-- event, atomically. Redis TIME is the only clock.
--
-- KEYS[1]  the client's quota: a sorted set of accepted requests (member = event id, score = µs)
-- KEYS[2]  the event stream of the client's partition
-- ARGV[1]  the pending event, a MessagePack map; the decision is added to it here
-- ARGV[2]  the event id (the quota member if accepted)
-- ARGV[3]  the number of windows n, then n triples: name, limit, duration in µs
--
-- Returns {accepted (1|0), now µs, retry_after s, stream id, then per window:
--          remaining, reset_after s, retry_after s (0 unless violated)}.

local quota, stream = KEYS[1], KEYS[2]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local windows = tonumber(ARGV[3])

local function seconds_up(micros)
  return math.ceil(micros / 1000000)
end

local longest = 0
for i = 0, windows - 1 do
  longest = math.max(longest, tonumber(ARGV[6 + 3 * i]))
end
-- A request at t counts in a window of length d while t > now - d; older ones count nowhere.
redis.call('ZREMRANGEBYSCORE', quota, '-inf', string.format('%d', now - longest))

local times = {}
local entries = redis.call('ZRANGE', quota, 0, -1, 'WITHSCORES')
for j = 2, #entries, 2 do
  times[#times + 1] = tonumber(entries[j])
end

local first, counts, violated, retry = {}, {}, {}, {}
local retry_us = 0
for i = 0, windows - 1 do
  local limit, d = tonumber(ARGV[5 + 3 * i]), tonumber(ARGV[6 + 3 * i])
  local k = #times + 1
  for j = 1, #times do
    if times[j] > now - d then k = j break end
  end
  local count = #times - k + 1
  first[i], counts[i], retry[i] = k, count, 0
  if count >= limit then
    -- The (count - limit + 1)-th oldest request in the window must leave before one more fits.
    local wait = times[k + count - limit] + d - now
    retry[i] = seconds_up(wait)
    retry_us = math.max(retry_us, wait)
    violated[#violated + 1] = ARGV[4 + 3 * i]
  end
end

local accepted = #violated == 0
local event = cmsgpack.unpack(ARGV[1])
event['at_us'] = now
event['violated'] = violated
if accepted then
  redis.call('ZADD', quota, string.format('%d', now), ARGV[2])
  redis.call('PEXPIRE', quota, string.format('%d', math.ceil(longest / 1000) + 1000))
  event['outcome'] = 'accepted'
  event['retry_after'] = 0
else
  event['outcome'] = 'rejected'
  event['retry_after'] = seconds_up(retry_us)
end
local id = redis.call('XADD', stream, '*', 'e', cmsgpack.pack(event))

local reply = {accepted and 1 or 0, now, event['retry_after'], id}
for i = 0, windows - 1 do
  local limit, d = tonumber(ARGV[5 + 3 * i]), tonumber(ARGV[6 + 3 * i])
  local used, oldest = counts[i], times[first[i]]
  if accepted then
    used = used + 1
    oldest = oldest or now
  end
  local reset_after = 0
  if oldest then reset_after = seconds_up(oldest + d - now) end
  reply[#reply + 1] = math.max(limit - used, 0)
  reply[#reply + 1] = reset_after
  reply[#reply + 1] = retry[i]
end
return reply
