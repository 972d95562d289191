//! The batch acknowledgement: the answer to an FHS/BHS batch.
//!
//! [`build_batch_ack`] wraps the messages' own ACKs (each exactly what the message would
//! have been answered alone, from [`super::ack::build_ack`]) in an envelope mirroring the
//! inbound one:
//!
//! ```text
//! FHS  sender/receiver swapped, FHS-11 our control id, FHS-12 the inbound FHS-11   (only if the batch had an FHS)
//! BHS  the same for each group, BHS-12 the inbound BHS-11
//! MSH MSA [ERR]   one ACK per message, in message order
//! BTS  BTS-1 the number of ACK messages in the group
//! FTS  FTS-1 the number of groups                                                 (only with FHS)
//! ```
//!
//! Echoed fields are copied verbatim; our control ids are escaped. Every segment ends
//! with CR.

use super::ack::AckDelimiters;
use super::batch::{Batch, EnvelopeHeader};
use chrono::{DateTime, FixedOffset};

/// Writes an FHS or BHS answering `h` (sender and receiver swapped).
fn header_segment(
    out: &mut String,
    id: &str,
    h: Option<&EnvelopeHeader>,
    now: &str,
    control_id: &str,
) -> AckDelimiters {
    let d = AckDelimiters::of(h.map(|h| (h.field_sep, h.encoding_chars.as_str())));
    let empty = EnvelopeHeader::default();
    let h = h.unwrap_or(&empty);
    let fs = d.delimiters.field;
    out.push_str(id);
    out.push(fs);
    out.push_str(&d.encoding);
    for v in [
        h.receiving_application.as_str(),
        h.receiving_facility.as_str(),
        h.sending_application.as_str(),
        h.sending_facility.as_str(),
        now,
        "", // -8 security
        "", // -9 name/id
        "", // -10 comment
    ] {
        out.push(fs);
        out.push_str(v);
    }
    out.push(fs);
    out.push_str(&d.escape(control_id));
    out.push(fs);
    out.push_str(&h.control_id);
    out.push('\r');
    d
}

/// Writes a BTS or FTS with its count.
fn trailer_segment(out: &mut String, id: &str, d: &AckDelimiters, count: usize) {
    out.push_str(id);
    out.push(d.delimiters.field);
    out.push_str(&count.to_string());
    out.push('\r');
}

/// Builds the acknowledgement of `batch` from its messages' ACKs (`acks`, in message
/// order, one per message). `control_id` is FHS-11 of the answer; each BHS-11 is
/// `<control_id>-<group number>`. `now` is written as `YYYYMMDDHHMMSS+ZZZZ`.
pub fn build_batch_ack(
    batch: &Batch,
    acks: &[String],
    control_id: &str,
    now: DateTime<FixedOffset>,
) -> String {
    let now = now.format("%Y%m%d%H%M%S%z").to_string();
    let mut out = String::with_capacity(128 + acks.iter().map(String::len).sum::<usize>());
    let file = batch.file.as_ref().map(|f| {
        (
            f,
            header_segment(&mut out, "FHS", Some(f), &now, control_id),
        )
    });
    let mut acks = acks.iter();
    for (i, group) in batch.groups.iter().enumerate() {
        // A group without a BHS answers with one built from the FHS.
        let header = group.header.as_ref().or(file.as_ref().map(|(f, _)| *f));
        let group_id = format!("{control_id}-{}", i + 1);
        let d = header_segment(&mut out, "BHS", header, &now, &group_id);
        let mut count = 0;
        for ack in acks.by_ref().take(group.messages.len()) {
            out.push_str(ack);
            count += 1;
        }
        trailer_segment(&mut out, "BTS", &d, count);
    }
    if let Some((_, d)) = &file {
        trailer_segment(&mut out, "FTS", d, batch.groups.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7::batch::{split, MAX_BATCH_MESSAGES};
    use chrono::TimeZone;

    fn now() -> DateTime<FixedOffset> {
        FixedOffset::east_opt(0)
            .unwrap()
            .with_ymd_and_hms(2024, 3, 5, 14, 7, 9)
            .unwrap()
    }

    const M: &str = "MSH|^~\\&|A|F|R|RF|20240101||ADT^A01|M1|P|2.5\r";

    fn acks(n: usize) -> Vec<String> {
        (1..=n)
            .map(|i| format!("MSH|^~\\&|ACK{i}\rMSA|AA|M{i}\r"))
            .collect()
    }

    #[test]
    fn file_and_batch_envelope_mirror_the_inbound_one() {
        let input = format!(
            "FHS|^~\\&|SAPP|SFAC|RAPP|RFAC|20240101||||F77\rBHS|^~\\&|BAPP|BFAC|BR|BRF|||||B77\r{M}{M}BTS|2\rFTS|1\r"
        );
        let b = split(input.as_bytes(), MAX_BATCH_MESSAGES).unwrap();
        let ack = build_batch_ack(&b, &acks(2), "X1", now());
        let segs: Vec<&str> = ack.trim_end_matches('\r').split('\r').collect();
        assert!(ack.ends_with('\r'));
        assert_eq!(
            segs,
            [
                "FHS|^~\\&|RAPP|RFAC|SAPP|SFAC|20240305140709+0000||||X1|F77",
                "BHS|^~\\&|BR|BRF|BAPP|BFAC|20240305140709+0000||||X1-1|B77",
                "MSH|^~\\&|ACK1",
                "MSA|AA|M1",
                "MSH|^~\\&|ACK2",
                "MSA|AA|M2",
                "BTS|2",
                "FTS|1",
            ]
        );
    }

    #[test]
    fn no_file_header_no_file_trailer_and_own_delimiters() {
        let input = format!("BHS#$~\\&#SA#SF#RA#RF#####C9\r{M}BTS#1\r");
        let b = split(input.as_bytes(), MAX_BATCH_MESSAGES).unwrap();
        let ack = build_batch_ack(&b, &acks(1), "X|2", now());
        assert_eq!(
            ack,
            "BHS#$~\\&#RA#RF#SA#SF#20240305140709+0000####X|2-1#C9\r\
             MSH|^~\\&|ACK1\rMSA|AA|M1\rBTS#1\r"
        );
    }

    #[test]
    fn groups_are_counted_and_headerless_groups_use_the_file_header() {
        let input = format!("FHS|^~\\&|SA|SF|RA|RF|||||F1\r{M}{M}{M}FTS|9\r");
        let b = split(input.as_bytes(), MAX_BATCH_MESSAGES).unwrap();
        let ack = build_batch_ack(&b, &acks(3), "X", now());
        let segs: Vec<&str> = ack.trim_end_matches('\r').split('\r').collect();
        assert_eq!(
            segs[1],
            "BHS|^~\\&|RA|RF|SA|SF|20240305140709+0000||||X-1|F1"
        );
        assert_eq!(
            segs[segs.len() - 2..],
            ["BTS|3", "FTS|1"],
            "counts are ours"
        );

        let input = format!("FHS|^~\\&\rBHS|^~\\&\r{M}BTS|1\rBHS|^~\\&\r{M}{M}BTS|2\rFTS|2\r");
        let b = split(input.as_bytes(), MAX_BATCH_MESSAGES).unwrap();
        let ack = build_batch_ack(&b, &acks(3), "X", now());
        let trailers: Vec<&str> = ack
            .split('\r')
            .filter(|s| s.starts_with("BTS") || s.starts_with("FTS"))
            .collect();
        assert_eq!(trailers, ["BTS|1", "BTS|2", "FTS|2"]);
        assert_eq!(ack.matches("\rMSA|").count(), 3);
    }

    #[test]
    fn unusable_envelope_delimiters_fall_back() {
        let input = format!("BHS|ab\r{M}");
        let b = split(input.as_bytes(), MAX_BATCH_MESSAGES).unwrap();
        let ack = build_batch_ack(&b, &acks(1), "X", now());
        assert!(ack.starts_with("BHS|^~\\&|"), "{ack}");
    }
}
