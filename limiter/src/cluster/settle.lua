-- Ends one reservation in one rule's quota (cluster.rs): commit keeps the member, which now
-- counts as an accepted request; release removes it. Either way the lease record goes.
--
-- KEYS[1]  the rule's quota, KEYS[2] its leases (see reserve.lua)
-- ARGV[1]  the event id, ARGV[2] its lease member, ARGV[3] 'c' commit | 'r' release
--
-- Returns 1 when a lease record was removed (0: already settled, e.g. by a reclaimer).

if ARGV[3] == 'r' then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return redis.call('ZREM', KEYS[2], ARGV[2])
