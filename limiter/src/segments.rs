//! How a message body travels as SMS: GSM 03.38 septets when every character is in the GSM
//! default alphabet or its extension table, UCS-2 (UTF-16 big-endian) otherwise, and split into
//! concatenated parts when it does not fit one SMS.
//!
//! One implementation on purpose: the segment count `POST /api/sms` reports (and the policy
//! charges) is the number of parts the `smpp` provider submits, so both read [`encode`]. A part
//! never ends inside a GSM escape sequence or a UTF-16 surrogate pair, which handsets cannot
//! reassemble; that occasionally costs one part more than a plain division would say.

/// The alphabet a message is sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// GSM 03.38 default alphabet, one unpacked septet per octet (SMPP data_coding 0).
    Gsm7,
    /// UCS-2 as carriers use it: UTF-16 big-endian, so characters beyond the BMP (emoji) are
    /// surrogate pairs (SMPP data_coding 8).
    Ucs2,
}

impl Coding {
    /// The SMPP `data_coding` value.
    pub fn data_coding(self) -> u8 {
        match self {
            Self::Gsm7 => 0x00,
            Self::Ucs2 => 0x08,
        }
    }

    /// Octets of user data in one SMS on its own, and in each part of a concatenated one (after
    /// the 6-octet concatenation header: 153 septets or 67 UTF-16 units).
    fn capacity(self) -> (usize, usize) {
        match self {
            Self::Gsm7 => (160, 153),
            Self::Ucs2 => (140, 134),
        }
    }
}

/// A body encoded and split: the user data of each part, without any concatenation header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub coding: Coding,
    pub parts: Vec<Vec<u8>>,
}

/// The GSM 03.38 default alphabet in septet order; position 0x1B is the escape to the extension
/// table, never a character of its own.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const ESCAPE: u8 = 0x1B;
/// The extension table: each is the escape septet followed by this septet.
const GSM7_EXTENDED: [(char, u8); 10] = [
    ('\u{000C}', 0x0A),
    ('^', 0x14),
    ('{', 0x28),
    ('}', 0x29),
    ('\\', 0x2F),
    ('[', 0x3C),
    ('~', 0x3D),
    (']', 0x3E),
    ('|', 0x40),
    ('€', 0x65),
];

/// The septets of `c`: one for the default alphabet, two (escape first) for the extension table.
fn gsm7(c: char) -> Option<&'static [u8]> {
    const SEPTETS: [u8; 128] = {
        let mut all = [0u8; 128];
        let mut i = 0;
        while i < 128 {
            all[i] = i as u8;
            i += 1;
        }
        all
    };
    const EXTENDED: [[u8; 2]; 10] = {
        let mut all = [[0u8; 2]; 10];
        let mut i = 0;
        while i < 10 {
            all[i] = [ESCAPE, GSM7_EXTENDED[i].1];
            i += 1;
        }
        all
    };
    if c == '\u{1b}' {
        return None;
    }
    // Most text is ASCII: its septets come from a table, not a search of the alphabet.
    if let Some(&septet) = usize::try_from(u32::from(c))
        .ok()
        .and_then(|i| ASCII_SEPTETS.get(i))
    {
        if septet != NONE {
            let index = usize::from(septet);
            return Some(&SEPTETS[index..=index]);
        }
    } else if let Some(index) = GSM7_BASIC.chars().position(|b| b == c) {
        return Some(&SEPTETS[index..=index]);
    }
    GSM7_EXTENDED
        .iter()
        .position(|&(e, _)| e == c)
        .map(|i| &EXTENDED[i][..])
}

/// No septet of the default alphabet (the extension table may still have the character).
const NONE: u8 = 0xFF;

/// The default alphabet's septet of each ASCII character, or [`NONE`].
static ASCII_SEPTETS: std::sync::LazyLock<[u8; 128]> = std::sync::LazyLock::new(|| {
    let mut table = [NONE; 128];
    for (septet, c) in GSM7_BASIC.chars().enumerate() {
        if let (Ok(i), Ok(septet)) = (usize::try_from(u32::from(c)), u8::try_from(septet))
            && i < 128
            && c != '\u{1b}'
        {
            table[i] = septet;
        }
    }
    table
});

/// `text` as GSM 03.38 septets, one per octet, when every character has one.
fn gsm7_septets(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        out.extend_from_slice(gsm7(c)?);
    }
    Some(out)
}

/// `text` in the alphabet it is sent in.
fn coded(text: &str) -> (Coding, Vec<u8>) {
    match gsm7_septets(text) {
        Some(septets) => (Coding::Gsm7, septets),
        None => (
            Coding::Ucs2,
            text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        ),
    }
}

/// The parts `data` is sent as, in order: one when it fits a single SMS (even when empty).
fn split(coding: Coding, data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (single, part) = coding.capacity();
    let size = if data.len() <= single { single } else { part };
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let left = rest?;
        let mut end = size.min(left.len());
        if end < left.len() && !boundary(coding, left, end) {
            end -= match coding {
                Coding::Gsm7 => 1,
                Coding::Ucs2 => 2,
            };
        }
        let (head, tail) = left.split_at(end);
        rest = (!tail.is_empty()).then_some(tail);
        Some(head)
    })
}

/// Encodes `text` and splits it into the parts it is sent as.
pub fn encode(text: &str) -> Encoded {
    let (coding, data) = coded(text);
    Encoded {
        coding,
        parts: split(coding, &data).map(<[u8]>::to_vec).collect(),
    }
}

/// Whether a part may end before `data[end]`: not after an escape septet (whose character
/// follows it), not between the two halves of a surrogate pair.
fn boundary(coding: Coding, data: &[u8], end: usize) -> bool {
    match coding {
        Coding::Gsm7 => {
            // An escape septet followed by its character: count the run of escapes before
            // `end`, since an odd run means the last one is still waiting for its character.
            let escapes = data[..end]
                .iter()
                .rev()
                .take_while(|&&b| b == ESCAPE)
                .count();
            escapes % 2 == 0
        }
        Coding::Ucs2 => {
            let unit = u16::from_be_bytes([data[end - 2], data[end - 1]]);
            !(0xD800..0xDC00).contains(&unit)
        }
    }
}

/// Number of SMS segments `text` is sent as.
pub fn segments(text: &str) -> u32 {
    let (coding, data) = coded(text);
    u32::try_from(split(coding, &data).count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_table_agrees_with_the_alphabet() {
        for c in (0..0x3000).filter_map(char::from_u32) {
            let searched = GSM7_BASIC
                .chars()
                .position(|b| b == c && c != '\u{1b}')
                .map(|i| vec![u8::try_from(i).unwrap()])
                .or_else(|| {
                    GSM7_EXTENDED
                        .iter()
                        .find(|&&(e, _)| e == c)
                        .map(|&(_, septet)| vec![ESCAPE, septet])
                });
            assert_eq!(gsm7(c).map(<[u8]>::to_vec), searched, "{c:?}");
        }
    }

    #[test]
    fn gsm7_text_fits_160_then_153_per_part() {
        assert_eq!(segments("hello"), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        assert_eq!(segments(&"€".repeat(80)), 1);
        assert_eq!(segments(&"€".repeat(81)), 2);
        let encoded = encode("Grüße? ¿Qué tal? Ça va @ £5");
        assert_eq!(encoded.coding, Coding::Gsm7);
        assert_eq!(encoded.parts.len(), 1);
    }

    #[test]
    fn septets_follow_the_gsm_03_38_tables() {
        let encoded = encode("@£$¥ Ä€{");
        assert_eq!(
            encoded.parts[0],
            [0x00, 0x01, 0x02, 0x03, 0x20, 0x5B, 0x1B, 0x65, 0x1B, 0x28]
        );
        assert_eq!(encode("àÉ§").parts[0], [0x7F, 0x1F, 0x5F]);
    }

    #[test]
    fn an_escape_sequence_is_never_split_across_parts() {
        // 152 plain septets, then € (escape + 0x65) would straddle the 153-septet boundary.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(20));
        let encoded = encode(&text);
        assert_eq!(encoded.parts.len(), 2);
        assert_eq!(encoded.parts[0].len(), 152);
        assert_eq!(encoded.parts[1][..2], [ESCAPE, 0x65]);
    }

    #[test]
    fn anything_else_is_ucs2_70_then_67_per_part() {
        assert_eq!(segments(&"✓".repeat(70)), 1);
        assert_eq!(segments(&"✓".repeat(71)), 2);
        assert_eq!(segments(&"✓".repeat(134)), 2);
        assert_eq!(segments(&"✓".repeat(135)), 3);
        assert_eq!(segments(&"😀".repeat(35)), 1);
        assert_eq!(segments(&"😀".repeat(36)), 2);
        let encoded = encode("✓😀");
        assert_eq!(encoded.coding, Coding::Ucs2);
        assert_eq!(encoded.parts[0], [0x27, 0x13, 0xD8, 0x3D, 0xDE, 0x00]);
    }

    #[test]
    fn a_surrogate_pair_is_never_split_across_parts() {
        // 66 units, then an emoji (two units) would straddle the 67-unit boundary.
        let text = format!("{}😀{}", "✓".repeat(66), "✓".repeat(10));
        let encoded = encode(&text);
        assert_eq!(encoded.parts.len(), 2);
        assert_eq!(encoded.parts[0].len(), 132);
        assert_eq!(encoded.parts[1][..2], [0xD8, 0x3D]);
        let joined: Vec<u8> = encoded.parts.concat();
        let units: Vec<u16> = joined
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(String::from_utf16(&units).unwrap(), text);
    }
}
