//! `RateLimit-Policy` and `RateLimit` response headers, as structured-field lists with one
//! item per window (draft-ietf-httpapi-ratelimit-headers-09):
//!
//! ```text
//! RateLimit-Policy: "1m";q=3;w=60, "1d";q=10;w=86400
//! RateLimit: "1m";r=2;t=60, "1d";r=9;t=86400
//! ```

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use limiter::WindowState;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Quota (`q`) and window length in seconds (`w`) of every window.
pub fn policy_header<'a>(windows: impl IntoIterator<Item = &'a WindowState>) -> String {
    list(windows, |w| {
        [("q", u64::from(w.limit)), ("w", w.window_secs)]
    })
}

/// Remaining quota (`r`) and seconds until it grows again (`t`) of every window.
pub fn state_header<'a>(windows: impl IntoIterator<Item = &'a WindowState>) -> String {
    list(windows, |w| {
        [("r", u64::from(w.remaining)), ("t", w.reset_after)]
    })
}

/// One `"name";a=1;b=2` item per window, written into one string (on every response, so the
/// integers go through itoa rather than the formatting machinery).
fn list<'a>(
    windows: impl IntoIterator<Item = &'a WindowState>,
    params: impl Fn(&WindowState) -> [(&str, u64); 2],
) -> String {
    // Room for a few windows of rules with long names: growing the string costs more than this.
    let mut out = String::with_capacity(192);
    let mut digits = itoa::Buffer::new();
    for (i, w) in windows.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('"');
        out.push_str(&w.name);
        out.push('"');
        for (name, value) in params(w) {
            out.push(';');
            out.push_str(name);
            out.push('=');
            out.push_str(digits.format(value));
        }
    }
    out
}

/// Both headers for `windows` (walked once per header, so no list of them is made).
pub fn insert<'a>(
    headers: &mut HeaderMap,
    windows: impl IntoIterator<Item = &'a WindowState> + Clone,
) {
    for (name, value) in [
        (RATELIMIT_POLICY, policy_header(windows.clone())),
        (RATELIMIT, state_header(windows)),
    ] {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_item_per_window() {
        let windows = [
            WindowState {
                name: "1m".into(),
                rule: "client".into(),
                enforced: true,
                shadow_violated: false,
                limit: 3,
                window_secs: 60,
                remaining: 2,
                reset_after: 60,
                retry_after: 0,
            },
            WindowState {
                name: "1d".into(),
                rule: "client".into(),
                enforced: true,
                shadow_violated: false,
                limit: 10,
                window_secs: 86_400,
                remaining: 9,
                reset_after: 86_400,
                retry_after: 0,
            },
        ];
        assert_eq!(
            policy_header(&windows),
            r#""1m";q=3;w=60, "1d";q=10;w=86400"#
        );
        assert_eq!(state_header(&windows), r#""1m";r=2;t=60, "1d";r=9;t=86400"#);
    }
}
