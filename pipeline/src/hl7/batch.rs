//! HL7 v2 batches: `[FHS] {BHS {MSH …} [BTS]} [FTS]` in one frame, file or body.
//!
//! [`split`] finds the messages of a batch as byte ranges of the input — each message's
//! bytes exactly as they were sent, its last segment terminator included — and keeps the
//! FHS/BHS fields the batch acknowledgement needs and the trailer counts. Segments are
//! cut at CR, LF or CRLF, as [`super::charset::decode`] accepts them; blank lines are
//! skipped. The splitter reads only segment ids and the envelope segments' fields, never
//! a message's content, so it works for every ASCII-compatible charset.
//!
//! What an interface engineer expects from the envelope:
//! - A wrong BTS-1 / FTS-1 count, or a missing BTS / FTS, rejects nothing: the messages
//!   are all there. It is reported as a [`BatchWarning`] (logged with counts only).
//! - A batch without a single MSH, with segments that belong to no message, or with its
//!   envelope segments out of order is refused whole ([`BatchError`]): nothing in it can be
//!   attributed to a message with certainty.
//! - At most [`MAX_BATCH_MESSAGES`] messages: a bound on the work one frame can ask for.

use crate::reason::{Reason, Rejection};
use std::ops::Range;

/// The most messages one batch may hold (all groups together).
pub const MAX_BATCH_MESSAGES: usize = 10_000;

/// The FHS or BHS fields kept for the acknowledgement (raw, as sent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// FHS-1 / BHS-1.
    pub field_sep: char,
    /// FHS-2 / BHS-2 as written.
    pub encoding_chars: String,
    /// FHS-3 / BHS-3.
    pub sending_application: String,
    /// FHS-4 / BHS-4.
    pub sending_facility: String,
    /// FHS-5 / BHS-5.
    pub receiving_application: String,
    /// FHS-6 / BHS-6.
    pub receiving_facility: String,
    /// FHS-11 / BHS-11: the file or batch control id.
    pub control_id: String,
}

/// One BHS … BTS group of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// The BHS; `None` when messages follow the FHS directly.
    pub header: Option<EnvelopeHeader>,
    /// The byte ranges of the group's messages, in order.
    pub messages: Vec<Range<usize>>,
    /// BTS-1 as written (trimmed), when there is a BTS with a count.
    pub declared_count: Option<String>,
    /// Whether a BTS closed the group.
    pub closed: bool,
}

/// A split batch: the envelope and where each message is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The FHS, when the batch is a file.
    pub file: Option<EnvelopeHeader>,
    /// The batches (groups) in order.
    pub groups: Vec<Group>,
    /// FTS-1 as written, when there is an FTS with a count.
    pub declared_groups: Option<String>,
    /// Whether an FTS ended the file.
    pub closed: bool,
}

/// A flaw in the envelope that does not stop the messages from being processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchWarning {
    /// BTS-1 does not match the group's messages (group index from 1).
    MessageCountMismatch {
        /// Which group.
        group: usize,
        /// The messages found.
        actual: usize,
    },
    /// FTS-1 does not match the number of groups.
    GroupCountMismatch {
        /// The groups found.
        actual: usize,
    },
    /// A BHS without BTS, or an FHS without FTS.
    TrailerMissing,
}

impl BatchWarning {
    /// The stable code (logged; see the README).
    pub fn code(&self) -> &'static str {
        match self {
            BatchWarning::MessageCountMismatch { .. } | BatchWarning::GroupCountMismatch { .. } => {
                "BATCH_COUNT_MISMATCH"
            }
            BatchWarning::TrailerMissing => "BATCH_TRAILER_MISSING",
        }
    }
}

/// Why a batch was refused whole. Carries no fragment of the input.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// The input does not start with FHS or BHS.
    #[error("not a batch")]
    NotABatch,
    /// An envelope without any MSH.
    #[error("batch holds no message")]
    Empty,
    /// More than the limit of messages.
    #[error("batch holds more than {limit} messages")]
    TooManyMessages {
        /// The limit.
        limit: usize,
    },
    /// A segment outside any message, or an envelope segment out of order (1-based).
    #[error("batch envelope malformed at segment {segment}")]
    Malformed {
        /// The segment's number in the input.
        segment: usize,
    },
}

impl BatchError {
    /// The dead-letter rejection for this error (detail: a count or a segment number).
    pub fn rejection(&self) -> Rejection {
        match *self {
            BatchError::NotABatch => Rejection::new(Reason::BatchEnvelope),
            BatchError::Empty => Rejection::new(Reason::BatchEmpty),
            BatchError::TooManyMessages { limit } => {
                Rejection::with_detail(Reason::BatchTooManyMessages, format!("limit {limit}"))
            }
            BatchError::Malformed { segment } => {
                Rejection::with_detail(Reason::BatchMalformed, format!("segment {segment}"))
            }
        }
    }
}

const UTF8_BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

/// Bytes that are not part of any segment: whitespace, NUL, MLLP framing bytes.
fn is_junk(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0 || b == 0x0B || b == 0x1C
}

/// The segment kinds the splitter tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fhs,
    Bhs,
    Bts,
    Fts,
    Msh,
    Other,
}

/// The kind of a segment line: an id followed by a field separator (punctuation) or,
/// for the trailers, nothing.
fn kind(line: &[u8]) -> Kind {
    let sep = line.get(3);
    let delimited = matches!(sep, Some(b) if b.is_ascii_punctuation());
    let bare = sep.is_none();
    match &line[..line.len().min(3)] {
        b"MSH" if delimited => Kind::Msh,
        b"FHS" if delimited => Kind::Fhs,
        b"BHS" if delimited => Kind::Bhs,
        b"BTS" if delimited || bare => Kind::Bts,
        b"FTS" if delimited || bare => Kind::Fts,
        _ => Kind::Other,
    }
}

/// The input after an optional UTF-8 BOM and leading junk.
fn body_start(bytes: &[u8]) -> usize {
    let skip = if bytes.starts_with(UTF8_BOM) { 3 } else { 0 };
    skip + bytes[skip..]
        .iter()
        .position(|&b| !is_junk(b))
        .unwrap_or(bytes.len() - skip)
}

/// Whether the input is a batch: after an optional UTF-8 BOM and whitespace it starts
/// with `FHS` or `BHS` and a field separator.
pub fn is_batch(bytes: &[u8]) -> bool {
    let rest = &bytes[body_start(bytes)..];
    matches!(kind(rest), Kind::Fhs | Kind::Bhs)
}

/// The segment lines of the input: (content range, range with its terminator).
fn lines(bytes: &[u8]) -> impl Iterator<Item = (Range<usize>, usize)> + '_ {
    let mut pos = body_start(bytes);
    std::iter::from_fn(move || loop {
        if pos >= bytes.len() {
            return None;
        }
        let start = pos;
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .map_or(bytes.len(), |i| start + i);
        let mut next = end;
        if bytes.get(next) == Some(&b'\r') {
            next += 1;
        }
        if next == end || bytes.get(next) == Some(&b'\n') {
            next = (next + 1).min(bytes.len());
        }
        pos = next;
        if !bytes[start..end].iter().all(|&b| is_junk(b)) {
            return Some((start..end, next));
        }
    })
}

/// The envelope header fields of an FHS or BHS line (FHS-n is element n-1).
fn envelope_header(line: &[u8]) -> EnvelopeHeader {
    let sep = line[3];
    let parts: Vec<&[u8]> = line.split(|&b| b == sep).collect();
    let field = |n: usize| {
        parts
            .get(n - 1)
            .map(|v| String::from_utf8_lossy(v.trim_ascii()).into_owned())
            .unwrap_or_default()
    };
    EnvelopeHeader {
        field_sep: char::from(sep),
        encoding_chars: field(2),
        sending_application: field(3),
        sending_facility: field(4),
        receiving_application: field(5),
        receiving_facility: field(6),
        control_id: field(11),
    }
}

/// BTS-1 / FTS-1, trimmed; `None` when absent or empty.
fn trailer_count(line: &[u8]) -> Option<String> {
    let sep = *line.get(3)?;
    let value = line[4..].split(|&b| b == sep).next()?.trim_ascii();
    (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned())
}

/// Splits a batch into its messages, at most `max_messages` of them.
pub fn split(bytes: &[u8], max_messages: usize) -> Result<Batch, BatchError> {
    if !is_batch(bytes) {
        return Err(BatchError::NotABatch);
    }
    let mut batch = Batch::default();
    // The message being read: its start and the end of its last line (with terminator).
    let mut open: Option<(usize, usize)> = None;
    let mut count = 0;
    for (n, (line, next)) in lines(bytes).enumerate() {
        let segment = n + 1;
        let text = &bytes[line.clone()];
        let k = kind(text);
        let malformed = Err(BatchError::Malformed { segment });
        if k != Kind::Other {
            if let Some((start, end)) = open.take() {
                let group = batch.groups.last_mut().expect("a message is in a group");
                group.messages.push(start..end);
            }
        }
        if batch.closed {
            return malformed; // anything after the FTS
        }
        let group_open = batch.groups.last().is_some_and(|g| !g.closed);
        match k {
            Kind::Fhs if segment == 1 => batch.file = Some(envelope_header(text)),
            Kind::Fhs => return malformed,
            Kind::Bhs => batch.groups.push(Group {
                header: Some(envelope_header(text)),
                ..Group::default()
            }),
            Kind::Msh => {
                if !group_open {
                    // Messages right after the FHS form a group without a BHS.
                    if batch.file.is_none() || !batch.groups.is_empty() {
                        return malformed;
                    }
                    batch.groups.push(Group::default());
                }
                count += 1;
                if count > max_messages {
                    return Err(BatchError::TooManyMessages {
                        limit: max_messages,
                    });
                }
                open = Some((line.start, next));
            }
            Kind::Bts if group_open => {
                let group = batch.groups.last_mut().expect("checked");
                group.declared_count = trailer_count(text);
                group.closed = true;
            }
            Kind::Bts => return malformed,
            Kind::Fts => {
                batch.declared_groups = trailer_count(text);
                batch.closed = true;
            }
            Kind::Other => match &mut open {
                Some((_, end)) => *end = next,
                None => return malformed,
            },
        }
    }
    if let Some((start, end)) = open {
        let group = batch.groups.last_mut().expect("a message is in a group");
        group.messages.push(start..end);
    }
    if count == 0 {
        return Err(BatchError::Empty);
    }
    Ok(batch)
}

impl Batch {
    /// How many messages the batch holds.
    pub fn message_count(&self) -> usize {
        self.groups.iter().map(|g| g.messages.len()).sum()
    }

    /// The byte ranges of all messages, in order.
    pub fn message_ranges(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.groups.iter().flat_map(|g| g.messages.iter().cloned())
    }

    /// The envelope's flaws that did not stop processing.
    pub fn warnings(&self) -> Vec<BatchWarning> {
        let mut out = Vec::new();
        for (i, g) in self.groups.iter().enumerate() {
            let count = g.declared_count.as_deref();
            if count.is_some_and(|c| c.parse::<usize>().ok() != Some(g.messages.len())) {
                out.push(BatchWarning::MessageCountMismatch {
                    group: i + 1,
                    actual: g.messages.len(),
                });
            }
        }
        let groups = self.declared_groups.as_deref();
        if groups.is_some_and(|c| c.parse::<usize>().ok() != Some(self.groups.len())) {
            out.push(BatchWarning::GroupCountMismatch {
                actual: self.groups.len(),
            });
        }
        let unclosed = self.groups.iter().any(|g| g.header.is_some() && !g.closed);
        if unclosed || (self.file.is_some() && !self.closed) {
            out.push(BatchWarning::TrailerMissing);
        }
        out
    }
}

/// The rejection for a batch that reached a path taking one message: the batch's own
/// error when it cannot be split, else [`Reason::BatchEnvelope`].
pub fn rejection(bytes: &[u8]) -> Rejection {
    match split(bytes, MAX_BATCH_MESSAGES) {
        Ok(_) => Rejection::new(Reason::BatchEnvelope),
        Err(e) => e.rejection(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "MSH|^~\\&|APP|FAC|R|RF|20240101||ADT^A01|M1|P|2.5\rPID|1\r";
    const B: &str = "MSH|^~\\&|APP|FAC|R|RF|20240101||ADT^A02|M2|P|2.5\rPID|2\rPV1|1\r";

    fn messages(input: &str) -> Vec<String> {
        let b = split(input.as_bytes(), MAX_BATCH_MESSAGES).unwrap();
        b.message_ranges().map(|r| input[r].to_string()).collect()
    }

    #[test]
    fn file_with_one_batch() {
        let input = format!(
            "FHS|^~\\&|SAPP|SFAC|RAPP|RFAC|20240101||name|comment|F77|\rBHS|^~\\&|BAPP|BFAC|BR|BRF|20240101||||B77\r{A}{B}BTS|2\rFTS|1\r"
        );
        let b = split(input.as_bytes(), 10).unwrap();
        let f = b.file.as_ref().unwrap();
        assert_eq!(
            (
                f.sending_application.as_str(),
                f.sending_facility.as_str(),
                f.receiving_application.as_str(),
                f.receiving_facility.as_str(),
                f.control_id.as_str(),
                f.encoding_chars.as_str(),
                f.field_sep
            ),
            ("SAPP", "SFAC", "RAPP", "RFAC", "F77", "^~\\&", '|')
        );
        assert_eq!(b.groups.len(), 1);
        let g = &b.groups[0];
        assert_eq!(g.header.as_ref().unwrap().control_id, "B77");
        assert_eq!(g.header.as_ref().unwrap().sending_facility, "BFAC");
        assert_eq!(g.declared_count.as_deref(), Some("2"));
        assert_eq!(b.declared_groups.as_deref(), Some("1"));
        assert!(b.closed && g.closed);
        assert_eq!(messages(&input), [A, B], "bytes exactly as in the batch");
        assert_eq!(b.message_count(), 2);
        assert!(b.warnings().is_empty());
    }

    #[test]
    fn batch_without_file_header_and_lf_separators() {
        let input = format!(
            "BHS|^~\\&|A|B|C|D|||||X1\n{}{}BTS|2\n",
            A.replace('\r', "\n"),
            B.replace('\r', "\r\n")
        );
        let got = messages(&input);
        assert_eq!(got, [A.replace('\r', "\n"), B.replace('\r', "\r\n")]);
        let b = split(input.as_bytes(), 10).unwrap();
        assert!(b.file.is_none());
        assert!(b.warnings().is_empty());
    }

    #[test]
    fn bom_whitespace_blank_lines_and_missing_trailing_terminator() {
        let input = format!("\u{FEFF}\r\n  \nBHS|^~\\&\r\r{A}\r\n\r{}", B.trim_end());
        let got = messages(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], A, "blank lines are not part of a message");
        assert_eq!(got[1], B.trim_end());
        assert!(is_batch(input.as_bytes()));
        assert_eq!(
            split(input.as_bytes(), 10).unwrap().warnings(),
            [BatchWarning::TrailerMissing]
        );
    }

    #[test]
    fn several_groups_and_messages_right_after_fhs() {
        let input = format!("FHS|^~\\&\rBHS|^~\\&\r{A}BTS|1\rBHS|^~\\&\r{B}{A}BTS|2\rFTS|2\r");
        let b = split(input.as_bytes(), 10).unwrap();
        assert_eq!(
            b.groups
                .iter()
                .map(|g| g.messages.len())
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(b.warnings().is_empty());
        let input = format!("FHS|^~\\&\r{A}{B}FTS|1\r");
        let b = split(input.as_bytes(), 10).unwrap();
        assert_eq!(b.groups.len(), 1);
        assert!(b.groups[0].header.is_none());
        assert_eq!(messages(&input), [A, B]);
    }

    #[test]
    fn wrong_counts_are_warnings_not_errors() {
        let input = format!("FHS|^~\\&\rBHS|^~\\&\r{A}{B}BTS|3\rFTS|x\r");
        let b = split(input.as_bytes(), 10).unwrap();
        assert_eq!(b.message_count(), 2);
        let w = b.warnings();
        assert_eq!(
            w,
            [
                BatchWarning::MessageCountMismatch {
                    group: 1,
                    actual: 2
                },
                BatchWarning::GroupCountMismatch { actual: 1 }
            ]
        );
        assert!(w.iter().all(|w| w.code() == "BATCH_COUNT_MISMATCH"));
        // A bare BTS / FTS (no count) is no mismatch.
        let input = format!("FHS|^~\\&\rBHS|^~\\&\r{A}BTS\rFTS\r");
        assert!(split(input.as_bytes(), 10).unwrap().warnings().is_empty());
    }

    #[test]
    fn envelope_without_messages_is_empty() {
        for input in ["FHS|^~\\&\rFTS|0\r", "BHS|^~\\&\rBTS|0", "BHS|^~\\&"] {
            let e = split(input.as_bytes(), 10).unwrap_err();
            assert_eq!(e, BatchError::Empty, "{input:?}");
            assert_eq!(e.rejection().reason.code(), "BATCH_EMPTY");
        }
    }

    #[test]
    fn too_many_messages() {
        let input = format!("BHS|^~\\&\r{A}{B}{A}BTS|3\r");
        assert_eq!(split(input.as_bytes(), 3).unwrap().message_count(), 3);
        let e = split(input.as_bytes(), 2).unwrap_err();
        assert_eq!(e, BatchError::TooManyMessages { limit: 2 });
        let r = e.rejection();
        assert_eq!(
            (r.reason.code(), r.detail.as_deref()),
            ("BATCH_TOO_MANY_MESSAGES", Some("limit 2"))
        );
    }

    #[test]
    fn malformed_envelopes_name_the_segment() {
        let cases = [
            // A segment before any MSH.
            (format!("BHS|^~\\&\rPID|1\r{A}BTS|1\r"), 2),
            // A second FHS.
            (format!("FHS|^~\\&\rFHS|^~\\&\r{A}"), 2),
            // A segment after the BTS.
            (format!("BHS|^~\\&\r{A}BTS|1\rPID|1\r"), 5),
            // A message after the BTS without a new BHS.
            (format!("BHS|^~\\&\r{A}BTS|1\r{B}"), 5),
            // Anything after the FTS.
            (format!("FHS|^~\\&\r{A}FTS|1\rBHS|^~\\&\r"), 5),
            // A BTS with no open batch.
            (format!("FHS|^~\\&\r{A}BTS|1\rBTS|1\r"), 5),
            // Garbage lines outside a message.
            (format!("FHS|^~\\&\rnot hl7\r{A}"), 2),
        ];
        for (input, segment) in cases {
            let e = split(input.as_bytes(), 10).unwrap_err();
            assert_eq!(e, BatchError::Malformed { segment }, "{input:?}");
            let r = e.rejection();
            assert_eq!(r.reason.code(), "BATCH_MALFORMED");
            assert_eq!(r.detail, Some(format!("segment {segment}")));
            assert!(!e.to_string().contains("PID"), "no input in errors");
        }
    }

    #[test]
    fn unknown_segments_inside_a_message_stay_with_it() {
        let input = format!("BHS|^~\\&\rMSH|^~\\&|A\rxx|broken\rZ01|1\r{B}BTS|2\r");
        assert_eq!(messages(&input), ["MSH|^~\\&|A\rxx|broken\rZ01|1\r", B]);
    }

    #[test]
    fn recognition() {
        assert!(is_batch(b"FHS|^~\\&"));
        assert!(is_batch(b"\xEF\xBB\xBF \r\nBHS#$~\\&"));
        assert!(!is_batch(b"MSH|^~\\&"));
        assert!(!is_batch(b"FHSX"));
        assert!(!is_batch(b"FHS"));
        assert!(!is_batch(b""));
        assert!(!is_batch(b"\xEF\xBB\xBF"));
        assert_eq!(split(b"MSH|^~\\&", 10), Err(BatchError::NotABatch));
        assert_eq!(
            rejection(format!("BHS|^~\\&\r{A}").as_bytes()).reason,
            Reason::BatchEnvelope
        );
        assert_eq!(rejection(b"BHS|^~\\&\rBTS|0").reason, Reason::BatchEmpty);
    }

    #[test]
    fn decoding_a_batch_as_one_message_names_why() {
        let code = |b: &[u8]| crate::hl7::decode(b).unwrap_err().0.reason.code();
        assert_eq!(code(b"BHS|^~\\&\rBTS|0"), "BATCH_EMPTY");
        assert_eq!(code(b"BHS|^~\\&\rPID|1\r"), "BATCH_MALFORMED");
        assert_eq!(code(format!("BHS|^~\\&\r{A}").as_bytes()), "BATCH_ENVELOPE");
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                format!("BHS|^~\\&\r{A}")
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert!(!is_batch(&utf16), "UTF-16 batches are not split");
        assert_eq!(code(&utf16), "BATCH_ENVELOPE");
    }

    #[test]
    fn other_delimiters_in_the_envelope() {
        let input = format!("BHS#$~\\&#APP#FAC#R#RF#####C9\r{A}BTS#1\r");
        let b = split(input.as_bytes(), 10).unwrap();
        let h = b.groups[0].header.as_ref().unwrap();
        assert_eq!(
            (
                h.field_sep,
                h.control_id.as_str(),
                h.sending_application.as_str()
            ),
            ('#', "C9", "APP")
        );
        assert_eq!(b.groups[0].declared_count.as_deref(), Some("1"));
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        let mut x: u32 = 7;
        for _ in 0..2000 {
            let mut bytes = b"BHS|".to_vec();
            for _ in 0..(x % 64) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let alphabet = b"MSHBTSFTS|\r\n\x00A";
                bytes.push(alphabet[(x >> 16) as usize % alphabet.len()]);
            }
            let _ = split(&bytes, 5);
        }
    }
}
