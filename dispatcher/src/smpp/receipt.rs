//! Delivery receipts as they arrive in deliver_sm: the `receipted_message_id` and
//! `message_state` TLVs when the SMSC sends them (SMPP 3.4 §5.3.2.12, §5.3.2.35), else the text
//! form of Appendix B (`id:… sub:… dlvr:… submit date:… done date:… stat:DELIVRD err:…`).
//! Reading the PDU is all this module does; recording what it says is `record`'s job.

use limiter::delivery::DeliveryStatus;
use rusmpp::pdus::DeliverSm;
use rusmpp::tlvs::TlvValue;
use rusmpp::values::{MessageState, MessageType};

/// What one receipt says about one submitted part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The SMSC's message id, as its submit_sm_resp gave it.
    pub message_id: String,
    /// The final state's name (`DELIVRD`, `UNDELIV`, …).
    pub state: String,
    /// The SMSC's error code (`err:`), when it gave one.
    pub error: Option<String>,
}

impl Receipt {
    /// What the receipt makes of the message: `delivered`, `undelivered`, or nothing for the
    /// states that are not final (`ENROUTE`, `ACCEPTD`, `UNKNOWN`…): those change nothing.
    pub fn status(&self) -> Option<DeliveryStatus> {
        match self.state.as_str() {
            "DELIVRD" => Some(DeliveryStatus::Delivered),
            "EXPIRED" | "DELETED" | "UNDELIV" | "REJECTD" => Some(DeliveryStatus::Undelivered),
            _ => None,
        }
    }

    /// The history line's detail: the state and the SMSC's error.
    pub fn detail(&self) -> String {
        match &self.error {
            Some(err) => format!("SMSC receipt stat:{} err:{err}", self.state),
            None => format!("SMSC receipt stat:{}", self.state),
        }
    }
}

/// The receipt `deliver_sm` carries; `None` when it is no receipt (a mobile-originated message)
/// or names no message.
pub fn parse(deliver_sm: &DeliverSm) -> Option<Receipt> {
    let mut tlv_id = None;
    let mut tlv_state = None;
    for tlv in deliver_sm.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(id)) => tlv_id = Some(id.as_str().to_owned()),
            Some(TlvValue::MessageState(state)) => tlv_state = Some(state_name(*state)),
            _ => {}
        }
    }
    let is_receipt = matches!(
        deliver_sm.esm_class.message_type,
        MessageType::ShortMessageContainsMCDeliveryReceipt
    ) || tlv_id.is_some();
    if !is_receipt {
        return None;
    }
    let text = String::from_utf8_lossy(deliver_sm.short_message().as_ref()).into_owned();
    let fields = text_fields(&text);
    let message_id = tlv_id.or(fields.id)?;
    let state = tlv_state.or(fields.stat)?;
    Some(Receipt {
        message_id,
        state,
        error: fields.err,
    })
}

/// The Appendix B name of a `message_state` value.
fn state_name(state: MessageState) -> String {
    match state {
        MessageState::Scheduled => "SCHEDULED",
        MessageState::Enroute => "ENROUTE",
        MessageState::Delivered => "DELIVRD",
        MessageState::Expired => "EXPIRED",
        MessageState::Deleted => "DELETED",
        MessageState::Undeliverable => "UNDELIV",
        MessageState::Accepted => "ACCEPTD",
        MessageState::Unknown => "UNKNOWN",
        MessageState::Rejected => "REJECTD",
        MessageState::Skipped => "SKIPPED",
        MessageState::Other(_) => "UNKNOWN",
    }
    .to_owned()
}

#[derive(Default)]
struct TextFields {
    id: Option<String>,
    stat: Option<String>,
    err: Option<String>,
}

/// `id:`, `stat:` and `err:` of the text form. Keys are matched without regard to case, as
/// SMSCs differ; `text:` ends the scan, since the message's own start follows it verbatim.
fn text_fields(text: &str) -> TextFields {
    let mut fields = TextFields::default();
    for word in text.split_whitespace() {
        let Some((key, value)) = word.split_once(':') else {
            continue;
        };
        match key.to_ascii_lowercase().as_str() {
            "id" if fields.id.is_none() && !value.is_empty() => fields.id = Some(value.to_owned()),
            "stat" => fields.stat = Some(value.to_ascii_uppercase()),
            "err" => fields.err = Some(value.to_owned()),
            "text" => break,
            _ => {}
        }
    }
    fields
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::str::FromStr;

    use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
    use rusmpp::types::{COctetString, OctetString};
    use rusmpp::values::EsmClass;

    use super::*;

    fn deliver_sm(text: &str, tlvs: Vec<MessageDeliveryRequestTlvValue>) -> DeliverSm {
        DeliverSm::builder()
            .esm_class(EsmClass::from(0x04))
            .short_message(OctetString::from_str(text).unwrap())
            .tlvs(tlvs)
            .build()
    }

    #[test]
    fn the_text_form_gives_id_state_and_error() {
        let pdu = deliver_sm(
            "id:0a1b2c sub:001 dlvr:001 submit date:2612020455 done date:2612020455 stat:DELIVRD err:000 text:hello id:x",
            vec![],
        );
        let receipt = parse(&pdu).unwrap();
        assert_eq!(receipt.message_id, "0a1b2c");
        assert_eq!(receipt.state, "DELIVRD");
        assert_eq!(receipt.error.as_deref(), Some("000"));
        assert_eq!(receipt.status(), Some(DeliveryStatus::Delivered));
        let undelivered = parse(&deliver_sm("id:7 stat:UNDELIV err:001", vec![])).unwrap();
        assert_eq!(undelivered.status(), Some(DeliveryStatus::Undelivered));
        let enroute = parse(&deliver_sm("id:7 stat:ENROUTE", vec![])).unwrap();
        assert_eq!(enroute.status(), None);
    }

    #[test]
    fn the_tlvs_win_over_the_text() {
        let pdu = deliver_sm(
            "id:12345 stat:DELIVRD err:000",
            vec![
                MessageDeliveryRequestTlvValue::ReceiptedMessageId(
                    COctetString::from_str("3039").unwrap(),
                ),
                MessageDeliveryRequestTlvValue::MessageState(MessageState::Rejected),
            ],
        );
        let receipt = parse(&pdu).unwrap();
        assert_eq!(receipt.message_id, "3039");
        assert_eq!(receipt.state, "REJECTD");
        assert_eq!(receipt.status(), Some(DeliveryStatus::Undelivered));
    }

    #[test]
    fn a_mobile_originated_message_is_no_receipt() {
        let pdu = DeliverSm::builder()
            .short_message(OctetString::from_str("id:1 stat:DELIVRD").unwrap())
            .build();
        assert_eq!(parse(&pdu), None);
    }
}
