//! One message as the submit_sm PDUs it is sent as: addresses with their TON/NPI, the body in
//! GSM 03.38 or UCS-2 (`limiter::segments`, the split the API counted), and each part of a long
//! message marked as such by a concatenation UDH (3GPP TS 23.040 §9.2.3.24.1) or by the
//! `sar_*` TLVs (SMPP 3.4 §5.3.2.22–24). A delivery receipt is requested for every part.

use std::str::FromStr;

use limiter::segments::{self, Coding};
use rusmpp::pdus::SubmitSm;
use rusmpp::tlvs::MessageSubmissionRequestTlvValue;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, Npi, RegisteredDelivery, Ton};

use crate::provider::Outbound;

/// How the parts of a long message say they belong together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concatenation {
    /// A user data header in the short message (what handsets read; the usual choice).
    Udh,
    /// The `sar_msg_ref_num` / `sar_total_segments` / `sar_segment_seqnum` TLVs, for SMSCs
    /// that build the header themselves.
    Sar,
}

impl FromStr for Concatenation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "udh" => Ok(Self::Udh),
            "sar" => Ok(Self::Sar),
            other => Err(format!("`{other}` is not udh or sar")),
        }
    }
}

/// Why a message cannot be put into submit_sm: sending it again cannot help.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PduError {
    #[error("the {field} address {value:?} does not fit SMPP (at most 20 characters)")]
    Address { field: &'static str, value: String },
    #[error("a part does not fit a short message: {0}")]
    Body(String),
    #[error("{0} parts: a concatenated message has at most 255")]
    TooManyParts(usize),
}

/// Octets of the concatenation header with an 8-bit reference: IEI length, IEI 0x00, length 3,
/// reference, total, sequence.
const UDH_LENGTH: u8 = 5;
const UDHI: u8 = 0x40;
/// Registered delivery: a receipt for the final outcome, success or failure.
const FINAL_RECEIPT: u8 = 0x01;

/// The submit_sm PDUs of `message`, in order. `default_from` is the sender used when the
/// client named none.
pub fn submit_sms(
    message: &Outbound<'_>,
    default_from: &str,
    concatenation: Concatenation,
) -> Result<Vec<SubmitSm>, PduError> {
    let to = message.to.trim_start_matches('+');
    let destination = COctetString::<1, 21>::from_str(to).map_err(|_| PduError::Address {
        field: "destination",
        value: message.to.to_owned(),
    })?;
    let from = message.from.unwrap_or(default_from);
    let (source_ton, source_npi, source) = source_address(from)?;
    let encoded = segments::encode(message.body);
    let total = encoded.parts.len();
    let total_u8 = u8::try_from(total).map_err(|_| PduError::TooManyParts(total))?;
    let data_coding = match encoded.coding {
        Coding::Gsm7 => DataCoding::McSpecific,
        Coding::Ucs2 => DataCoding::Ucs2,
    };
    // The same reference on every attempt of this message, so a handset that gets parts of a
    // repeated attempt can still put them together.
    let reference = message.id.as_bytes()[15];
    encoded
        .parts
        .into_iter()
        .enumerate()
        .map(|(index, data)| {
            let seq = u8::try_from(index + 1).map_err(|_| PduError::TooManyParts(total))?;
            let mut esm_class = 0u8;
            let mut tlvs = Vec::new();
            let short_message = if total == 1 {
                data
            } else {
                match concatenation {
                    Concatenation::Udh => {
                        esm_class |= UDHI;
                        let mut with_header =
                            vec![UDH_LENGTH, 0x00, 0x03, reference, total_u8, seq];
                        with_header.extend_from_slice(&data);
                        with_header
                    }
                    Concatenation::Sar => {
                        tlvs = vec![
                            MessageSubmissionRequestTlvValue::SarMsgRefNum(u16::from(reference)),
                            MessageSubmissionRequestTlvValue::SarTotalSegments(total_u8),
                            MessageSubmissionRequestTlvValue::SarSegmentSeqnum(seq),
                        ];
                        data
                    }
                }
            };
            let short_message =
                OctetString::from_vec(short_message).map_err(|e| PduError::Body(e.to_string()))?;
            Ok(SubmitSm::builder()
                .source_addr_ton(source_ton)
                .source_addr_npi(source_npi)
                .source_addr(source.clone())
                .dest_addr_ton(Ton::International)
                .dest_addr_npi(Npi::Isdn)
                .destination_addr(destination.clone())
                .esm_class(EsmClass::from(esm_class))
                .registered_delivery(RegisteredDelivery::from(FINAL_RECEIPT))
                .data_coding(data_coding)
                .short_message(short_message)
                .tlvs(tlvs)
                .build())
        })
        .collect()
}

/// A number (`+14155550123`) is international ISDN; anything else (`Acme`) alphanumeric; none
/// leaves it to the SMSC's account default.
fn source_address(from: &str) -> Result<(Ton, Npi, COctetString<1, 21>), PduError> {
    let bad = || PduError::Address {
        field: "source",
        value: from.to_owned(),
    };
    if from.is_empty() {
        return Ok((Ton::Unknown, Npi::Unknown, COctetString::empty()));
    }
    let digits = from.strip_prefix('+').unwrap_or(from);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        let address = COctetString::from_str(digits).map_err(|_| bad())?;
        Ok((Ton::International, Npi::Isdn, address))
    } else {
        let address = COctetString::from_str(from).map_err(|_| bad())?;
        Ok((Ton::Alphanumeric, Npi::Unknown, address))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn outbound<'a>(id: Uuid, body: &'a str, from: Option<&'a str>) -> Outbound<'a> {
        Outbound {
            id,
            to: "+14155550123",
            from,
            body,
        }
    }

    #[test]
    fn a_long_gsm_message_is_two_parts_with_one_reference_in_their_headers() {
        let id = Uuid::now_v7();
        let body = "x".repeat(200);
        let parts = submit_sms(&outbound(id, &body, None), "", Concatenation::Udh).unwrap();
        assert_eq!(parts.len(), 2);
        let reference = id.as_bytes()[15];
        for (i, part) in parts.iter().enumerate() {
            let bytes: &[u8] = part.short_message().as_ref();
            assert_eq!(bytes[..6], [5, 0, 3, reference, 2, i as u8 + 1]);
            assert_eq!(u8::from(part.esm_class), UDHI);
            assert_eq!(part.data_coding, DataCoding::McSpecific);
            assert_eq!(part.destination_addr.as_str(), "14155550123");
        }
        assert_eq!(parts[0].short_message().len(), 6 + 153);
        assert_eq!(parts[1].short_message().len(), 6 + 47);
    }

    #[test]
    fn sar_tlvs_replace_the_header_when_asked() {
        let body = "✓".repeat(100);
        let parts = submit_sms(
            &outbound(Uuid::now_v7(), &body, Some("Acme")),
            "",
            Concatenation::Sar,
        )
        .unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].data_coding, DataCoding::Ucs2);
        assert_eq!(u8::from(parts[0].esm_class), 0);
        assert_eq!(parts[0].tlvs().len(), 3);
        assert_eq!(parts[0].short_message().len(), 134);
        assert_eq!(parts[0].source_addr_ton, Ton::Alphanumeric);
    }

    #[test]
    fn a_short_message_is_one_plain_part_from_the_default_sender() {
        let parts = submit_sms(
            &outbound(Uuid::now_v7(), "hi", None),
            "+15005550006",
            Concatenation::Udh,
        )
        .unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].short_message().as_ref() as &[u8], b"hi");
        assert_eq!(parts[0].source_addr.as_str(), "15005550006");
        assert_eq!(parts[0].source_addr_ton, Ton::International);
    }
}
