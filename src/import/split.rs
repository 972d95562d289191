//! Cutting an input stream into messages, one at a time (bounded memory): HL7 v2 text
//! (one or many messages, FHS/BHS batch envelopes dropped), MLLP dumps, FHIR NDJSON, and
//! whole documents (one FHIR resource or Bundle). Each message comes with the offset just
//! after its last byte, the position a checkpoint may resume from.

use intake_pipeline::Format;
use std::io::{self, BufRead};

/// How an input is cut into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HL7 v2 text: a message starts at each `MSH` segment; segments end at CR, LF or
    /// CRLF; `FHS`/`BHS`/`BTS`/`FTS` envelope segments are dropped.
    Hl7,
    /// MLLP frames `0x0B … 0x1C 0x0D`, back to back.
    Mllp,
    /// FHIR NDJSON: one resource per line.
    Ndjson,
    /// The whole input is one message in this format (a FHIR resource or Bundle, or
    /// UTF-16 HL7 v2).
    Document(Format),
}

impl Kind {
    /// The pipeline format of this input's messages.
    pub fn format(self) -> Format {
        match self {
            Kind::Hl7 | Kind::Mllp => Format::Hl7v2,
            Kind::Ndjson => Format::FhirJson,
            Kind::Document(f) => f,
        }
    }

    /// Decides by content (the input's first bytes), with the extension as a hint.
    pub fn detect(prefix: &[u8], extension: Option<&str>) -> Kind {
        let ext = extension.map(str::to_ascii_lowercase);
        let ext = ext.as_deref();
        if prefix.starts_with(&[0xFF, 0xFE]) || prefix.starts_with(&[0xFE, 0xFF]) {
            return match ext {
                Some("xml") => Kind::Document(Format::FhirXml),
                Some("json") => Kind::Document(Format::FhirJson),
                _ => Kind::Document(Format::Hl7v2),
            };
        }
        let body = prefix.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(prefix);
        let start = body.iter().position(|b| !b.is_ascii_whitespace());
        let body = &body[start.unwrap_or(body.len())..];
        match body.first() {
            Some(0x0B) => Kind::Mllp,
            Some(b'<') => Kind::Document(Format::FhirXml),
            Some(b'{') if matches!(ext, Some("ndjson" | "jsonl")) || is_ndjson(body) => {
                Kind::Ndjson
            }
            Some(b'{' | b'[') => Kind::Document(Format::FhirJson),
            None if matches!(ext, Some("ndjson" | "jsonl")) => Kind::Ndjson,
            _ => Kind::Hl7,
        }
    }
}

/// Whether `body` starts with a whole JSON value on its first line followed by more
/// content: a single document cannot hold two top-level values.
fn is_ndjson(body: &[u8]) -> bool {
    let Some(nl) = body.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let more = body[nl..].iter().any(|b| !b.is_ascii_whitespace());
    more && serde_json::from_slice::<serde::de::IgnoredAny>(&body[..nl]).is_ok()
}

/// One message cut from an input.
#[derive(Debug, PartialEq, Eq)]
pub struct Piece {
    /// Its bytes, verbatim (empty when `oversized`).
    pub bytes: Vec<u8>,
    /// The input offset just after its last byte.
    pub end: u64,
    /// Set (to its size) when it exceeded the limit: its bytes were not kept.
    pub oversized: Option<u64>,
    /// Set when the input ended inside an MLLP frame.
    pub truncated: bool,
}

/// Cuts a reader into [`Piece`]s of one [`Kind`].
pub struct Splitter<R> {
    r: R,
    kind: Kind,
    limit: usize,
    /// Offset of the next unread byte.
    pos: u64,
    /// HL7: the message being assembled (raw bytes from its first segment).
    cur: Buffer,
    /// Offset just after the current message's last non-blank segment.
    cur_end: u64,
    /// Bytes kept and counted in `cur` up to its last non-blank segment (0: no message).
    cur_content: (usize, u64),
    seg: Buffer,
    done: bool,
    /// Bytes outside MLLP frames that were ignored.
    pub ignored: u64,
}

/// A byte buffer that stops growing at a limit but keeps counting.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    total: u64,
}

impl Buffer {
    fn push(&mut self, data: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&data[..room.min(data.len())]);
        self.total += data.len() as u64;
    }

    fn over(&self, limit: usize) -> bool {
        self.total > limit as u64
    }

    fn take(&mut self) -> Buffer {
        std::mem::take(self)
    }
}

impl<R: BufRead> Splitter<R> {
    /// A splitter reading `r`, whose first byte is at input offset `pos`; messages larger
    /// than `limit` bytes come back as oversized.
    pub fn new(r: R, kind: Kind, limit: usize, pos: u64) -> Self {
        Splitter {
            r,
            kind,
            limit,
            pos,
            cur: Buffer::default(),
            cur_end: pos,
            cur_content: (0, 0),
            seg: Buffer::default(),
            done: false,
            ignored: 0,
        }
    }

    /// The next message, `None` at the end of the input.
    pub fn next_piece(&mut self) -> io::Result<Option<Piece>> {
        if self.done {
            return Ok(None);
        }
        let piece = match self.kind {
            Kind::Hl7 => self.next_hl7()?,
            Kind::Mllp => self.next_frame()?,
            Kind::Ndjson => self.next_line()?,
            Kind::Document(_) => self.whole()?,
        };
        self.done = piece.is_none();
        Ok(piece)
    }

    fn piece(&self, buf: Buffer, end: u64) -> Piece {
        let oversized = buf.over(self.limit).then_some(buf.total);
        let bytes = if oversized.is_some() {
            Vec::new()
        } else {
            buf.bytes
        };
        Piece {
            bytes,
            end,
            oversized,
            truncated: false,
        }
    }

    /// Reads up to (not including) the next byte in `stops` into `self.seg`; returns that
    /// byte (consumed), or `None` at the end of the input.
    fn read_until(&mut self, stops: &[u8]) -> io::Result<Option<u8>> {
        loop {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            match buf.iter().position(|b| stops.contains(b)) {
                Some(i) => {
                    let stop = buf[i];
                    self.seg.push(&buf[..i], self.limit);
                    self.r.consume(i + 1);
                    self.pos += i as u64 + 1;
                    return Ok(Some(stop));
                }
                None => {
                    let n = buf.len();
                    self.seg.push(buf, self.limit);
                    self.r.consume(n);
                    self.pos += n as u64;
                }
            }
        }
    }

    /// Ends the current HL7 message: its bytes up to its last non-blank segment.
    fn end_message(&mut self) -> Piece {
        let mut m = self.cur.take();
        m.bytes.truncate(self.cur_content.0);
        m.total = self.cur_content.1;
        self.cur_content = (0, 0);
        self.piece(m, self.cur_end)
    }

    fn next_hl7(&mut self) -> io::Result<Option<Piece>> {
        loop {
            self.seg = Buffer::default();
            let start = self.pos;
            let stop = self.read_until(b"\r\n")?;
            let seg = self
                .seg
                .bytes
                .strip_prefix(b"\xEF\xBB\xBF")
                .unwrap_or(&self.seg.bytes);
            let blank = seg.iter().all(u8::is_ascii_whitespace);
            let envelope = [b"FHS", b"BHS", b"BTS", b"FTS"].iter().any(|e| {
                seg.starts_with(*e) && seg.get(3).is_none_or(|b| !b.is_ascii_alphanumeric())
            });
            let msh = seg.starts_with(b"MSH");
            let mut out = None;
            if self.cur_content.1 > 0 && (envelope || msh) {
                out = Some(self.end_message());
            }
            if !envelope && (!blank || self.cur_content.1 > 0) {
                // Part of a message (a new one after an MSH): its bytes verbatim.
                let seg = self.seg.take();
                self.cur.push(&seg.bytes, self.limit);
                self.cur.total += seg.total - seg.bytes.len() as u64;
                if !blank {
                    self.cur_end = start + seg.total;
                    self.cur_content = (self.cur.bytes.len(), self.cur.total);
                }
                if let Some(b) = stop {
                    self.cur.push(&[b], self.limit);
                }
            }
            if out.is_none() && stop.is_none() && self.cur_content.1 > 0 {
                out = Some(self.end_message());
            }
            if out.is_some() || stop.is_none() {
                return Ok(out);
            }
        }
    }

    fn next_frame(&mut self) -> io::Result<Option<Piece>> {
        // Skip to the start block; anything between frames is ignored (and counted).
        self.seg = Buffer::default();
        let before = self.pos;
        let found = self.read_until(&[0x0B])?;
        let skipped = self.pos - before - u64::from(found.is_some());
        let junk = self
            .seg
            .bytes
            .iter()
            .filter(|b| !b.is_ascii_whitespace())
            .count();
        self.ignored += junk as u64 + (skipped - self.seg.bytes.len() as u64);
        if found.is_none() {
            return Ok(None);
        }
        self.seg = Buffer::default();
        let end = self.read_until(&[0x1C])?;
        let frame = self.seg.take();
        let mut piece = self.piece(frame, self.pos);
        match end {
            None => piece.truncated = true,
            Some(_) => {
                // The trailing CR belongs to the frame.
                if self.r.fill_buf()?.first() == Some(&0x0D) {
                    self.r.consume(1);
                    self.pos += 1;
                }
                piece.end = self.pos;
            }
        }
        Ok(Some(piece))
    }

    fn next_line(&mut self) -> io::Result<Option<Piece>> {
        loop {
            self.seg = Buffer::default();
            let start = self.pos;
            let stop = self.read_until(b"\n")?;
            let mut line = self.seg.take();
            if line.bytes.last() == Some(&b'\r') && !line.over(self.limit) {
                line.bytes.pop();
                line.total -= 1;
            }
            if !line.bytes.iter().all(u8::is_ascii_whitespace) || line.over(self.limit) {
                let end = start + line.total;
                return Ok(Some(self.piece(line, end)));
            }
            if stop.is_none() {
                return Ok(None);
            }
        }
    }

    fn whole(&mut self) -> io::Result<Option<Piece>> {
        self.seg = Buffer::default();
        while self.read_until(&[])?.is_some() {}
        let doc = self.seg.take();
        if doc.bytes.iter().all(u8::is_ascii_whitespace) && !doc.over(self.limit) {
            return Ok(None);
        }
        Ok(Some(self.piece(doc, self.pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(kind: Kind, input: &[u8], limit: usize, start: u64) -> Vec<Piece> {
        let mut s = Splitter::new(&input[start as usize..], kind, limit, start);
        let mut out = Vec::new();
        while let Some(p) = s.next_piece().unwrap() {
            out.push(p);
        }
        out
    }

    fn messages(pieces: &[Piece]) -> Vec<(&str, u64)> {
        pieces
            .iter()
            .map(|p| (std::str::from_utf8(&p.bytes).unwrap(), p.end))
            .collect()
    }

    #[test]
    fn hl7_splits_at_msh_with_any_separator_and_keeps_bytes() {
        let f = b"\xEF\xBB\xBFMSH|a\r\nPID|1\r\n\r\nMSH|b\nPID|2\n\n\nMSH|c\rPID|3";
        let p = split(Kind::Hl7, f, 1 << 20, 0);
        assert_eq!(
            messages(&p),
            [
                ("\u{FEFF}MSH|a\r\nPID|1", 15),
                ("MSH|b\nPID|2", 30),
                ("MSH|c\rPID|3", 44)
            ]
        );
        // Resuming at a message's end gives the rest.
        assert_eq!(
            messages(&split(Kind::Hl7, f, 1 << 20, 15))[0],
            ("MSH|b\nPID|2", 30)
        );
    }

    #[test]
    fn batch_envelopes_are_dropped() {
        let f = b"FHS|^~\\&\rBHS|^~\\&\rMSH|a\rPID|1\rMSH|b\rBTS|2\rFTS|1\r";
        assert_eq!(
            messages(&split(Kind::Hl7, f, 1 << 20, 0)),
            [("MSH|a\rPID|1", 29), ("MSH|b", 35)]
        );
    }

    #[test]
    fn text_before_the_first_msh_is_a_message_of_its_own() {
        let f = b"garbage\nMSH|a\n";
        assert_eq!(
            messages(&split(Kind::Hl7, f, 1 << 20, 0)),
            [("garbage", 7), ("MSH|a", 13)]
        );
        assert!(split(Kind::Hl7, b"\n \r\n", 100, 0).is_empty());
    }

    #[test]
    fn oversized_messages_keep_no_bytes_and_the_next_one_is_whole() {
        let f = b"MSH|0123456789\rPID|0123456789\rMSH|ok\r";
        let p = split(Kind::Hl7, f, 16, 0);
        assert_eq!(p[0].oversized, Some(29));
        assert!(p[0].bytes.is_empty());
        assert_eq!(
            (p[1].bytes.as_slice(), p[1].oversized),
            (&b"MSH|ok"[..], None)
        );
    }

    #[test]
    fn mllp_frames_back_to_back() {
        let f = b"\x0bMSH|a\rPID|1\r\x1c\x0d\n\x0bMSH|b\x1c\x0dzz\x0bMSH|c";
        let mut s = Splitter::new(&f[..], Kind::Mllp, 1 << 20, 0);
        let a = s.next_piece().unwrap().unwrap();
        assert_eq!((a.bytes.as_slice(), a.end), (&b"MSH|a\rPID|1\r"[..], 15));
        let b = s.next_piece().unwrap().unwrap();
        assert_eq!(
            (b.bytes.as_slice(), b.end, b.truncated),
            (&b"MSH|b"[..], 24, false)
        );
        let c = s.next_piece().unwrap().unwrap();
        assert!(c.truncated);
        assert!(s.next_piece().unwrap().is_none());
        assert_eq!(s.ignored, 2);
    }

    #[test]
    fn ndjson_lines_and_documents() {
        let f = b"{\"a\":1}\r\n\n{\"b\":2}\n";
        assert_eq!(
            messages(&split(Kind::Ndjson, f, 100, 0)),
            [("{\"a\":1}", 7), ("{\"b\":2}", 17)]
        );
        let doc = split(
            Kind::Document(Format::FhirJson),
            b"{\n \"x\": 1\n}\n",
            100,
            0,
        );
        assert_eq!(messages(&doc), [("{\n \"x\": 1\n}\n", 12)]);
    }

    #[test]
    fn kinds_are_detected_by_content_with_the_extension_as_a_hint() {
        assert_eq!(Kind::detect(b"\x0bMSH|", None), Kind::Mllp);
        assert_eq!(Kind::detect(b"\r\nMSH|", Some("json")), Kind::Hl7);
        assert_eq!(Kind::detect(b"FHS|^~", None), Kind::Hl7);
        assert_eq!(
            Kind::detect(b"{\"a\":1}\n{\"b\":2}\n", Some("json")),
            Kind::Ndjson
        );
        assert_eq!(Kind::detect(b"{\"a\":1}\n", Some("NDJSON")), Kind::Ndjson);
        assert_eq!(
            Kind::detect(b"{\n\"resourceType\": \"Bundle\"\n}", None),
            Kind::Document(Format::FhirJson)
        );
        assert_eq!(
            Kind::detect(b" <Patient/>", None),
            Kind::Document(Format::FhirXml)
        );
        assert_eq!(
            Kind::detect(b"\xFF\xFEM\0", None),
            Kind::Document(Format::Hl7v2)
        );
    }
}
