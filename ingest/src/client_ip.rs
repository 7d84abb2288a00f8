//! Who the client is. The socket peer, unless the peer is a proxy we trust
//! (`SMSGATE_TRUSTED_PROXIES`): then `X-Forwarded-For` is read from the right, skipping our own
//! proxies, and the first address we do not trust is the client. A client can prepend anything
//! it likes to the header, so nothing left of that address is believed.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// CIDR ranges whose `X-Forwarded-For` we believe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR range")]
pub struct TrustedProxiesError(String);

impl TrustedProxies {
    /// A comma-separated list of CIDRs or bare addresses; empty trusts nobody.
    pub fn parse(text: &str) -> Result<Self, TrustedProxiesError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| TrustedProxiesError(s.to_owned()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request that arrived from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !self.trusts(client) {
                        break;
                    }
                }
                // Garbage: the hop before it (one of ours) is the last address we can vouch for.
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer: IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(proxies.client_ip(peer, &headers("1.2.3.4")), peer);
        assert_eq!(
            TrustedProxies::default().client_ip(peer, &headers("1.2.3.4")),
            peer
        );
    }

    #[test]
    fn trusted_proxies_name_the_first_untrusted_hop_from_the_right() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let spoofed_then_real = headers("6.6.6.6, 198.51.100.7, 192.168.1.1");
        assert_eq!(
            proxies.client_ip(peer, &spoofed_then_real),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(proxies.client_ip(peer, &HeaderMap::new()), peer);
        assert_eq!(
            proxies.client_ip(peer, &headers("nonsense, 10.9.9.9")),
            "10.9.9.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn mapped_ipv6_peers_are_their_ipv4_address() {
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            proxies.client_ip(mapped, &headers("2001:db8::1")),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }
}
