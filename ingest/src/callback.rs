//! `StatusCallback`: the URL a client asks delivery status changes to be POSTed to. Only its
//! shape is checked here (http or https, a host, bounded length); whether its address may be
//! reached is decided when it is called, after resolving it (the dispatcher's SSRF rules).

/// The longest callback URL accepted.
pub const MAX_LEN: usize = 2_048;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCallback(String);

impl StatusCallback {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if text.len() > MAX_LEN {
            return Err("longer than 2048 characters");
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains whitespace or control characters");
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err("not an absolute URL");
        };
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err("not an http or https URL");
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err("credentials in the URL are not allowed");
        }
        let host = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(authority, |(host, _)| host);
        if host.is_empty() || host == "[" {
            return Err("the URL has no host");
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_with_a_host_are_accepted() {
        for ok in [
            "https://example.com/hooks/sms",
            "http://example.com:8080/cb?x=1",
            "https://[2001:db8::1]:443/cb",
        ] {
            assert_eq!(StatusCallback::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "example.com/cb",
            "ftp://example.com/",
            "https:///nohost",
            "https://user:pw@example.com/",
            "https://exa mple.com/",
            &format!("https://example.com/{}", "a".repeat(MAX_LEN)),
        ] {
            assert!(StatusCallback::parse(bad).is_err(), "{bad}");
        }
    }
}
