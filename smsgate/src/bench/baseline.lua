-- The floor `smsgate bench` compares the decision script with: a plain sliding-log limiter
-- doing the same checks and the same XADD, and nothing else (no reply per window, no
-- idempotency, no retention forms, no shadow rules, no Retry-After).
--
-- KEYS[1]       the stream
-- KEYS[2..n+1]  one sorted set per rule
-- ARGV[1]       the event, already encoded
-- ARGV[2]       the member to add when accepted
-- ARGV[3]       n, then per rule: the number of windows w, then w pairs (limit, µs)
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local rules, at, accepted, longest = tonumber(ARGV[3]), 4, true, {}
for r = 1, rules do
  local windows = tonumber(ARGV[at])
  at = at + 1
  local quota, l = KEYS[r + 1], 0
  for _ = 1, windows do
    local limit, d = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    at = at + 2
    l = math.max(l, d)
    local count = redis.call('ZCOUNT', quota, string.format('(%d', now - d), '+inf')
    if count >= limit then accepted = false end
  end
  longest[r] = l
end
if accepted then
  for r = 1, rules do
    local quota = KEYS[r + 1]
    redis.call('ZREMRANGEBYSCORE', quota, '-inf', string.format('%d', now - longest[r]))
    redis.call('ZADD', quota, string.format('%d', now), ARGV[2])
    redis.call('PEXPIRE', quota, string.format('%d', math.ceil(longest[r] / 1000)))
  end
end
redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
return accepted and 1 or 0
