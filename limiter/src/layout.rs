//! Redis key layout. Every key one script touches carries the same hash tag, `{p}` for the
//! client's partition, so the script runs unchanged on Redis Cluster; a namespace prefix keeps
//! deployments (and tests) apart on one Redis.
//!
//! ```text
//! <ns>:{<p>}:events          the event stream of partition p
//! <ns>:{<p>}:quota:<client>  sorted set of a client's accepted requests (score = µs)
//! <ns>:{<p>}:dead            dead-letter stream of partition p
//! <ns>:{<p>}:body:<id>       an accepted message's body, until the dispatcher takes it
//! <ns>:{<p>}:rule:<r>:<v>    quota of rule r for key value v (p from the value, see rule_quota)
//! <ns>:{<p>}:rule:<r>:<v>:leases      its reservations in flight (Redis Cluster only)
//! <ns>:{<p>}:lease:<id>:recorded     event id was recorded as accepted (Redis Cluster only)
//! <ns>:{<p>}:lease:<id>:fenced       event id's reservations were reclaimed (Redis Cluster only)
//! ```

use std::net::IpAddr;

/// Names every Redis key smsgate uses for one namespace and partition count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    namespace: String,
    partitions: u16,
}

impl Layout {
    pub const DEFAULT_NAMESPACE: &'static str = "smsgate";

    /// `partitions` below 1 is treated as 1.
    pub fn new(namespace: impl Into<String>, partitions: u16) -> Self {
        Self {
            namespace: namespace.into(),
            partitions: partitions.max(1),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    /// The partition of a client: FNV-1a (64-bit) of the client key, mixed by MurmurHash3's
    /// `fmix64` (FNV's low bits alone spread similar keys badly), modulo the partition count.
    /// Stable across processes, versions and machines; changing the count moves clients, which
    /// is why it is an explicit migration.
    pub fn partition_of(&self, client_key: &str) -> u16 {
        let hash = fmix64(fnv1a64(client_key.as_bytes()));
        u16::try_from(hash % u64::from(self.partitions)).unwrap_or(0)
    }

    /// A key of partition `p`: `<ns>:{p}:<suffix>`.
    pub fn key(&self, partition: u16, suffix: &str) -> String {
        self.key_of(partition, &[suffix])
    }

    /// [`Layout::key`] of a suffix in parts, written once into a string of the right size
    /// (keys are built for every request).
    fn key_of(&self, partition: u16, suffix: &[&str]) -> String {
        let mut digits = itoa::Buffer::new();
        let partition = digits.format(partition);
        let length = suffix.iter().map(|part| part.len()).sum::<usize>();
        // Exactly the key's length: a full string becomes the command's bytes without a copy.
        let mut key = String::with_capacity(self.namespace.len() + partition.len() + 4 + length);
        key.push_str(&self.namespace);
        key.push_str(":{");
        key.push_str(partition);
        key.push_str("}:");
        suffix.iter().for_each(|part| key.push_str(part));
        key
    }

    /// A key that belongs to no partition (projections shared by all): `<ns>:<suffix>`.
    pub fn global(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.namespace)
    }

    pub fn stream(&self, partition: u16) -> String {
        self.key(partition, "events")
    }

    /// Every partition's stream, in partition order.
    pub fn streams(&self) -> Vec<String> {
        (0..self.partitions).map(|p| self.stream(p)).collect()
    }

    pub fn quota(&self, partition: u16, client_key: &str) -> String {
        self.key_of(partition, &["quota:", client_key])
    }

    /// The quota of rule `rule` for one key value, with its partition: the seed's rule `client`
    /// keeps today's `quota:<ip>|<to>` (its partition is the client's), other rules are
    /// `rule:<name>:<value>`, each in the partition of its own value.
    pub fn rule_quota(&self, rule: &str, value: &str) -> (u16, String) {
        if rule == crate::rules::SEED_RULE {
            let p = self.partition_of(value);
            return (p, self.quota(p, value));
        }
        let suffix = ["rule:", rule, ":", value].concat();
        let p = self.partition_of(&suffix);
        (p, self.key(p, &suffix))
    }

    /// The lease records of a rule's quota (Redis Cluster's reserve/commit protocol), in the
    /// quota's slot: `<quota>:leases`.
    pub fn leases_of(quota: &str) -> String {
        format!("{quota}:leases")
    }

    /// The body of accepted message `id` while it waits for the dispatcher, kept apart from
    /// its event so the stream (and everything built from it) holds only the stored form.
    pub fn body(&self, partition: u16, id: &uuid::Uuid) -> String {
        let mut text = uuid::Uuid::encode_buffer();
        self.key_of(
            partition,
            &["body:", id.as_hyphenated().encode_lower(&mut text)],
        )
    }

    pub fn dead_letters(&self, partition: u16) -> String {
        self.key(partition, "dead")
    }
}

impl Default for Layout {
    fn default() -> Self {
        Self::new(Self::DEFAULT_NAMESPACE, 1)
    }
}

/// The identity the policy counts against: `<ip>|<E.164 number>`.
pub fn client_key(ip: &IpAddr, to: &str) -> String {
    format!("{ip}|{to}")
}

/// The client key of a client network (as `Clients::network` prints it) and a number.
pub fn client_key_of(network: &str, to: &str) -> String {
    [network, "|", to].concat()
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_partition_share_a_hash_tag() {
        let layout = Layout::new("t1", 4);
        assert_eq!(layout.stream(2), "t1:{2}:events");
        assert_eq!(
            layout.quota(2, "1.2.3.4|+1415"),
            "t1:{2}:quota:1.2.3.4|+1415"
        );
        assert_eq!(layout.dead_letters(0), "t1:{0}:dead");
        assert_eq!(layout.streams().len(), 4);
    }

    #[test]
    fn partitions_are_pinned_values_of_the_whole_function() {
        // Computed outside this crate (FNV-1a 64 then fmix64, in Python): moving any client to
        // another partition is a migration, so these must never change silently.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fmix64(fnv1a64(b"a")), 0x82a2_a958_a9be_ce5b);
        let pinned = [
            ("198.51.100.1|+14155550123", 5, 1, 1),
            ("2001:db8::7|+447700900123", 8, 0, 1),
            ("10.0.0.1|+14155550001", 11, 3, 2),
            ("203.0.113.9|+4915112345678", 4, 0, 0),
            ("", 6, 2, 2),
        ];
        for (key, of16, of4, of3) in pinned {
            assert_eq!(
                Layout::new("t", 16).partition_of(key),
                of16,
                "{key:?} of 16"
            );
            assert_eq!(Layout::new("t", 4).partition_of(key), of4, "{key:?} of 4");
            assert_eq!(Layout::new("t", 3).partition_of(key), of3, "{key:?} of 3");
            assert_eq!(Layout::new("t", 1).partition_of(key), 0);
        }
        // The key ingest builds is the one pinned above.
        let key = client_key(&"198.51.100.1".parse().unwrap(), "+14155550123");
        assert_eq!(key, "198.51.100.1|+14155550123");
    }

    #[test]
    fn partitions_spread_similar_keys() {
        let layout = Layout::new("t", 16);
        let used: std::collections::HashSet<_> = (0..1000)
            .map(|i| layout.partition_of(&format!("10.0.0.{i}|+1415555{i:04}")))
            .collect();
        assert_eq!(used.len(), 16);
        assert_eq!(Layout::new("t", 0).partitions(), 1);
    }
}
