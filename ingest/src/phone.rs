//! Destination numbers. Parsing with libphonenumber's metadata and printing E.164 makes every
//! spelling of a number (`+1 (415) 555-0123`, `+1.415.555.0123`, …) the same client key, so
//! formatting tricks cannot dodge the limit.

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

/// A valid phone number in E.164 form, e.g. `+14155550123`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("a phone number in international format is required, e.g. +14155550123")]
    NotInternational,
    #[error("this is not a phone number")]
    Unparsable,
    #[error("this number has no known country code or the wrong length for its country")]
    Invalid,
}

/// Parsed numbers by their input text. Parsing with libphonenumber costs ~10 µs, a tenth of the
/// API's CPU per request, and senders repeat numbers; the result is a pure function of the text,
/// so it is memoised, and the memo is simply emptied when it fills.
static PARSED: LazyLock<Mutex<HashMap<String, Result<PhoneNumber, PhoneError>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const PARSED_CAPACITY: usize = 100_000;

/// The longest input read as a number. E.164 has at most 15 digits; this leaves room for every
/// usual spelling, and refuses the rest before libphonenumber, which takes seconds of CPU on a
/// 16 KB run of digits, ever sees it (nor the memo keeps it).
pub const MAX_INPUT_BYTES: usize = 64;

impl PhoneNumber {
    pub fn parse(text: &str) -> Result<Self, PhoneError> {
        let text = text.trim();
        if text.len() > MAX_INPUT_BYTES {
            return Err(PhoneError::Unparsable);
        }
        if let Some(known) = PARSED.lock().ok().and_then(|memo| memo.get(text).cloned()) {
            return known;
        }
        let parsed = Self::parse_uncached(text);
        if let Ok(mut memo) = PARSED.lock() {
            if memo.len() >= PARSED_CAPACITY {
                memo.clear();
            }
            memo.insert(text.to_owned(), parsed.clone());
        }
        parsed
    }

    fn parse_uncached(text: &str) -> Result<Self, PhoneError> {
        if !text.starts_with('+') {
            return Err(PhoneError::NotInternational);
        }
        // libphonenumber tolerates letters (vanity numbers) and extensions; an SMS destination
        // has neither, so only digits and the usual separators get through.
        if !text[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
        {
            return Err(PhoneError::Unparsable);
        }
        let number = phonenumber::parse(None, text).map_err(|_| PhoneError::Unparsable)?;
        if !is_possible(&number) {
            return Err(PhoneError::Invalid);
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A number of a known country with a length that country's numbers have. This is
/// libphonenumber's "possible number" test, not its stricter "valid" one: that one refuses
/// reserved ranges such as the fictional 555-01XX numbers, which operators use for tests and
/// carriers, not this gateway, are the judge of.
fn is_possible(number: &phonenumber::PhoneNumber) -> bool {
    let Ok(length) = u16::try_from(number.national().to_string().len()) else {
        return false;
    };
    let regions = phonenumber::metadata::DATABASE
        .by_code(&number.code().value())
        .unwrap_or_default();
    regions.into_iter().any(|meta| {
        let d = meta.descriptors();
        // Lengths are listed per number type; the general descriptor may leave them out.
        [
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.voip(),
            d.personal_number(),
        ]
        .into_iter()
        .flatten()
        .chain(std::iter::once(d.general()))
        .any(|desc| desc.possible_length().contains(&length))
    })
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_number_is_refused_before_libphonenumber_reads_it() {
        // Before the bound this took 3.5 s of CPU in a debug build, per distinct input.
        let huge = format!("+1{}", "5".repeat(16 * 1024 - 2));
        let started = std::time::Instant::now();
        assert_eq!(PhoneNumber::parse(&huge), Err(PhoneError::Unparsable));
        assert!(started.elapsed() < std::time::Duration::from_millis(250));
    }

    #[test]
    fn every_spelling_of_a_number_normalises_to_one_e164() {
        for spelling in [
            "+14155550123",
            "+1 (415) 555-0123",
            "+1 415 555 0123",
            "+1.415.555.0123",
            "+1-415-555-0123",
            " +1 415-555.0123 ",
        ] {
            assert_eq!(
                PhoneNumber::parse(spelling).unwrap().as_str(),
                "+14155550123",
                "{spelling}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("+44 7700 900123").unwrap().as_str(),
            "+447700900123"
        );
    }

    #[test]
    fn non_numbers_and_invalid_numbers_are_refused() {
        assert_eq!(
            PhoneNumber::parse("4155550123"),
            Err(PhoneError::NotInternational)
        );
        assert_eq!(PhoneNumber::parse(""), Err(PhoneError::NotInternational));
        assert_eq!(
            PhoneNumber::parse("+1-800-FLOWERS"),
            Err(PhoneError::Unparsable)
        );
        assert_eq!(
            PhoneNumber::parse("+1 415 555 0123 ext. 7"),
            Err(PhoneError::Unparsable)
        );
        assert!(PhoneNumber::parse("+12").is_err());
        assert!(PhoneNumber::parse("+999 1234 5678").is_err());
        assert_eq!(
            PhoneNumber::parse("+1 415 555 01"),
            Err(PhoneError::Invalid)
        );
        assert_eq!(
            PhoneNumber::parse("+1 415 555 012345"),
            Err(PhoneError::Invalid)
        );
    }
}
