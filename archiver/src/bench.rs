//! The archive benchmark behind `smsgate bench --mode archive`.
