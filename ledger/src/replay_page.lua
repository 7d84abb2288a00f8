-- One page of a replay read, and where the stream starts now, in one atomic step.
--
-- KEYS[1]  the event stream
-- ARGV[1]  the XRANGE start (`-` or `(<id>`), ARGV[2] the page size
-- Returns {first id on the stream ('' when empty), {{stream, entries}}}: the entries in the
-- XREAD reply shape. If the first id is past where the reader stood, entries between were
-- trimmed (archived) meanwhile and the reader asks Postgres for them again.
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local page = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local first_id = ''
if #first > 0 then first_id = first[1][1] end
return {first_id, {{KEYS[1], page}}}
