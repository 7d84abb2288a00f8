//! `SMPP_URL`: `smpp://system_id:password@host:port?system_type=…`, the SMSC and the account
//! an ESME binds with. The user and password are percent-decoded, so any password fits.

use url::Url;

/// Where to connect and what to bind with.
#[derive(Clone, PartialEq, Eq)]
pub struct SmppUrl {
    pub host: String,
    pub port: u16,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
}

/// SMPP's registered port.
pub const DEFAULT_PORT: u16 = 2775;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("SMPP_URL is not a URL: {0}")]
    Syntax(String),
    #[error("SMPP_URL must start with smpp:// (got {0}://)")]
    Scheme(String),
    #[error("SMPP_URL has no host")]
    NoHost,
    #[error("SMPP_URL has no system_id (smpp://system_id:password@host:port)")]
    NoSystemId,
    #[error("SMPP_URL's {field} is {len} characters; SMPP allows at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
}

impl SmppUrl {
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let url = Url::parse(text).map_err(|e| UrlError::Syntax(e.to_string()))?;
        if url.scheme() != "smpp" {
            return Err(UrlError::Scheme(url.scheme().to_owned()));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(UrlError::NoHost)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            percent_decode(s).map_err(|_| UrlError::Syntax("bad percent-encoding".into()))
        };
        let system_id = decode(url.username())?;
        if system_id.is_empty() {
            return Err(UrlError::NoSystemId);
        }
        let password = decode(url.password().unwrap_or(""))?;
        let system_type = url
            .query_pairs()
            .find(|(k, _)| k == "system_type")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        // SMPP 3.4 §4.1.1: the C-Octet Strings' limits, terminating NUL included.
        for (field, value, max) in [
            ("system_id", &system_id, 15),
            ("password", &password, 8),
            ("system_type", &system_type, 12),
        ] {
            if value.chars().count() > max {
                return Err(UrlError::TooLong {
                    field,
                    len: value.chars().count(),
                    max,
                });
            }
        }
        Ok(Self {
            host,
            port: url.port().unwrap_or(DEFAULT_PORT),
            system_id,
            password,
            system_type,
        })
    }

    /// `host:port`, for connecting.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Never prints the password.
impl std::fmt::Debug for SmppUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmppUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("system_id", &self.system_id)
            .field("system_type", &self.system_type)
            .finish_non_exhaustive()
    }
}

fn percent_decode(text: &str) -> Result<String, std::str::Utf8Error> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_account_host_port_and_system_type_come_from_the_url() {
        let url = SmppUrl::parse("smpp://smsgate:s%40cret@smsc.example.net:2776?system_type=OTA")
            .unwrap();
        assert_eq!(url.system_id, "smsgate");
        assert_eq!(url.password, "s@cret");
        assert_eq!(url.system_type, "OTA");
        assert_eq!(url.address(), "smsc.example.net:2776");
        assert!(!format!("{url:?}").contains("s@cret"));

        let plain = SmppUrl::parse("smpp://esme@127.0.0.1").unwrap();
        assert_eq!(plain.port, DEFAULT_PORT);
        assert_eq!(plain.password, "");
        assert_eq!(plain.system_type, "");
    }

    #[test]
    fn urls_an_smsc_would_refuse_are_refused_here() {
        assert!(matches!(
            SmppUrl::parse("http://a:b@host"),
            Err(UrlError::Scheme(_))
        ));
        assert_eq!(
            SmppUrl::parse("smpp://host:2775"),
            Err(UrlError::NoSystemId)
        );
        assert!(matches!(
            SmppUrl::parse("smpp://id:muchtoolongpassword@host"),
            Err(UrlError::TooLong {
                field: "password",
                ..
            })
        ));
        assert!(matches!(
            SmppUrl::parse("not a url"),
            Err(UrlError::Syntax(_))
        ));
    }
}
