//! `RateLimit-Policy` and `RateLimit` response headers, as structured-field lists with one
//! item per window (draft-ietf-httpapi-ratelimit-headers-09):
//!
//! ```text
//! RateLimit-Policy: "1m";q=3;w=60, "1d";q=10;w=86400
//! RateLimit: "1m";r=2;t=60, "1d";r=9;t=86400
//! ```

use std::fmt::Write as _;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use limiter::WindowState;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Quota (`q`) and window length in seconds (`w`) of every window.
pub fn policy_header(windows: &[WindowState]) -> String {
    list(windows, |out, w| {
        write!(out, "q={};w={}", w.limit, w.window_secs)
    })
}

/// Remaining quota (`r`) and seconds until it grows again (`t`) of every window.
pub fn state_header(windows: &[WindowState]) -> String {
    list(windows, |out, w| {
        write!(out, "r={};t={}", w.remaining, w.reset_after)
    })
}

/// One `"name";params` item per window, written into one string.
fn list(
    windows: &[WindowState],
    params: impl Fn(&mut String, &WindowState) -> std::fmt::Result,
) -> String {
    let mut out = String::with_capacity(32 * windows.len());
    for (i, w) in windows.iter().enumerate() {
        let separator = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{separator}\"{}\";", w.name);
        let _ = params(&mut out, w);
    }
    out
}

pub fn insert(headers: &mut HeaderMap, windows: &[WindowState]) {
    for (name, value) in [
        (RATELIMIT_POLICY, policy_header(windows)),
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
