-- Decides the fate of a reservation whose lease ended (cluster.rs), on the partition of its
-- event: if the event was recorded as accepted, the reservation must be committed; otherwise
-- the id is fenced, so record.lua refuses it from now on, and the reservation may be released.
-- An id is thus recorded or fenced, never both.
--
-- KEYS[1]  the id's recorded mark, KEYS[2] its fence (both of the event's partition)
-- ARGV[1]  how long the fence lasts, ms (as long as the reservation could count anywhere)
--
-- Returns 1 recorded (commit), 0 fenced (release).

if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX')
return 0
