//! The admin token as configured: kept in a secret type (never in `Debug` output or logs) and
//! judged once at start. An empty token, one shorter than [`MIN_CHARS`], or one of the example
//! values the project ships is no token at all: a deployment that copied an example file
//! unchanged must not believe it is protected.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The shortest token accepted: 16 characters, as `openssl rand -hex 8` gives at the least.
pub const MIN_CHARS: usize = 16;

/// The `SMSGATE_ADMIN_TOKEN` values of `.env.example`, `deploy/systemd/smsgate.env.example`
/// and the docs (a test reads those files, so a new example cannot slip past this list).
const SHIPPED_EXAMPLES: &[&str] = &["change-me-admin-token", "CHANGE-ME", "...", "…"];

/// Why a configured token is not taken as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WeakToken {
    #[error("SMSGATE_ADMIN_TOKEN is empty")]
    Empty,
    #[error("SMSGATE_ADMIN_TOKEN is an example value shipped with smsgate")]
    Placeholder,
    #[error(
        "SMSGATE_ADMIN_TOKEN is {0} characters long; at least {MIN_CHARS} are needed (`openssl rand -hex 32` makes one)"
    )]
    TooShort(usize),
}

/// The admin token in force, or none.
#[derive(Clone, Default)]
pub struct AdminToken(Option<SecretString>);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("AdminToken([REDACTED])"),
            None => f.write_str("AdminToken(None)"),
        }
    }
}

impl AdminToken {
    /// No token: the operator routes are open (only allowed on a private loopback bind).
    pub fn none() -> Self {
        Self(None)
    }

    /// The token to use for `configured`, or why it cannot be one.
    pub fn judge(configured: Option<&SecretString>) -> Result<Self, WeakToken> {
        let Some(secret) = configured else {
            return Ok(Self(None));
        };
        let text = secret.expose_secret();
        if text.trim().is_empty() {
            return Err(WeakToken::Empty);
        }
        if is_placeholder(text) {
            return Err(WeakToken::Placeholder);
        }
        let chars = text.chars().count();
        if chars < MIN_CHARS {
            return Err(WeakToken::TooShort(chars));
        }
        Ok(Self(Some(secret.clone())))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// True when a token is set and `presented` is it, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_ref().is_some_and(|secret| {
            bool::from(
                secret
                    .expose_secret()
                    .as_bytes()
                    .ct_eq(presented.as_bytes()),
            )
        })
    }

    /// A keyed digest of `data` under the token: session keys are derived with it, so a new
    /// token (rotation) finds none of the old sessions, and Redis never holds anything that
    /// opens the operator surface.
    pub fn sign(&self, data: &[u8]) -> Option<String> {
        let secret = self.0.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).ok()?;
        mac.update(data);
        Some(hex::encode(mac.finalize().into_bytes()))
    }
}

/// The shipped examples, and anything that says it is to be changed.
fn is_placeholder(text: &str) -> bool {
    let folded: String = text
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SHIPPED_EXAMPLES
        .iter()
        .any(|e| e.eq_ignore_ascii_case(text))
        || folded.contains("changeme")
        || folded.contains("replaceme")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(text: &str) -> Result<AdminToken, WeakToken> {
        AdminToken::judge(Some(&SecretString::from(text)))
    }

    /// The `SMSGATE_ADMIN_TOKEN=` value of a shipped example file.
    fn example_value(path: &str) -> String {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        let text = std::fs::read_to_string(&file).expect("the example file exists");
        text.lines()
            .find_map(|l| l.strip_prefix("SMSGATE_ADMIN_TOKEN="))
            .expect("the example sets SMSGATE_ADMIN_TOKEN")
            .trim()
            .to_owned()
    }

    #[test]
    fn empty_short_and_placeholder_tokens_are_no_token() {
        assert_eq!(judge("").err(), Some(WeakToken::Empty));
        assert_eq!(judge("   ").err(), Some(WeakToken::Empty));
        assert_eq!(judge("s3cret").err(), Some(WeakToken::TooShort(6)));
        assert_eq!(
            judge("fifteen-chars-x").err(),
            Some(WeakToken::TooShort(15))
        );
        assert_eq!(
            judge("please-CHANGE_ME-now-0123456789").err(),
            Some(WeakToken::Placeholder)
        );
        for example in [".env.example", "deploy/systemd/smsgate.env.example"] {
            let value = example_value(example);
            assert!(judge(&value).is_err(), "{example}: `{value}` is accepted");
        }
        assert!(judge("0123456789abcdef").unwrap().is_set());
        assert!(!AdminToken::judge(None).unwrap().is_set());
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let token = judge("a-real-token-0123456789").unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains("a-real-token"), "{shown}");
        assert!(token.matches("a-real-token-0123456789"));
        assert!(!token.matches("a-real-token-012345678"));
        assert!(!token.matches(""));
        assert!(!AdminToken::none().matches(""));
    }

    #[test]
    fn signatures_depend_on_the_token() {
        let a = judge("token-number-one-0001").unwrap();
        let b = judge("token-number-two-0002").unwrap();
        assert_eq!(a.sign(b"x"), a.sign(b"x"));
        assert_ne!(a.sign(b"x"), b.sign(b"x"));
        assert_eq!(AdminToken::none().sign(b"x"), None);
    }
}
