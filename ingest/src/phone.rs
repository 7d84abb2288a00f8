//! Destination numbers. Parsing with libphonenumber's metadata and printing E.164 makes every
//! spelling of a number (`+1 (415) 555-0123`, `+1.415.555.0123`, …) the same client key, so
//! formatting tricks cannot dodge the limit. Numbers must be *valid* for their country
//! (libphonenumber's `is_valid`, not only a possible length): a spelling with extra trunk zeros
//! (`+49 000 30 1234567`) is refused rather than counted as a fresh number. Reserved ranges
//! (e.g. the fictional 555-01XX) pass only when the operator lists their prefix as test numbers
//! (`SMSGATE_TEST_NUMBERS`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

use rlibphonenumber::{NumberLengthType, PHONE_NUMBER_UTIL, PhoneNumberFormat, PhoneNumberType};

/// A valid phone number in E.164 form, e.g. `+14155550123`, with what the policy needs to know
/// about its destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    /// ISO 3166 alpha-2 of the number's region, when libphonenumber knows it.
    country: Option<String>,
    /// libphonenumber's number type, by the policy's names (`mobile`, `premium_rate`, …).
    number_type: &'static str,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("a phone number in international format is required, e.g. +14155550123")]
    NotInternational,
    #[error("this is not a phone number")]
    Unparsable,
    #[error("this number has no known country code or the wrong length for its country")]
    Invalid,
    #[error("this number is not in use in its country (libphonenumber's validity)")]
    NotValid,
}

/// Prefixes of E.164 numbers accepted although not valid (fictional and test ranges), from
/// `SMSGATE_TEST_NUMBERS`, e.g. `+1555,+1415555`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestNumbers(Vec<String>);

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an E.164 prefix such as +1415555")]
pub struct TestNumbersError(String);

impl TestNumbers {
    /// A comma-separated list of `+` and digits; empty accepts no test numbers.
    pub fn parse(text: &str) -> Result<Self, TestNumbersError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let digits = s.strip_prefix('+').unwrap_or("");
                if !digits.is_empty()
                    && digits.len() <= 15
                    && digits.chars().all(|c| c.is_ascii_digit())
                {
                    Ok(s.to_owned())
                } else {
                    Err(TestNumbersError(s.to_owned()))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn covers(&self, e164: &str) -> bool {
        self.0.iter().any(|p| e164.starts_with(p.as_str()))
    }
}

/// Valid numbers by their input text. Parsing, validating and typing a number costs about 18k
/// instructions, a seventh of the API's per request, and senders repeat numbers; the result is a
/// pure function of the text, so it is memoised. Only valid numbers of short inputs enter (an
/// attacker's garbage is never kept), and the memo is bounded in bytes: it is emptied when it
/// would grow past the bound.
static PARSED: LazyLock<Mutex<Memo>> = LazyLock::new(|| Mutex::new(Memo::default()));
/// Longest input text memoised: a number with generous separators.
const MEMO_INPUT_BYTES: usize = 32;
/// Bound of the memo's keys and values together.
const MEMO_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Memo {
    entries: HashMap<String, PhoneNumber>,
    bytes: usize,
}

impl Memo {
    /// Input, E.164, country and a map slot's overhead.
    fn cost(text: &str, number: &PhoneNumber) -> usize {
        text.len() + number.e164.len() + 2 + 64
    }

    fn insert(&mut self, text: &str, number: PhoneNumber) {
        let cost = Self::cost(text, &number);
        if self.bytes + cost > MEMO_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        if self.entries.insert(text.to_owned(), number).is_none() {
            self.bytes += cost;
        }
    }
}

/// The longest input read as a number. E.164 has at most 15 digits; this leaves room for every
/// usual spelling, and refuses the rest before libphonenumber, which takes seconds of CPU on a
/// 16 KB run of digits, ever sees it (nor the memo keeps it).
pub const MAX_INPUT_BYTES: usize = 64;

impl PhoneNumber {
    /// Parses a valid number; with no test numbers.
    pub fn parse(text: &str) -> Result<Self, PhoneError> {
        Self::parse_with(text, &TestNumbers::default())
    }

    /// Parses a valid number, or a possible one under one of `test` prefixes.
    pub fn parse_with(text: &str, test: &TestNumbers) -> Result<Self, PhoneError> {
        let text = text.trim();
        if text.len() > MAX_INPUT_BYTES {
            return Err(PhoneError::Unparsable);
        }
        let memoisable = text.len() <= MEMO_INPUT_BYTES;
        if memoisable
            && let Some(known) = PARSED
                .lock()
                .ok()
                .and_then(|memo| memo.entries.get(text).cloned())
        {
            return Ok(known);
        }
        let (number, valid) = Self::parse_uncached(text)?;
        if valid {
            if memoisable && let Ok(mut memo) = PARSED.lock() {
                memo.insert(text, number.clone());
            }
            return Ok(number);
        }
        if test.covers(&number.e164) {
            Ok(number)
        } else {
            Err(PhoneError::NotValid)
        }
    }

    /// The number if it is at least possible, and whether it is valid.
    fn parse_uncached(text: &str) -> Result<(Self, bool), PhoneError> {
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
        let number =
            rlibphonenumber::PhoneNumber::parse(text, None).map_err(|_| PhoneError::Unparsable)?;
        if number.is_possible_with_reason() != Ok(NumberLengthType::IsPossible) {
            return Err(PhoneError::Invalid);
        }
        let e164 = number.format_as(PhoneNumberFormat::E164).into_owned();
        // libphonenumber drops leading zeros it reads as a trunk prefix; a number whose E.164
        // lost digits that way was spelled with extra zeros and is another spelling, not
        // another number, so only the canonical spelling is valid.
        let digits = text.bytes().filter(u8::is_ascii_digit);
        if !digits.eq(e164[1..].bytes()) {
            return Err(PhoneError::NotValid);
        }
        // Valid means of a known type, as libphonenumber's `isValidNumber` decides it: one
        // walk of the metadata answers both.
        let kind = number.get_type();
        let valid = kind != PhoneNumberType::Unknown;
        // A number of no known region (one that is not valid, or of a calling code shared by
        // several regions whose ranges it matches none of) belongs to the calling code's main
        // region; non-geographic codes (+800, +882, …) have none.
        let country = number
            .get_region_code()
            .or_else(|| PHONE_NUMBER_UTIL.get_region_for_country_code(number.country_code))
            .map(|region| region.to_string());
        let number_type = type_name(kind);
        Ok((
            Self {
                e164,
                country,
                number_type,
            },
            valid,
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.e164
    }

    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }

    pub fn number_type(&self) -> &'static str {
        self.number_type
    }
}

/// libphonenumber's type by the name a policy's `deny_number_types` uses
/// (`limiter::rules::NUMBER_TYPES`).
fn type_name(kind: PhoneNumberType) -> &'static str {
    match kind {
        PhoneNumberType::FixedLine => "fixed_line",
        PhoneNumberType::Mobile => "mobile",
        PhoneNumberType::FixedLineOrMobile => "fixed_line_or_mobile",
        PhoneNumberType::TollFree => "toll_free",
        PhoneNumberType::PremiumRate => "premium_rate",
        PhoneNumberType::SharedCost => "shared_cost",
        PhoneNumberType::PersonalNumber => "personal_number",
        PhoneNumberType::VoIP => "voip",
        PhoneNumberType::Pager => "pager",
        PhoneNumberType::UAN => "uan",
        PhoneNumberType::VoiceMail => "voicemail",
        PhoneNumberType::Unknown => "unknown",
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy may deny exactly the types a number can have: a name no number answers to
    /// would refuse nothing, silently.
    #[test]
    fn a_policy_names_exactly_the_types_a_number_can_have() {
        use PhoneNumberType::*;
        let kinds = [
            FixedLine,
            Mobile,
            FixedLineOrMobile,
            TollFree,
            PremiumRate,
            SharedCost,
            PersonalNumber,
            VoIP,
            Pager,
            UAN,
            VoiceMail,
            Unknown,
        ];
        let mut ours: Vec<&str> = kinds.into_iter().map(type_name).collect();
        let mut policy = limiter::rules::NUMBER_TYPES.to_vec();
        ours.sort_unstable();
        policy.sort_unstable();
        assert_eq!(ours, policy);
    }

    fn fictional() -> TestNumbers {
        TestNumbers::parse("+1555").unwrap()
    }

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
                PhoneNumber::parse_with(spelling, &fictional())
                    .unwrap()
                    .as_str(),
                "+14155550123",
                "{spelling}"
            );
        }
        let uk = PhoneNumber::parse("+44 7400 123456").unwrap();
        assert_eq!(uk.as_str(), "+447400123456");
        assert_eq!((uk.country(), uk.number_type()), (Some("GB"), "mobile"));
    }

    #[test]
    fn fictional_ranges_need_to_be_listed_as_test_numbers() {
        // Ofcom's drama range and the unassigned NANP area code 555 are not valid numbers.
        assert_eq!(
            PhoneNumber::parse("+44 7700 900123"),
            Err(PhoneError::NotValid)
        );
        assert_eq!(
            PhoneNumber::parse("+1 555 555 0100"),
            Err(PhoneError::NotValid)
        );
        let drama = TestNumbers::parse("+447700900, +1555").unwrap();
        let n = PhoneNumber::parse_with("+44 7700 900123", &drama).unwrap();
        assert_eq!((n.as_str(), n.country()), ("+447700900123", Some("GB")));
        assert_eq!(
            PhoneNumber::parse_with("+1 555 555 0100", &drama)
                .unwrap()
                .country(),
            Some("US")
        );
        // 555-01XX in a real area code is valid in libphonenumber's metadata.
        assert!(PhoneNumber::parse("+1 415 555 0123").is_ok());
        assert!(TestNumbers::parse("1415").is_err());
        assert!(TestNumbers::parse("+14a").is_err());
    }

    #[test]
    fn extra_trunk_zeros_are_not_another_number() {
        assert_eq!(
            PhoneNumber::parse("+49 30 1234567").unwrap().as_str(),
            "+49301234567"
        );
        for spelling in [
            "+49 000 30 1234567",
            "+49 0000 30 1234567",
            "+49 030 1234567",
        ] {
            assert!(PhoneNumber::parse(spelling).is_err(), "{spelling}");
            let all_of_germany = TestNumbers::parse("+49").unwrap();
            assert!(
                PhoneNumber::parse_with(spelling, &all_of_germany).is_err(),
                "{spelling}"
            );
        }
    }

    #[test]
    fn number_types_come_from_the_metadata() {
        let premium = PhoneNumber::parse("+1 900 555 0100").unwrap();
        assert_eq!(premium.number_type(), "premium_rate");
        assert_eq!(
            PhoneNumber::parse("+1 800 555 0100").unwrap().number_type(),
            "toll_free"
        );
    }

    #[test]
    fn the_memo_keeps_only_valid_short_inputs_within_its_byte_bound() {
        let padded = format!("+44{}7400123457", "-".repeat(40));
        PhoneNumber::parse(&padded).unwrap();
        let _ = PhoneNumber::parse("+999 1234 5678");
        let memo = PARSED.lock().unwrap();
        assert!(
            !memo.entries.contains_key(padded.as_str()),
            "long inputs are not kept"
        );
        assert!(
            !memo.entries.contains_key("+999 1234 5678"),
            "invalid inputs are not kept"
        );
        assert!(memo.entries.keys().all(|k| k.len() <= MEMO_INPUT_BYTES));
        assert!(memo.bytes <= MEMO_BYTES);
        drop(memo);
        let mut small = Memo::default();
        let n = PhoneNumber::parse("+447400123456").unwrap();
        for i in 0..(MEMO_BYTES / 80 + 10) {
            small.insert(&format!("+44 7400 {i:06}"), n.clone());
        }
        assert!(small.bytes <= MEMO_BYTES);
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
            PhoneNumber::parse_with("+1 415 555 01", &fictional()),
            Err(PhoneError::Invalid)
        );
        assert_eq!(
            PhoneNumber::parse_with("+1 415 555 012345", &fictional()),
            Err(PhoneError::Invalid)
        );
    }
}
