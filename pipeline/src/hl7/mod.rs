//! HL7 v2 (ER7) messages: decoding, parsing, header fields and paths.
//!
//! Parsing is our own lazy reader ([`er7`]): it validates every segment id (a segment it
//! cannot read is an error naming its number, never silently dropped — hl7-parser, used
//! before, stopped at such a segment and still returned `Ok`) and splits fields only when
//! a path reads them. Errors carry codes and positions, never message text.

pub mod ack;
pub mod batch;
pub mod batch_ack;
pub mod charset;
pub mod er7;
pub mod escape;
pub mod mask;
pub mod path;
pub mod structure;
pub mod timestamp;

use crate::reason::{Reason, Rejection};
pub use escape::Delimiters;

/// A parsed HL7 v2 message borrowing its decoded text.
pub struct Hl7Message<'m> {
    segments: Vec<er7::Segment<'m>>,
    delimiters: Delimiters,
}

/// Bounds on one HL7 v2 message: a tenant's `max_segments_per_message` and
/// `max_repetitions_per_field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most segments a message may hold.
    pub max_segments: usize,
    /// Most repetitions a field may hold.
    pub max_repetitions: usize,
}

impl Limits {
    /// Fails with `MESSAGE_TOO_MANY_SEGMENTS` or `FIELD_TOO_MANY_REPETITIONS` (detail: the
    /// place and the limit, never a value). Linear in the message: a segment with fewer
    /// repetition separators in all than the limit is passed after one count.
    pub fn check(&self, message: &Hl7Message<'_>) -> Result<(), Rejection> {
        if message.segments.len() > self.max_segments {
            return Err(Rejection::with_detail(
                Reason::MessageTooManySegments,
                format!("limit {}", self.max_segments),
            ));
        }
        let d = &message.delimiters;
        for (i, segment) in message.segments.iter().enumerate() {
            let text = segment.raw_value();
            if text.matches(d.repetition).count() < self.max_repetitions {
                continue;
            }
            let msh = segment.name == "MSH";
            for (k, field) in text.split(d.field).enumerate() {
                // MSH-2 (the encoding characters) holds the repetition separator itself.
                if msh && k == 1 {
                    continue;
                }
                if field.matches(d.repetition).count() + 1 > self.max_repetitions {
                    let n = if msh { k + 1 } else { k };
                    return Err(Rejection::with_detail(
                        Reason::FieldTooManyRepetitions,
                        format!(
                            "segment {} ({}-{n}), limit {}",
                            i + 1,
                            segment.name,
                            self.max_repetitions
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The MSH fields intake needs for routing, idempotency and acknowledgement, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// MSH-1.
    pub field_sep: char,
    /// MSH-2 as written.
    pub encoding_chars: String,
    /// MSH-3, raw.
    pub sending_application: String,
    /// MSH-4, raw.
    pub sending_facility: String,
    /// MSH-5, raw.
    pub receiving_application: String,
    /// MSH-6, raw.
    pub receiving_facility: String,
    /// MSH-9.1, e.g. `ADT`.
    pub message_type: String,
    /// MSH-9.2, e.g. `A01`.
    pub trigger: String,
    /// MSH-10, raw.
    pub control_id: String,
    /// MSH-11, raw.
    pub processing_id: String,
    /// MSH-12.1.
    pub version: String,
    /// MSH-15 (accept acknowledgement type): set means enhanced mode.
    pub accept_ack_type: String,
}

impl Header {
    /// Fails when MSH-9 (message type) or MSH-10 (control id) is empty.
    pub fn check(&self) -> Result<(), Rejection> {
        if self.message_type.is_empty() {
            return Err(Rejection::new(Reason::MissingMessageType));
        }
        if self.control_id.is_empty() {
            return Err(Rejection::new(Reason::MissingControlId));
        }
        Ok(())
    }

    /// `ADT^A01`, or just `ADT` without a trigger.
    pub fn message_code(&self) -> String {
        if self.trigger.is_empty() {
            self.message_type.clone()
        } else {
            format!("{}^{}", self.message_type, self.trigger)
        }
    }
}

impl<'m> Hl7Message<'m> {
    /// Parses CR-separated text (as produced by [`charset::decode`]).
    pub fn parse(text: &'m str) -> Result<Self, Rejection> {
        let mut segments = Vec::with_capacity(text.len() / 48 + 1);
        for (i, seg) in text.split('\r').enumerate() {
            if seg.is_empty() {
                continue;
            }
            let b = seg.as_bytes();
            let id_ok = b.len() >= 3
                && b[0].is_ascii_uppercase()
                && b[1..3]
                    .iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if !(id_ok && (b.len() == 3 || !b[3].is_ascii_alphanumeric())) {
                return Err(Rejection::with_detail(
                    Reason::MalformedSegment,
                    format!("segment {}", i + 1),
                ));
            }
            segments.push(er7::Segment::new(seg));
        }
        // MSH-1 and the first four characters of MSH-2 are the delimiters.
        let msh = segments
            .first()
            .filter(|s| s.name == "MSH")
            .ok_or_else(|| Rejection::new(Reason::MalformedMessage))?;
        let mut chars = msh.raw_value()[3..].chars();
        let mut next = || {
            chars
                .next()
                .ok_or_else(|| Rejection::new(Reason::MalformedMessage))
        };
        let field = next()?;
        let delimiters = Delimiters {
            field,
            component: next()?,
            repetition: next()?,
            escape: next()?,
            subcomponent: next()?,
        };
        let all = [
            field,
            delimiters.component,
            delimiters.repetition,
            delimiters.escape,
            delimiters.subcomponent,
        ];
        if all
            .iter()
            .enumerate()
            .any(|(i, c)| c.is_alphanumeric() || all[..i].contains(c))
        {
            return Err(Rejection::new(Reason::MalformedMessage));
        }
        Ok(Hl7Message {
            segments,
            delimiters,
        })
    }

    /// The message's delimiters.
    pub fn delimiters(&self) -> &Delimiters {
        &self.delimiters
    }

    /// All segments in order.
    pub fn segments(&self) -> &[er7::Segment<'m>] {
        &self.segments
    }

    /// The header fields; fails when MSH-9 or MSH-10 is empty.
    pub fn header(&self) -> Result<Header, Rejection> {
        let h = self.header_lenient();
        h.check()?;
        Ok(h)
    }

    /// The header fields as present, empty strings where absent.
    pub fn header_lenient(&self) -> Header {
        let d = &self.delimiters;
        let msh = &self.segments[0];
        let raw = |n: usize| msh.field(n, d).map(str::trim).unwrap_or("");
        let comp = |n: usize, c: usize| {
            msh.field(n, d)
                .and_then(|f| f.split(d.repetition).next())
                .and_then(|r| er7::part(r, d.component, c))
                .map(|v| self.unescape(v).trim().to_string())
                .unwrap_or_default()
        };
        Header {
            field_sep: d.field,
            encoding_chars: raw(2).to_string(),
            sending_application: raw(3).to_string(),
            sending_facility: raw(4).to_string(),
            receiving_application: raw(5).to_string(),
            receiving_facility: raw(6).to_string(),
            message_type: comp(9, 1),
            trigger: comp(9, 2),
            control_id: raw(10).to_string(),
            processing_id: raw(11).to_string(),
            version: comp(12, 1),
            accept_ack_type: raw(15).to_string(),
        }
    }

    /// Decodes escape sequences with this message's delimiters.
    pub fn unescape<'a>(&self, value: &'a str) -> std::borrow::Cow<'a, str> {
        escape::unescape(value, &self.delimiters)
    }
}

/// Bytes to text ready for [`Hl7Message::parse`]: the charset MSH-18 names, decoded, and
/// MSH-2 normalized ([`prepare`]). A failure carries the header when it can still be read
/// (an undecodable charset: MSH is ASCII), for the acknowledgement.
pub fn decode(bytes: &[u8]) -> Result<String, (Rejection, Option<Header>)> {
    let mut decoded = charset::decode(bytes).map_err(|e| {
        let reason = match e {
            charset::DecodeError::NotHl7 => Reason::NotHl7,
            charset::DecodeError::Empty => Reason::EmptyMessage,
            // A batch that cannot be split says why; one that can was not split here.
            charset::DecodeError::BatchEnvelope => return (batch::rejection(bytes), None),
            charset::DecodeError::UnsupportedCharset => Reason::UnsupportedCharset,
        };
        let header = (reason == Reason::UnsupportedCharset)
            .then(|| sniff_header_latin1(bytes))
            .flatten();
        (Rejection::new(reason), header)
    })?;
    prepare(&mut decoded.text);
    Ok(decoded.text)
}

/// Reads the MSH header out of raw bytes for acknowledging something that was not
/// fully processed (an oversized frame, a message that failed to parse).
/// Returns `None` unless the bytes decode and parse at least as far as MSH.
pub fn sniff_header(bytes: &[u8]) -> Option<Header> {
    let mut decoded = charset::decode(bytes).ok()?;
    prepare(&mut decoded.text);
    header_of_first_segment(decoded.text.split('\r').next()?)
}

fn header_of_first_segment(first: &str) -> Option<Header> {
    Hl7Message::parse(first).ok().map(|m| m.header_lenient())
}

/// Like [`sniff_header`], reading the bytes as Latin-1 (for charsets we cannot decode:
/// the MSH fields we need are ASCII in every charset HL7 allows here).
pub fn sniff_header_latin1(bytes: &[u8]) -> Option<Header> {
    let text: String = bytes.iter().map(|&b| b as char).collect();
    let start = text.find("MSH")?;
    let mut first = text[start..].split(['\r', '\n']).next()?.to_string();
    normalize_encoding_chars(&mut first);
    header_of_first_segment(&first)
}

/// Prepares decoded text for parsing, in place: see [`normalize_encoding_chars`].
pub fn prepare(text: &mut String) {
    normalize_encoding_chars(text);
}

/// Rewrites MSH-2 to exactly four distinct encoding characters, in place.
///
/// hl7-parser expects exactly four; real feeds send five (v2.7's truncation character,
/// `^~\&#`), doubled escapes (`^~\\&`) or fewer. Each would shift every MSH field by
/// one. Extra or repeated characters are dropped and missing ones filled from the
/// defaults. The raw bytes are stored unchanged; only the parsed view is normalized.
pub fn normalize_encoding_chars(text: &mut String) {
    let Some(fs) = text.strip_prefix("MSH").and_then(|r| r.chars().next()) else {
        return;
    };
    let start = 3 + fs.len_utf8();
    let rest = &text[start..];
    let end = start + rest.find([fs, '\r']).unwrap_or(rest.len());
    let enc = &text[start..end];
    let mut chars: Vec<char> = Vec::with_capacity(4);
    for c in enc.chars() {
        if chars.len() < 4 && c != fs && !chars.contains(&c) {
            chars.push(c);
        }
    }
    if chars.len() == 4 && enc.len() == 4 {
        return;
    }
    for d in ['^', '~', '\\', '&'] {
        if chars.len() < 4 && d != fs && !chars.contains(&d) {
            chars.push(d);
        }
    }
    let fixed: String = chars.into_iter().collect();
    text.replace_range(start..end, &fixed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        let mut s = s.to_string();
        normalize_encoding_chars(&mut s);
        s
    }

    #[test]
    fn segment_and_repetition_limits_name_the_place_and_the_limit() {
        let text = format!(
            "MSH|^~\\&|A|F|||20260101||ADT^A01|C1|P|2.5\rPID|1||{}||Doe\rNTE|1\rNTE|2",
            vec!["ID^^^F^MR"; 5].join("~")
        );
        let m = Hl7Message::parse(&text).unwrap();
        let limits = |max_segments, max_repetitions| Limits {
            max_segments,
            max_repetitions,
        };
        assert!(limits(4, 5).check(&m).is_ok());
        let e = limits(3, 5).check(&m).unwrap_err();
        assert_eq!(
            (e.reason, e.detail.as_deref()),
            (Reason::MessageTooManySegments, Some("limit 3"))
        );
        let e = limits(4, 4).check(&m).unwrap_err();
        assert_eq!(
            (e.reason, e.detail.as_deref()),
            (
                Reason::FieldTooManyRepetitions,
                Some("segment 2 (PID-3), limit 4")
            )
        );
        // MSH-2 holds the separator itself: it is not a repeated field.
        assert!(limits(4, 1)
            .check(&Hl7Message::parse("MSH|^~\\&|A\rPID|1").unwrap())
            .is_ok());
    }

    #[test]
    fn encoding_characters_are_normalized_to_four() {
        assert_eq!(norm("MSH|^~\\&|A"), "MSH|^~\\&|A");
        assert_eq!(norm("MSH|^~\\&#|A|B"), "MSH|^~\\&|A|B");
        assert_eq!(norm("MSH|^~\\\\&|A"), "MSH|^~\\&|A");
        assert_eq!(norm("MSH|^~\\|A"), "MSH|^~\\&|A");
        assert_eq!(norm("MSH$%~\\&$A"), "MSH$%~\\&$A");
        assert_eq!(norm("MSH|"), "MSH|^~\\&");
        assert_eq!(norm("PID|x"), "PID|x");
    }

    #[test]
    fn five_encoding_characters_keep_msh_fields_in_place() {
        let mut t = "MSH|^~\\&#|APP|FAC|R|RF|20240101||ADT^A01|C9|P|2.7".to_string();
        normalize_encoding_chars(&mut t);
        let h = Hl7Message::parse(&t).unwrap().header().unwrap();
        assert_eq!(
            (h.message_code().as_str(), h.control_id.as_str()),
            ("ADT^A01", "C9")
        );
    }

    #[test]
    fn bad_segment_ids_are_reported_not_silently_dropped() {
        for (text, seg) in [
            ("MSH|^~\\&|A\rPI|x", 2),
            ("MSH|^~\\&|A\rPID|1\rpid|x", 3),
            ("MSH|^~\\&|A\r000|x", 2),
        ] {
            let e = Hl7Message::parse(text).err().unwrap();
            assert_eq!(
                e,
                Rejection::with_detail(Reason::MalformedSegment, format!("segment {seg}"))
            );
        }
        let mut t = "MSH|^~\\&|A\rPID|1\rNTE\rZ01|x".to_string();
        prepare(&mut t);
        let m = Hl7Message::parse(&t).unwrap();
        assert_eq!(
            m.segments().len(),
            4,
            "a bare segment id does not hide what follows"
        );
    }
}
