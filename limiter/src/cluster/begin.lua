-- The first step of a decision across slots (cluster.rs): the decision time, and the first
-- answer to a repeated Idempotency-Key, read on the client's partition.
--
-- KEYS[1]  the Idempotency-Key record when ARGV[1] is not empty, else any key of the client's
--          partition (it only routes the call there)
-- ARGV[1]  the request's fingerprint under an Idempotency-Key, or ''
--
-- Returns {'go', now µs}: no earlier answer, decide at now (this node's TIME is the decision's
-- clock, as decide.lua's is); or decide.lua's reply format: the first answer with replayed = 1,
-- or {-1} when the key was first used with another request.

if ARGV[1] ~= '' then
  local first = first_answer(KEYS[1], ARGV[1])
  if first then return first end
end
local clock = redis.call('TIME')
return {'go', tonumber(clock[1]) * 1000000 + tonumber(clock[2])}
