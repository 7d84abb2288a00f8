//! Message bodies: what may be sent, and how many SMS segments it costs. GSM-7 text fits 160
//! characters in one SMS (153 per part when split); anything else is sent as UCS-2, 70 UTF-16
//! units in one SMS (67 per part). The count is `limiter::segments`, the same split the `smpp`
//! provider submits.

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

/// Number of SMS segments `text` needs: the parts the `smpp` provider submits it as
/// (`limiter::segments`, one implementation for both).
pub fn segments(text: &str) -> u32 {
    limiter::segments::segments(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_the_parts_a_provider_sends() {
        // The split itself is tested in `limiter::segments`.
        let long = Message::parse("a".repeat(161)).unwrap();
        assert_eq!(long.segments(), 2);
        assert_eq!(Message::parse("✓".repeat(70)).unwrap().segments(), 1);
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
