//! Message bodies: what may be sent, and how many SMS segments it costs. GSM-7 text fits 160
//! characters in one SMS (153 per part when split); anything else is sent as UCS-2, 70 UTF-16
//! units in one SMS (67 per part).

/// The longest message accepted, in characters: ten concatenated GSM-7 parts, as carriers allow.
pub const MAX_CHARS: usize = 1_600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    text: String,
    segments: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is {0} characters long; at most {MAX_CHARS} are allowed")]
    TooLong(usize),
}

impl Message {
    pub fn parse(text: String) -> Result<Self, MessageError> {
        if text.trim().is_empty() {
            return Err(MessageError::Empty);
        }
        let chars = text.chars().count();
        if chars > MAX_CHARS {
            return Err(MessageError::TooLong(chars));
        }
        let segments = segments(&text);
        Ok(Self { text, segments })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> u32 {
        self.segments
    }
}

/// The GSM 03.38 basic character set (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table (an escape plus one septet: two each).
const GSM7_EXTENDED: &str = "^{}\\[~]|€\u{000C}";

/// Number of SMS segments `text` needs.
pub fn segments(text: &str) -> u32 {
    let septets: Option<usize> = text
        .chars()
        .map(|c| {
            if GSM7_BASIC.contains(c) {
                Some(1)
            } else if GSM7_EXTENDED.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (units, single, part) = match septets {
        Some(septets) => (septets, 160, 153),
        None => (text.encode_utf16().count(), 70, 67),
    };
    let count = if units <= single {
        1
    } else {
        units.div_ceil(part)
    };
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_text_fits_160_then_153_per_part() {
        assert_eq!(segments("hello"), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        // Extension characters take two septets.
        assert_eq!(segments(&"€".repeat(80)), 1);
        assert_eq!(segments(&"€".repeat(81)), 2);
        assert_eq!(segments("Grüße? ¿Qué tal? Ça va"), 1);
    }

    #[test]
    fn anything_else_is_ucs2_70_then_67_per_part() {
        assert_eq!(segments(&"✓".repeat(70)), 1);
        assert_eq!(segments(&"✓".repeat(71)), 2);
        assert_eq!(segments(&"✓".repeat(134)), 2);
        assert_eq!(segments(&"✓".repeat(135)), 3);
        // An emoji is two UTF-16 units.
        assert_eq!(segments(&"😀".repeat(35)), 1);
        assert_eq!(segments(&"😀".repeat(36)), 2);
    }

    #[test]
    fn empty_and_over_long_messages_are_refused() {
        assert_eq!(Message::parse(String::new()), Err(MessageError::Empty));
        assert_eq!(Message::parse("  \n ".into()), Err(MessageError::Empty));
        assert_eq!(
            Message::parse("x".repeat(MAX_CHARS + 1)),
            Err(MessageError::TooLong(MAX_CHARS + 1))
        );
        let longest = Message::parse("x".repeat(MAX_CHARS)).unwrap();
        assert_eq!(longest.segments(), 11);
    }
}
