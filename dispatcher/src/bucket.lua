-- One token bucket shared by every dispatcher replica: SMSGATE_PROVIDER_TPS sends a second.
-- Redis TIME is the clock, so replicas on machines with different clocks share one rate.
-- A caller always takes its token, possibly one not there yet: it is told how long to wait
-- for it, so waiting callers line up one per 1/rate s instead of polling.
--
-- KEYS[1]  the bucket (hash: tokens, at_ms); tokens below 0 are reserved ahead
-- ARGV[1]  tokens per second; ARGV[2] the bucket's size (the largest burst)
-- Returns the milliseconds to wait before using the token (0: use it now).

local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at_ms')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000) - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at_ms', tostring(now))
redis.call('PEXPIRE', KEYS[1], 60000)
if tokens >= 0 then return 0 end
return math.ceil(-tokens * 1000 / rate)
