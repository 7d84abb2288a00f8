//! What of an SMS body is kept (`SMSGATE_STORE_MESSAGE`), and in what form.
//!
//! Most SMS through a gateway are one-time codes, so the body that everything downstream keeps
//! (the event on the stream, the live lists, the archive, replay) is a chosen form of it, not
//! the body itself. The body the dispatcher needs travels apart: the decision script writes it
//! to its own key beside the stream ([`crate::Layout::body`]), and the dispatcher takes it from
//! there and drops it once the message is handed over. Refused requests (rejected, blocked)
//! are never delivered, so their events keep at most a short redacted preview, whatever the
//! setting: a flood of 429s then costs Redis a bounded number of bytes per request.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A run of this many digits or more is a code (or an account, a card, a PIN) and is redacted.
pub const REDACT_RUN: usize = 4;

/// What a redacted digit becomes: one bullet per digit, so the shape of the text stays readable.
pub const REDACTED_DIGIT: char = '•';

/// The most characters of the redacted form a refused request's event keeps.
pub const PREVIEW_CHARS: usize = 40;

/// The operator's setting: how accepted messages are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StoreMessage {
    /// The body as sent.
    Full,
    /// Runs of [`REDACT_RUN`] or more digits replaced by [`REDACTED_DIGIT`], one per digit.
    #[default]
    Redacted,
    /// No body at all; the segment count stays.
    None,
}

impl StoreMessage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Redacted => "redacted",
            Self::None => "none",
        }
    }

    /// The form an accepted message is kept in.
    pub fn accepted(self) -> StoredForm {
        match self {
            Self::Full => StoredForm::Full,
            Self::Redacted => StoredForm::Redacted,
            Self::None => StoredForm::None,
        }
    }

    /// The form a refused (rejected or blocked) request is kept in: never more than a preview.
    pub fn refused(self) -> StoredForm {
        match self {
            Self::Full | Self::Redacted => StoredForm::Preview,
            Self::None => StoredForm::None,
        }
    }
}

impl fmt::Display for StoreMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a message storage setting (full, redacted or none)")]
pub struct StoreMessageError(String);

impl FromStr for StoreMessage {
    type Err = StoreMessageError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "redacted" => Ok(Self::Redacted),
            "none" => Ok(Self::None),
            _ => Err(StoreMessageError(text.to_owned())),
        }
    }
}

/// The form an event's `message` field is in, recorded on the event itself so every reader
/// knows what it holds (events written before this field existed hold the full body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = MessageStored)]
pub enum StoredForm {
    Full,
    Redacted,
    /// The redacted form cut to [`PREVIEW_CHARS`] characters (with `…` when cut).
    Preview,
    /// Empty.
    None,
}

impl StoredForm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Redacted => "redacted",
            Self::Preview => "preview",
            Self::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Full, Self::Redacted, Self::Preview, Self::None]
            .into_iter()
            .find(|f| f.as_str() == text)
    }

    /// `body` in this form.
    pub fn apply(self, body: &str) -> Cow<'_, str> {
        match self {
            Self::Full => Cow::Borrowed(body),
            Self::Redacted => Cow::Owned(redact(body)),
            Self::Preview => Cow::Owned(preview(&redact(body))),
            Self::None => Cow::Borrowed(""),
        }
    }
}

/// `text` with every run of [`REDACT_RUN`] or more digits replaced by one [`REDACTED_DIGIT`]
/// per digit. Any decimal digit counts (`char::is_numeric`), so codes written in other scripts
/// (`٤٩٣٨١٧`) are redacted too; shorter runs (times, small amounts) stay readable.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The digits seen since the last other character: where they start, and how many.
    let mut run: Option<(usize, usize)> = None;
    let flush = |digits: &str, count: usize, out: &mut String| {
        if count >= REDACT_RUN {
            out.extend(std::iter::repeat_n(REDACTED_DIGIT, count));
        } else {
            out.push_str(digits);
        }
    };
    for (at, c) in text.char_indices() {
        if c.is_numeric() {
            let (start, count) = run.unwrap_or((at, 0));
            run = Some((start, count + 1));
            continue;
        }
        if let Some((start, count)) = run.take() {
            flush(&text[start..at], count, &mut out);
        }
        out.push(c);
    }
    if let Some((start, count)) = run {
        flush(&text[start..], count, &mut out);
    }
    out
}

/// The first [`PREVIEW_CHARS`] characters of `text`, with `…` when it was longer.
fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_four_or_more_digits_are_redacted_one_bullet_per_digit() {
        assert_eq!(redact("Your code is 493817"), "Your code is ••••••");
        assert_eq!(redact("4938"), "••••");
        assert_eq!(redact("at 10:45, 3 tries, €120"), "at 10:45, 3 tries, €120");
        assert_eq!(
            redact("PIN 1234 / ref 99 / 12345678901"),
            "PIN •••• / ref 99 / •••••••••••"
        );
        assert_eq!(redact("код ٤٩٣٨١٧"), "код ••••••");
        assert_eq!(redact(""), "");
    }

    #[test]
    fn refused_requests_never_keep_more_than_a_redacted_preview() {
        let long = format!("Your code is 493817. {}", "x".repeat(2000));
        for setting in [StoreMessage::Full, StoreMessage::Redacted] {
            let kept = setting.refused().apply(&long);
            assert!(!kept.contains("493817"), "{setting}: {kept}");
            assert_eq!(kept.chars().count(), PREVIEW_CHARS + 1);
            assert!(kept.starts_with("Your code is ••••••. xx") && kept.ends_with('…'));
        }
        assert_eq!(StoreMessage::None.refused().apply(&long), "");
        assert_eq!(StoredForm::Preview.apply("short 1234"), "short ••••");
    }

    #[test]
    fn settings_parse_and_name_the_accepted_form() {
        assert_eq!("FULL".parse::<StoreMessage>().unwrap(), StoreMessage::Full);
        assert_eq!(
            " none ".parse::<StoreMessage>().unwrap(),
            StoreMessage::None
        );
        assert_eq!(StoreMessage::default(), StoreMessage::Redacted);
        assert!("partial".parse::<StoreMessage>().is_err());
        assert_eq!(
            StoreMessage::Full.accepted().apply("code 493817"),
            "code 493817"
        );
        assert_eq!(
            StoreMessage::Redacted.accepted().apply("code 493817"),
            "code ••••••"
        );
        assert_eq!(StoreMessage::None.accepted().apply("code 493817"), "");
    }
}
