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
    #[error("{0}")]
    Control(ControlCharacter),
}

/// A control character where text is expected: newline and tab are text, every other C0 or C1
/// control (NUL, carriage return, escape, …) is refused, so nothing downstream (the archive,
/// a terminal, a log line, the provider) meets a byte it may choke on or be steered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("contains the control character U+{:04X} at character {position}; only newline and tab are allowed", u32::from(*.character))]
pub struct ControlCharacter {
    pub character: char,
    /// Counted in characters from 0.
    pub position: usize,
}

/// The first control character of `text` other than newline and tab.
pub fn find_control(text: &str) -> Option<ControlCharacter> {
    text.chars()
        .enumerate()
        .find(|&(_, c)| c.is_control() && c != '\n' && c != '\t')
        .map(|(position, character)| ControlCharacter {
            character,
            position,
        })
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
        if let Some(control) = find_control(&text) {
            return Err(MessageError::Control(control));
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

    #[test]
    fn control_characters_other_than_newline_and_tab_are_refused() {
        assert!(Message::parse("line one\nline two\tand a tab".into()).is_ok());
        for (text, code, position) in [
            ("nul\u{0}here", 0x00, 3),
            ("cr\r\n", 0x0D, 2),
            ("\u{1b}[31mred", 0x1B, 0),
            ("del\u{7f}", 0x7F, 3),
            ("c1 \u{85}", 0x85, 3),
            ("form\u{c}feed", 0x0C, 4),
        ] {
            match Message::parse(text.into()) {
                Err(MessageError::Control(c)) => {
                    assert_eq!(
                        (u32::from(c.character), c.position),
                        (code, position),
                        "{text:?}"
                    );
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let detail = Message::parse("a\u{0}".into()).unwrap_err().to_string();
        assert!(detail.contains("U+0000"), "{detail}");
    }
}
