//! Bytes off the wire → normalized HL7 v2 message text.
//!
//! [`decode`] takes the raw bytes of one HL7 v2 message (MLLP framing already
//! removed), checks that it really is a single message starting with an `MSH`
//! segment, picks the character set declared in MSH-18, decodes the bytes to a
//! Rust [`String`] and normalizes the segment separators so that segments are
//! separated by a single CR (`\r`) with no trailing CR.
//!
//! Decoding never fails on bad bytes: if the bytes are not valid for the
//! declared character set, windows-1252 (which maps every byte) is used instead
//! and [`Decoded::fallback`] is set so the caller can flag the message.
//!
//! Errors never carry any fragment of the input (it is patient data); they only
//! carry a fixed code, see [`DecodeError::code`].

use std::borrow::Cow;

use encoding_rs::Encoding;

/// A character set that a message was decoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// 7-bit US-ASCII (MSH-18 `ASCII`).
    Ascii,
    /// UTF-8 (MSH-18 `UNICODE UTF-8`); also used when MSH-18 is empty.
    Utf8,
    /// ISO-8859-1, decoded exactly (byte `0xNN` → `U+00NN`).
    Latin1,
    /// ISO-8859-15 (Latin-9, has `€` at `0xA4`).
    Latin9,
    /// windows-1252; also the fallback for bytes invalid in the declared set.
    Windows1252,
    /// UTF-16 (only recognized by a byte order mark).
    Utf16,
    /// ISO-8859-2 (Central European).
    Latin2,
    /// ISO-8859-3 (South European).
    Latin3,
    /// ISO-8859-4 (North European).
    Latin4,
    /// ISO-8859-5 (Cyrillic).
    Cyrillic,
    /// ISO-8859-6 (Arabic).
    Arabic,
    /// ISO-8859-7 (Greek).
    Greek,
    /// ISO-8859-8 (Hebrew, visual order as in the ISO standard).
    Hebrew,
    /// ISO-8859-9 (Turkish). Decoded with the windows-1254 table, which equals
    /// ISO-8859-9 except that `0x80..=0x9F` are punctuation instead of C1
    /// controls (the same practical choice as windows-1252 for Latin-1).
    Latin5,
}

impl Charset {
    /// The HL7 (MSH-18 style) name of the character set, e.g. `"8859/1"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Charset::Ascii => "ASCII",
            Charset::Utf8 => "UTF-8",
            Charset::Latin1 => "8859/1",
            Charset::Latin9 => "8859/15",
            Charset::Windows1252 => "windows-1252",
            Charset::Utf16 => "UTF-16",
            Charset::Latin2 => "8859/2",
            Charset::Latin3 => "8859/3",
            Charset::Latin4 => "8859/4",
            Charset::Cyrillic => "8859/5",
            Charset::Arabic => "8859/6",
            Charset::Greek => "8859/7",
            Charset::Hebrew => "8859/8",
            Charset::Latin5 => "8859/9",
        }
    }
}

/// The result of [`decode`]: normalized message text plus how it was decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The message text: segments separated by a single `\r`, no empty
    /// segments, no trailing `\r`, no leading/trailing whitespace.
    pub text: String,
    /// MSH-18 as written (first repetition, trimmed); `None` when empty or
    /// absent. Charset names are not PHI.
    pub declared: Option<String>,
    /// The character set actually used to decode the bytes.
    pub charset: Charset,
    /// `true` when the bytes were invalid for the declared (or, with no
    /// declaration, the assumed UTF-8) charset and windows-1252 was used.
    pub fallback: bool,
}

/// Why [`decode`] refused a message. Carries no fragment of the input.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The message does not start with an `MSH` segment.
    #[error("not an HL7 v2 message (no MSH header)")]
    NotHl7,
    /// The bytes start with a batch/file header (`FHS` or `BHS`): a batch, to be split
    /// into its messages first ([`super::batch::split`]).
    #[error("batch envelope (FHS/BHS): split it into messages first")]
    BatchEnvelope,
    /// MSH-18 names a character set this module cannot decode.
    #[error("unsupported charset in MSH-18")]
    UnsupportedCharset,
    /// Nothing but whitespace/NUL bytes.
    #[error("empty message")]
    Empty,
}

impl DecodeError {
    /// A stable machine-readable code for the error.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::NotHl7 => "NOT_HL7",
            DecodeError::BatchEnvelope => "BATCH_ENVELOPE",
            DecodeError::UnsupportedCharset => "UNSUPPORTED_CHARSET",
            DecodeError::Empty => "EMPTY_MESSAGE",
        }
    }
}

const UTF8_BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

/// Decode one HL7 v2 message from raw bytes into normalized text.
///
/// See the module documentation for the rules. In short: strip a BOM (a UTF-16
/// BOM switches to UTF-16), skip leading whitespace/NUL, require `MSH` plus a
/// field separator, pick the charset from MSH-18, decode (falling back to
/// windows-1252 on invalid bytes), then normalize CRLF/LF to CR, drop empty
/// segments and trailing whitespace.
///
/// # Errors
///
/// [`DecodeError::Empty`] for nothing but whitespace/NUL,
/// [`DecodeError::BatchEnvelope`] for an `FHS`/`BHS` start,
/// [`DecodeError::NotHl7`] for anything else not starting with `MSH` plus a
/// field separator, [`DecodeError::UnsupportedCharset`] for an unknown MSH-18
/// (or `UNICODE UTF-16` without a byte order mark).
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return decode_utf16(bytes);
    }
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let body = trim_edges(bytes);
    if body.is_empty() {
        return Err(DecodeError::Empty);
    }
    let declared_raw = check_header(body)?;
    let declared = declared_raw.map(|d| String::from_utf8_lossy(d).into_owned());
    let wanted = lookup_charset(declared_raw)?;
    if wanted == Some(Charset::Utf16) {
        // UTF-16 without a BOM: the header could not even have been read as
        // ASCII if it really were UTF-16, so the declaration is inconsistent.
        return Err(DecodeError::UnsupportedCharset);
    }
    let normalized = normalize_segments(body);
    let (text, charset, fallback) = decode_bytes(normalized, wanted);
    Ok(Decoded {
        text,
        declared,
        charset,
        fallback,
    })
}

/// UTF-16 with a byte order mark: decode everything first, then apply the same
/// header checks and normalization on the text. The BOM wins over MSH-18.
fn decode_utf16(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let (encoding, bom_len) = Encoding::for_bom(bytes).unwrap_or((encoding_rs::UTF_16LE, 2));
    let (decoded, _had_errors) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
    // The decoded text may itself begin with a (redundant) U+FEFF.
    let text: &str = decoded.strip_prefix('\u{FEFF}').unwrap_or(&decoded);
    // Trimming only removes ASCII bytes, so the result stays valid UTF-8 and
    // the boundaries are char boundaries.
    let (start, end) = trim_range(text.as_bytes());
    let body = &text[start..end];
    if body.is_empty() {
        return Err(DecodeError::Empty);
    }
    let declared = check_header(body.as_bytes())?.map(|d| String::from_utf8_lossy(d).into_owned());
    let text = match normalize_segments(body.as_bytes()) {
        Cow::Borrowed(_) => body.to_owned(),
        // Normalization only touches ASCII CR/LF bytes, so this cannot fail;
        // the lossy branch exists only to avoid a panic path.
        Cow::Owned(v) => String::from_utf8(v)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    };
    Ok(Decoded {
        text,
        declared,
        charset: Charset::Utf16,
        fallback: false,
    })
}

/// Bytes skipped at both ends of a message: ASCII whitespace, NUL, and the
/// MLLP framing bytes VT (0x0B) and FS (0x1C) in case a frame leaks through.
fn is_edge_junk(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0 || b == 0x0B || b == 0x1C
}

fn trim_edges(bytes: &[u8]) -> &[u8] {
    let (start, end) = trim_range(bytes);
    &bytes[start..end]
}

/// Byte range of `bytes` without leading/trailing [`is_edge_junk`] bytes.
fn trim_range(bytes: &[u8]) -> (usize, usize) {
    let start = bytes
        .iter()
        .position(|&b| !is_edge_junk(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_edge_junk(b))
        .map_or(start, |i| i + 1);
    (start, end)
}

/// A field separator must be printable ASCII punctuation (so not
/// alphanumeric, not CR/LF, not whitespace or a control byte, not non-ASCII).
fn is_field_separator(b: Option<&u8>) -> bool {
    matches!(b, Some(b) if b.is_ascii_punctuation())
}

/// Check the segment header and return MSH-18 (first repetition, trimmed, or
/// `None` if empty/absent).
fn check_header(body: &[u8]) -> Result<Option<&[u8]>, DecodeError> {
    let sep_ok = is_field_separator(body.get(3));
    if body.starts_with(b"MSH") && sep_ok {
        Ok(read_msh18(body))
    } else if (body.starts_with(b"FHS") || body.starts_with(b"BHS")) && sep_ok {
        Err(DecodeError::BatchEnvelope)
    } else {
        Err(DecodeError::NotHl7)
    }
}

/// MSH-18 from the first segment. Element 0 is `MSH`, element 1 is MSH-2
/// (the encoding characters), so MSH-n is element n-1.
fn read_msh18(body: &[u8]) -> Option<&[u8]> {
    let sep = body[3];
    let seg_end = body
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(body.len());
    let segment = &body[..seg_end];
    let mut fields = segment.split(|&b| b == sep);
    let encoding_chars = fields.nth(1)?;
    let msh18 = fields.nth(15)?; // elements 2..=16 skipped, element 17 = MSH-18
    let first = match encoding_chars.get(1) {
        Some(&rep) => msh18.split(|&b| b == rep).next().unwrap_or(msh18),
        None => msh18,
    };
    let first = first.trim_ascii();
    if first.is_empty() {
        None
    } else {
        Some(first)
    }
}

/// Map the declared name to a charset. `Ok(None)` means "no declaration".
fn lookup_charset(declared: Option<&[u8]>) -> Result<Option<Charset>, DecodeError> {
    let Some(raw) = declared else {
        return Ok(None);
    };
    // Charset names are short; anything long cannot match.
    if raw.len() > 32 {
        return Err(DecodeError::UnsupportedCharset);
    }
    let upper = raw.to_ascii_uppercase();
    let name = std::str::from_utf8(&upper).map_err(|_| DecodeError::UnsupportedCharset)?;
    let cs = match name {
        "ASCII" | "US-ASCII" => Charset::Ascii,
        "UNICODE UTF-8" | "UTF-8" | "UTF8" | "UNICODE" => Charset::Utf8,
        "CP1252" | "WINDOWS-1252" => Charset::Windows1252,
        "UNICODE UTF-16" | "UTF-16" => Charset::Utf16,
        "LATIN1" | "LATIN-1" => Charset::Latin1,
        "LATIN9" | "LATIN-9" => Charset::Latin9,
        _ => iso_8859_part(name)
            .and_then(|part| match part {
                "1" => Some(Charset::Latin1),
                "2" => Some(Charset::Latin2),
                "3" => Some(Charset::Latin3),
                "4" => Some(Charset::Latin4),
                "5" => Some(Charset::Cyrillic),
                "6" => Some(Charset::Arabic),
                "7" => Some(Charset::Greek),
                "8" => Some(Charset::Hebrew),
                "9" => Some(Charset::Latin5),
                "15" => Some(Charset::Latin9),
                _ => None,
            })
            .ok_or(DecodeError::UnsupportedCharset)?,
    };
    Ok(Some(cs))
}

/// The part number of an ISO-8859 name (`8859/1`, `ISO-8859-1`, `ISO_8859-1`,
/// `ISO8859-1`, `ISO 8859-1`), already uppercased.
fn iso_8859_part(name: &str) -> Option<&str> {
    const PREFIXES: [&str; 5] = ["8859/", "ISO-8859-", "ISO_8859-", "ISO8859-", "ISO 8859-"];
    PREFIXES.iter().find_map(|p| name.strip_prefix(p))
}

/// Normalize segment separators: CRLF → CR, lone LF → CR, and collapse runs of
/// separators (empty segments). `body` must already be trimmed so it neither
/// starts nor ends with CR/LF. Borrowed when nothing changes.
fn normalize_segments(body: &[u8]) -> Cow<'_, [u8]> {
    let mut prev_cr = false;
    let mut first_change = None;
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && prev_cr) {
            first_change = Some(i);
            break;
        }
        prev_cr = b == b'\r';
    }
    let Some(i) = first_change else {
        return Cow::Borrowed(body);
    };
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..i]);
    let mut last_was_sep = out.last() == Some(&b'\r');
    for &b in &body[i..] {
        if b == b'\r' || b == b'\n' {
            if !last_was_sep {
                out.push(b'\r');
                last_was_sep = true;
            }
        } else {
            out.push(b);
            last_was_sep = false;
        }
    }
    Cow::Owned(out)
}

/// Convert to `String` if valid UTF-8 without copying an owned buffer;
/// otherwise hand the bytes back.
fn utf8_string(bytes: Cow<'_, [u8]>) -> Result<String, Cow<'_, [u8]>> {
    match bytes {
        Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| Cow::Borrowed(b)),
        Cow::Owned(v) => String::from_utf8(v).map_err(|e| Cow::Owned(e.into_bytes())),
    }
}

fn windows_1252(bytes: &[u8]) -> String {
    encoding_rs::WINDOWS_1252
        .decode_without_bom_handling(bytes)
        .0
        .into_owned()
}

fn fallback_1252(bytes: &[u8]) -> (String, Charset, bool) {
    (windows_1252(bytes), Charset::Windows1252, true)
}

/// Decode the normalized bytes with the wanted charset (`None` = no
/// declaration). Returns (text, charset used, fallback).
fn decode_bytes(bytes: Cow<'_, [u8]>, wanted: Option<Charset>) -> (String, Charset, bool) {
    let label = wanted.unwrap_or(Charset::Utf8);
    match label {
        // UTF-16 never gets here (BOM path or refused); treat like UTF-8.
        Charset::Utf8 | Charset::Utf16 => match utf8_string(bytes) {
            Ok(text) => (text, Charset::Utf8, false),
            Err(bytes) => fallback_1252(&bytes),
        },
        // Fast path: every supported single-byte charset agrees with ASCII.
        _ if bytes.is_ascii() => match utf8_string(bytes) {
            Ok(text) => (text, label, false),
            Err(bytes) => fallback_1252(&bytes),
        },
        Charset::Ascii => fallback_1252(&bytes),
        Charset::Latin1 => {
            if bytes.iter().any(|b| (0x80..=0x9F).contains(b)) {
                fallback_1252(&bytes)
            } else {
                (
                    bytes.iter().map(|&b| char::from(b)).collect(),
                    Charset::Latin1,
                    false,
                )
            }
        }
        Charset::Windows1252 => (windows_1252(&bytes), Charset::Windows1252, false),
        Charset::Latin9 => single_byte(&bytes, encoding_rs::ISO_8859_15, label),
        Charset::Latin2 => single_byte(&bytes, encoding_rs::ISO_8859_2, label),
        Charset::Latin3 => single_byte(&bytes, encoding_rs::ISO_8859_3, label),
        Charset::Latin4 => single_byte(&bytes, encoding_rs::ISO_8859_4, label),
        Charset::Cyrillic => single_byte(&bytes, encoding_rs::ISO_8859_5, label),
        Charset::Arabic => single_byte(&bytes, encoding_rs::ISO_8859_6, label),
        Charset::Greek => single_byte(&bytes, encoding_rs::ISO_8859_7, label),
        Charset::Hebrew => single_byte(&bytes, encoding_rs::ISO_8859_8, label),
        Charset::Latin5 => single_byte(&bytes, encoding_rs::WINDOWS_1254, label),
    }
}

/// Decode with a single-byte table; bytes unassigned in that table fall back
/// to windows-1252 for the whole message.
fn single_byte(bytes: &[u8], enc: &'static Encoding, cs: Charset) -> (String, Charset, bool) {
    let (text, had_errors) = enc.decode_without_bom_handling(bytes);
    if had_errors {
        fallback_1252(bytes)
    } else {
        (text.into_owned(), cs, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a message whose MSH-18 is `cs` and whose PID-5 holds `name`.
    fn msg(cs: &[u8], name: &[u8]) -> Vec<u8> {
        let mut v =
            b"MSH|^~\\&|APP|FAC|RAPP|RFAC|20240101120000||ADT^A01|MSG1|P|2.5||||||".to_vec();
        v.extend_from_slice(cs);
        v.extend_from_slice(b"\rPID|1||123||");
        v.extend_from_slice(name);
        v
    }

    fn pid5(d: &Decoded) -> &str {
        let pid = d.text.split('\r').nth(1).unwrap();
        pid.split('|').nth(5).unwrap()
    }

    #[test]
    fn charset_names() {
        assert_eq!(Charset::Ascii.name(), "ASCII");
        assert_eq!(Charset::Utf8.name(), "UTF-8");
        assert_eq!(Charset::Latin1.name(), "8859/1");
        assert_eq!(Charset::Latin9.name(), "8859/15");
        assert_eq!(Charset::Windows1252.name(), "windows-1252");
        assert_eq!(Charset::Utf16.name(), "UTF-16");
        assert_eq!(Charset::Latin2.name(), "8859/2");
        assert_eq!(Charset::Latin5.name(), "8859/9");
    }

    #[test]
    fn error_codes_and_messages_are_fixed() {
        let all = [
            (DecodeError::NotHl7, "NOT_HL7"),
            (DecodeError::BatchEnvelope, "BATCH_ENVELOPE"),
            (DecodeError::UnsupportedCharset, "UNSUPPORTED_CHARSET"),
            (DecodeError::Empty, "EMPTY_MESSAGE"),
        ];
        for (e, code) in all {
            assert_eq!(e.code(), code);
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn msh18_field_position_is_correct() {
        let d = decode(&msg(b"UNICODE UTF-8", b"DOE^JOHN")).unwrap();
        assert_eq!(d.declared.as_deref(), Some("UNICODE UTF-8"));
        // MSH-18 is the 18th pipe-delimited position counting MSH-1 as the
        // separator itself: MSH-12 is the version.
        let first = d.text.split('\r').next().unwrap();
        assert_eq!(first.split('|').nth(11), Some("2.5"));
        assert_eq!(first.split('|').nth(17), Some("UNICODE UTF-8"));
    }

    #[test]
    fn plain_ascii_no_declaration() {
        let d = decode(&msg(b"", b"DOE^JOHN")).unwrap();
        assert_eq!(d.declared, None);
        assert_eq!(d.charset, Charset::Utf8);
        assert!(!d.fallback);
        assert_eq!(pid5(&d), "DOE^JOHN");
        assert!(d.text.starts_with("MSH|^~\\&|APP"));
        assert!(!d.text.ends_with('\r'));
    }

    #[test]
    fn no_declaration_utf8_bytes() {
        let d = decode(&msg(b"", "RENÉ^Zoë".as_bytes())).unwrap();
        assert_eq!(d.charset, Charset::Utf8);
        assert!(!d.fallback);
        assert_eq!(pid5(&d), "RENÉ^Zoë");
    }

    #[test]
    fn no_declaration_invalid_utf8_falls_back() {
        let d = decode(&msg(b"", b"REN\xC9")).unwrap();
        assert_eq!(d.charset, Charset::Windows1252);
        assert!(d.fallback);
        assert_eq!(pid5(&d), "RENÉ");
    }

    #[test]
    fn short_msh_has_no_declaration() {
        let d = decode(b"MSH|^~\\&|A|B\rPID|1").unwrap();
        assert_eq!(d.declared, None);
        assert_eq!(d.text, "MSH|^~\\&|A|B\rPID|1");
    }

    #[test]
    fn declared_utf8_valid() {
        for name in [&b"UNICODE UTF-8"[..], b"UTF-8", b"UTF8", b"UNICODE"] {
            let d = decode(&msg(name, "JOS\u{e9}".as_bytes())).unwrap();
            assert_eq!(d.charset, Charset::Utf8);
            assert!(!d.fallback);
            assert_eq!(pid5(&d), "JOSé");
        }
    }

    #[test]
    fn declared_utf8_but_latin1_bytes_falls_back() {
        let d = decode(&msg(b"UNICODE UTF-8", b"JOS\xE9")).unwrap();
        assert_eq!(d.charset, Charset::Windows1252);
        assert!(d.fallback);
        assert_eq!(pid5(&d), "JOSé");
        assert_eq!(d.declared.as_deref(), Some("UNICODE UTF-8"));
    }

    #[test]
    fn declared_ascii() {
        let d = decode(&msg(b"ASCII", b"DOE")).unwrap();
        assert_eq!(d.charset, Charset::Ascii);
        assert!(!d.fallback);
        let d = decode(&msg(b"ASCII", b"CAF\xE9 \x80")).unwrap();
        assert_eq!(d.charset, Charset::Windows1252);
        assert!(d.fallback);
        assert_eq!(pid5(&d), "CAFé €");
    }

    #[test]
    fn latin1_is_exact() {
        let d = decode(&msg(b"8859/1", b"JOS\xE9 \xFF\xA4")).unwrap();
        assert_eq!(d.charset, Charset::Latin1);
        assert!(!d.fallback);
        assert_eq!(pid5(&d), "JOSé ÿ¤");
        for name in [
            &b"ISO-8859-1"[..],
            b"ISO_8859-1",
            b"LATIN1",
            b"iso-8859-1",
            b"latin1",
        ] {
            let d = decode(&msg(name, b"\xE9")).unwrap();
            assert_eq!(d.charset, Charset::Latin1, "{name:?}");
            assert_eq!(pid5(&d), "é");
        }
    }

    #[test]
    fn latin1_with_c1_bytes_uses_1252() {
        // 0x92 is a right single quote in cp1252, a C1 control in 8859-1.
        let d = decode(&msg(b"8859/1", b"O\x92BRI\xC9N")).unwrap();
        assert_eq!(d.charset, Charset::Windows1252);
        assert!(d.fallback);
        assert_eq!(pid5(&d), "O\u{2019}BRIÉN");
    }

    #[test]
    fn latin9_euro() {
        let d = decode(&msg(b"8859/15", b"\xA4 5")).unwrap();
        assert_eq!(d.charset, Charset::Latin9);
        assert!(!d.fallback);
        assert_eq!(pid5(&d), "€ 5");
        let d = decode(&msg(b"ISO-8859-15", b"\xE9\xA4")).unwrap();
        assert_eq!(d.charset, Charset::Latin9);
        assert_eq!(pid5(&d), "é€");
    }

    #[test]
    fn windows_1252_euro() {
        for name in [&b"CP1252"[..], b"WINDOWS-1252", b"windows-1252", b"cp1252"] {
            let d = decode(&msg(name, b"\x80 \xE9")).unwrap();
            assert_eq!(d.charset, Charset::Windows1252);
            assert!(!d.fallback);
            assert_eq!(pid5(&d), "€ é");
        }
    }

    #[test]
    fn other_iso_8859_parts() {
        // 0xB9 is š in 8859-2.
        let d = decode(&msg(b"8859/2", b"\xB9")).unwrap();
        assert_eq!(d.charset, Charset::Latin2);
        assert_eq!(pid5(&d), "š");
        // 0xD0 is Ğ in 8859-9.
        let d = decode(&msg(b"ISO-8859-9", b"\xD0")).unwrap();
        assert_eq!(d.charset, Charset::Latin5);
        assert_eq!(pid5(&d), "Ğ");
        // 0xB1 is Б in 8859-5.
        let d = decode(&msg(b"8859/5", b"\xB1")).unwrap();
        assert_eq!(d.charset, Charset::Cyrillic);
        assert_eq!(pid5(&d), "Б");
        // 0xE1 is α in 8859-7.
        let d = decode(&msg(b"8859/7", b"\xE1")).unwrap();
        assert_eq!(d.charset, Charset::Greek);
        assert_eq!(pid5(&d), "α");
    }

    #[test]
    fn unassigned_byte_in_iso_part_falls_back() {
        // 0xA5 is unassigned in ISO-8859-3.
        let d = decode(&msg(b"8859/3", b"\xA5")).unwrap();
        assert_eq!(d.charset, Charset::Windows1252);
        assert!(d.fallback);
        assert_eq!(pid5(&d), "¥");
    }

    #[test]
    fn unsupported_charsets() {
        for name in [
            &b"ISO IR87"[..],
            b"GB 18030",
            b"8859/10",
            b"EBCDIC",
            b"ISO IR14",
        ] {
            assert_eq!(
                decode(&msg(name, b"X")),
                Err(DecodeError::UnsupportedCharset),
                "{name:?}"
            );
        }
        // Even an all-ASCII message is refused: the declaration is wrong.
        let long = vec![b'A'; 200];
        assert_eq!(
            decode(&msg(&long, b"X")),
            Err(DecodeError::UnsupportedCharset)
        );
        assert_eq!(
            decode(&msg(b"\xFF\xFE", b"X")),
            Err(DecodeError::UnsupportedCharset)
        );
    }

    #[test]
    fn utf16_declared_without_bom_is_unsupported() {
        assert_eq!(
            decode(&msg(b"UNICODE UTF-16", b"X")),
            Err(DecodeError::UnsupportedCharset)
        );
    }

    #[test]
    fn lowercase_and_padded_names() {
        let d = decode(&msg(b"  unicode utf-8 ", "é".as_bytes())).unwrap();
        assert_eq!(d.declared.as_deref(), Some("unicode utf-8"));
        assert_eq!(d.charset, Charset::Utf8);
        let d = decode(&msg(b"iso-8859-15", b"\xA4")).unwrap();
        assert_eq!(d.charset, Charset::Latin9);
        assert_eq!(pid5(&d), "€");
    }

    #[test]
    fn msh18_repetition_uses_first() {
        let d = decode(&msg(b"8859/1~UNICODE UTF-8", b"\xE9")).unwrap();
        assert_eq!(d.declared.as_deref(), Some("8859/1"));
        assert_eq!(d.charset, Charset::Latin1);
        assert_eq!(pid5(&d), "é");
        // Empty first repetition → no declaration.
        let d = decode(&msg(b" ~8859/1", "é".as_bytes())).unwrap();
        assert_eq!(d.declared, None);
        assert_eq!(d.charset, Charset::Utf8);
    }

    #[test]
    fn non_default_delimiters() {
        let raw = b"MSH#*$@%#A#B#C#D#20240101##ADT*A01#1#P#2.5######8859/1$UNICODE\rPID#1###\xE9";
        let d = decode(raw).unwrap();
        assert_eq!(d.declared.as_deref(), Some("8859/1"));
        assert_eq!(d.charset, Charset::Latin1);
        assert!(d.text.ends_with("###é"));
    }

    #[test]
    fn msh18_not_read_past_first_segment() {
        let raw = b"MSH|^~\\&|A\rPID|1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|16|8859/2";
        let d = decode(raw).unwrap();
        assert_eq!(d.declared, None);
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let mut raw = UTF8_BOM.to_vec();
        raw.extend_from_slice(&msg(b"UNICODE UTF-8", "é".as_bytes()));
        let d = decode(&raw).unwrap();
        assert!(d.text.starts_with("MSH|"));
        assert_eq!(pid5(&d), "é");
        assert_eq!(d.charset, Charset::Utf8);
    }

    fn utf16(s: &str, little: bool) -> Vec<u8> {
        let mut out = if little {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for u in s.encode_utf16() {
            let b = if little {
                u.to_le_bytes()
            } else {
                u.to_be_bytes()
            };
            out.extend_from_slice(&b);
        }
        out
    }

    #[test]
    fn utf16_bom_le_and_be() {
        let s =
            "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||UNICODE UTF-16\r\nPID|1||1||Zoë^€\r\n";
        for little in [true, false] {
            let d = decode(&utf16(s, little)).unwrap();
            assert_eq!(d.charset, Charset::Utf16);
            assert!(!d.fallback);
            assert_eq!(d.declared.as_deref(), Some("UNICODE UTF-16"));
            assert_eq!(pid5(&d), "Zoë^€");
            assert!(!d.text.contains('\n'));
            assert!(!d.text.ends_with('\r'));
        }
    }

    #[test]
    fn utf16_bom_errors() {
        assert_eq!(decode(&utf16("  \r\n", true)), Err(DecodeError::Empty));
        assert_eq!(decode(&utf16("<xml/>", true)), Err(DecodeError::NotHl7));
        assert_eq!(
            decode(&utf16("FHS|^~\\&", false)),
            Err(DecodeError::BatchEnvelope)
        );
    }

    #[test]
    fn lf_crlf_and_mixed_separators() {
        let expected = "MSH|^~\\&|A\rPID|1\rPV1|1\rOBX|1";
        for raw in [
            &b"MSH|^~\\&|A\nPID|1\nPV1|1\nOBX|1\n"[..],
            b"MSH|^~\\&|A\r\nPID|1\r\nPV1|1\r\nOBX|1\r\n",
            b"MSH|^~\\&|A\r\nPID|1\nPV1|1\rOBX|1\r",
            b"MSH|^~\\&|A\rPID|1\rPV1|1\rOBX|1",
            b"MSH|^~\\&|A\n\rPID|1\r\rPV1|1\n\nOBX|1",
        ] {
            assert_eq!(decode(raw).unwrap().text, expected, "{raw:?}");
        }
    }

    #[test]
    fn blank_lines_dropped() {
        let d = decode(b"MSH|^~\\&|A\r\n\r\nPID|1\r\n\r\n\r\nPV1|1\r\n\r\n").unwrap();
        assert_eq!(d.text, "MSH|^~\\&|A\rPID|1\rPV1|1");
    }

    #[test]
    fn normalization_with_non_ascii_charsets() {
        let d = decode(&[&msg(b"8859/1", b"\xE9")[..], b"\r\n\r\nPV1|1\n"].concat()).unwrap();
        assert_eq!(d.text.split('\r').nth(2), Some("PV1|1"));
        assert_eq!(pid5(&d), "é");
        let d = decode(&[&msg(b"", "é".as_bytes())[..], b"\n\nPV1|1\n"].concat()).unwrap();
        assert_eq!(d.charset, Charset::Utf8);
        assert_eq!(d.text.split('\r').count(), 3);
    }

    #[test]
    fn leading_and_trailing_junk_trimmed() {
        let d = decode(b"\0\0 \t\r\n\x0bMSH|^~\\&|A\rPID|1  \r\n\0\x1c\r").unwrap();
        assert_eq!(d.text, "MSH|^~\\&|A\rPID|1");
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(decode(b""), Err(DecodeError::Empty));
        assert_eq!(decode(b"   \r\n\t\0\0"), Err(DecodeError::Empty));
        assert_eq!(decode(UTF8_BOM), Err(DecodeError::Empty));
        assert_eq!(decode(&[0xFF, 0xFE]), Err(DecodeError::Empty));
    }

    #[test]
    fn batch_envelopes_rejected() {
        assert_eq!(
            decode(b"FHS|^~\\&|A\rBHS|^~\\&\rMSH|^~\\&|A"),
            Err(DecodeError::BatchEnvelope)
        );
        assert_eq!(
            decode(b"BHS|^~\\&|A\rMSH|^~\\&|A"),
            Err(DecodeError::BatchEnvelope)
        );
        assert_eq!(decode(b"\r\nFHS|^~\\&"), Err(DecodeError::BatchEnvelope));
    }

    #[test]
    fn non_hl7_rejected() {
        for raw in [
            &b"<?xml version=\"1.0\"?><ClinicalDocument/>"[..],
            b"{\"resourceType\":\"Patient\"}",
            b"MSH",
            b"MSH\r|^~\\&",
            b"MSH\n",
            b"MSHX^~\\&",
            b"MSH1^~\\&",
            b"MSH ^~\\&",
            b"MSH\xC3\xA9^~\\&",
            b"msh|^~\\&|A",
            b"PID|1||123",
            b"FHS",
            b"\xE9\xE9\xE9",
        ] {
            assert_eq!(decode(raw), Err(DecodeError::NotHl7), "{raw:?}");
        }
    }

    #[test]
    fn errors_do_not_leak_input() {
        let secret = b"SMITH^JANE";
        let mut raw = b"<xml>".to_vec();
        raw.extend_from_slice(secret);
        let e = decode(&raw).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("SMITH"));
        let e = decode(&msg(b"SMITH^JANE", b"X")).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("SMITH"));
    }

    #[test]
    fn fast_path_keeps_text_identical() {
        let raw = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1||1||DOE^JOHN";
        let d = decode(raw).unwrap();
        assert_eq!(d.text.as_bytes(), &raw[..]);
    }

    #[test]
    fn normalize_segments_borrows_when_unchanged() {
        assert!(matches!(
            normalize_segments(b"MSH|a\rPID|b"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(normalize_segments(b"MSH|a\nPID|b"), Cow::Owned(_)));
        assert!(matches!(
            normalize_segments(b"MSH|a\r\rPID|b"),
            Cow::Owned(_)
        ));
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for n in 0..3000 {
            let mut raw = match n % 3 {
                0 => b"MSH|^~\\&|".to_vec(),
                1 => vec![0xFF, 0xFE],
                _ => Vec::new(),
            };
            for _ in 0..(seed % 64) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                raw.push((seed >> 56) as u8);
            }
            if let Ok(d) = decode(&raw) {
                assert!(!d.text.ends_with('\r'));
                assert!(!d.text.contains('\n'));
                assert!(!d.text.contains("\r\r"));
            }
        }
    }
}
