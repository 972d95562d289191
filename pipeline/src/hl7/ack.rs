//! HL7 v2 acknowledgement (ACK) encoding: MLLP and `POST .../hl7v2` both answer with it.
//!
//! [`build_ack`] renders an ER7 `ACK` message (MSH, MSA and, for a negative
//! acknowledgement with an error, ERR), each segment terminated by `\r`.
//!
//! Values echoed from the inbound header are copied verbatim: they are
//! already in the inbound message's own encoding. Values supplied by us (our
//! error code, the HL7 error code and text, the ACK control id) are escaped
//! with the message's own escape character, so they can never break the
//! segment structure.
//!
//! Nothing built here carries message content beyond the echoed header
//! routing fields and control id; error texts are fixed strings.

use super::escape::{self, Delimiters};
use super::Header;
use chrono::{DateTime, FixedOffset};

/// Field separator used when none (or an unusable one) is known.
const DEFAULT_FIELD_SEP: char = '|';
/// Encoding characters used when none (or malformed ones) are known.
const DEFAULT_ENCODING: &str = "^~\\&";
/// MSH-12 used when the inbound version is unknown or empty.
const DEFAULT_VERSION: &str = "2.5";
/// MSH-11 used when the inbound processing id is unknown or empty.
const DEFAULT_PROCESSING_ID: &str = "P";

/// The acknowledgement class a message earns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// AA / CA.
    Accept,
    /// AE / CE.
    Error,
    /// AR / CR.
    Reject,
}

impl AckCode {
    /// One-letter form stored with the inbound message (`A`, `E`, `R`).
    pub fn as_letter(self) -> &'static str {
        match self {
            AckCode::Accept => "A",
            AckCode::Error => "E",
            AckCode::Reject => "R",
        }
    }

    /// Inverse of [`AckCode::as_letter`].
    pub fn from_letter(s: &str) -> Option<Self> {
        match s {
            "A" => Some(AckCode::Accept),
            "E" => Some(AckCode::Error),
            "R" => Some(AckCode::Reject),
            _ => None,
        }
    }
}

/// The MSA-1 value: original-mode code, or the enhanced-mode (commit acknowledgement)
/// code when `enhanced` is true.
pub fn msa_code(code: AckCode, enhanced: bool) -> &'static str {
    match (code, enhanced) {
        (AckCode::Accept, false) => "AA",
        (AckCode::Error, false) => "AE",
        (AckCode::Reject, false) => "AR",
        (AckCode::Accept, true) => "CA",
        (AckCode::Error, true) => "CE",
        (AckCode::Reject, true) => "CR",
    }
}

/// An error to report in MSA-3 and ERR. Every field is a fixed value chosen
/// by us, never message content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckError<'a> {
    /// Our stable code, e.g. `MAPPING_REQUIRED_FIELD`: ASCII upper snake
    /// case, safe to emit.
    pub code: &'a str,
    /// HL7 table 0357 code, e.g. `207`.
    pub hl7_code: &'a str,
    /// Short fixed English text for that code, never message content.
    pub text: &'a str,
}

/// The delimiters the ACK is written with: the message's own when usable.
pub(super) struct AckDelimiters {
    pub(super) delimiters: Delimiters,
    /// MSH-2 as the ACK writes it (4 characters, or 5 with the truncation character).
    pub(super) encoding: String,
    truncation: Option<char>,
}

/// A character usable as a delimiter: printable, not a letter or digit.
fn is_delim_char(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_control() && !c.is_whitespace()
}

impl AckDelimiters {
    fn new(h: Option<&Header>) -> Self {
        Self::of(h.map(|h| (h.field_sep, h.encoding_chars.as_str())))
    }

    /// From a field separator and encoding characters (MSH, FHS or BHS), when known.
    pub(super) fn of(given: Option<(char, &str)>) -> Self {
        let mut field = given.map_or(DEFAULT_FIELD_SEP, |(f, _)| f);
        if !is_delim_char(field) {
            field = DEFAULT_FIELD_SEP;
        }
        let encoding = match given.map(|(_, enc)| enc) {
            Some(enc) if Self::encoding_ok(enc, field) => enc.to_string(),
            _ => {
                if DEFAULT_ENCODING.contains(field) {
                    field = DEFAULT_FIELD_SEP;
                }
                DEFAULT_ENCODING.to_string()
            }
        };
        let chars: Vec<char> = encoding.chars().collect();
        AckDelimiters {
            delimiters: Delimiters {
                field,
                component: chars[0],
                repetition: chars[1],
                escape: chars[2],
                subcomponent: chars[3],
            },
            truncation: chars.get(4).copied(),
            encoding,
        }
    }

    /// 4 or 5 distinct delimiter characters, none equal to the field
    /// separator.
    fn encoding_ok(enc: &str, field: char) -> bool {
        let chars: Vec<char> = enc.chars().collect();
        if !(chars.len() == 4 || chars.len() == 5) {
            return false;
        }
        chars
            .iter()
            .enumerate()
            .all(|(i, &c)| is_delim_char(c) && c != field && !chars[..i].contains(&c))
    }

    /// Escapes a value we supply (see [`escape::escape`]).
    pub(super) fn escape(&self, s: &str) -> String {
        escape::escape(s, &self.delimiters, self.truncation)
    }
}

/// Parses `2.3.1` into `[2, 3, 1]`; `None` when any part is not a number.
fn version_parts(v: &str) -> Option<Vec<u32>> {
    v.trim().split('.').map(|p| p.parse::<u32>().ok()).collect()
}

/// True when `version` is at least `min`, comparing numerically by parts
/// (missing parts count as 0). An unparsable version counts as modern.
fn version_at_least(version: &str, min: &[u32]) -> bool {
    let Some(parts) = version_parts(version) else {
        return true;
    };
    let n = parts.len().max(min.len());
    for i in 0..n {
        let a = parts.get(i).copied().unwrap_or(0);
        let b = min.get(i).copied().unwrap_or(0);
        if a != b {
            return a > b;
        }
    }
    true
}

fn non_empty<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

/// Builds an HL7 v2 ACK for an inbound message.
///
/// * `h` — the inbound header, or `None` when the bytes were not HL7 or the
///   header was unreadable (then `|`, `^~\&`, version 2.5, processing id P,
///   empty MSA-2, original mode).
/// * `code` — the outcome; MSA-1 is `CA`/`CE`/`CR` when the inbound MSH-15 is
///   non-empty (enhanced mode), else `AA`/`AE`/`AR`.
/// * `error` — reported in MSA-3 (our code) whenever present, and as an ERR
///   segment when `code` is not [`AckCode::Accept`]: ERR-3/4/5 for version
///   2.5 and later, ERR-1 for earlier versions.
/// * `ack_control_id` — MSH-10 of the ACK (escaped if it holds delimiters).
/// * `now` — MSH-7, written as `YYYYMMDDHHMMSS+ZZZZ`.
///
/// Sender and receiver (MSH-3/4 and MSH-5/6) are swapped. Every segment,
/// the last included, ends with `\r`.
pub fn build_ack(
    h: Option<&Header>,
    code: AckCode,
    error: Option<&AckError<'_>>,
    ack_control_id: &str,
    now: DateTime<FixedOffset>,
) -> String {
    let d = AckDelimiters::new(h);
    let fs = d.delimiters.field;
    let empty = Header::default();
    let hd = h.unwrap_or(&empty);

    let version = non_empty(&hd.version, DEFAULT_VERSION);
    // MSH-12 is a VID; only its first component is the version number.
    let version_number = version
        .split(d.delimiters.component)
        .next()
        .unwrap_or(version);
    let processing_id = non_empty(&hd.processing_id, DEFAULT_PROCESSING_ID);
    let enhanced = !hd.accept_ack_type.is_empty();

    let mut out = String::with_capacity(256);

    // MSH
    out.push_str("MSH");
    out.push(fs);
    out.push_str(&d.encoding);
    for v in [
        hd.receiving_application.as_str(),
        hd.receiving_facility.as_str(),
        hd.sending_application.as_str(),
        hd.sending_facility.as_str(),
    ] {
        out.push(fs);
        out.push_str(v);
    }
    out.push(fs);
    out.push_str(&now.format("%Y%m%d%H%M%S%z").to_string());
    out.push(fs); // MSH-8 security: empty
    out.push(fs);
    out.push_str("ACK");
    if !hd.trigger.is_empty() {
        out.push(d.delimiters.component);
        out.push_str(&hd.trigger);
        if version_at_least(version_number, &[2, 3, 1]) {
            out.push(d.delimiters.component);
            out.push_str("ACK");
        }
    }
    out.push(fs);
    out.push_str(&d.escape(ack_control_id));
    out.push(fs);
    out.push_str(processing_id);
    out.push(fs);
    out.push_str(version);
    out.push('\r');

    // MSA
    out.push_str("MSA");
    out.push(fs);
    out.push_str(msa_code(code, enhanced));
    out.push(fs);
    out.push_str(&hd.control_id);
    if let Some(e) = error {
        out.push(fs);
        out.push_str(&d.escape(e.code));
    }
    out.push('\r');

    // ERR
    if let (Some(e), true) = (error, code != AckCode::Accept) {
        let c = d.delimiters.component;
        out.push_str("ERR");
        out.push(fs);
        if version_at_least(version_number, &[2, 5]) {
            // ERR-1 and ERR-2 empty; ERR-3 CWE; ERR-4 severity; ERR-5 CWE.
            out.push(fs);
            out.push(fs);
            out.push_str(&d.escape(e.hl7_code));
            out.push(c);
            out.push_str(&d.escape(e.text));
            out.push(c);
            out.push_str("HL70357");
            out.push(fs);
            out.push('E');
            out.push(fs);
            let our = d.escape(e.code);
            out.push_str(&our);
            out.push(c);
            out.push_str(&our);
            out.push(c);
            out.push('L');
        } else {
            // ERR-1 ELD: segment^sequence^field position^code (CE as
            // subcomponents).
            let s = d.delimiters.subcomponent;
            out.push(c);
            out.push(c);
            out.push(c);
            out.push_str(&d.escape(e.hl7_code));
            out.push(s);
            out.push_str(&d.escape(e.text));
            out.push(s);
            out.push_str("HL70357");
        }
        out.push('\r');
    }

    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<FixedOffset> {
        FixedOffset::east_opt(3600)
            .unwrap()
            .with_ymd_and_hms(2024, 3, 5, 14, 7, 9)
            .unwrap()
    }

    fn header(version: &str) -> Header {
        Header {
            field_sep: '|',
            encoding_chars: "^~\\&".into(),
            sending_application: "SENDAPP".into(),
            sending_facility: "SENDFAC".into(),
            receiving_application: "RECAPP".into(),
            receiving_facility: "RECFAC".into(),
            message_type: "ADT".into(),
            trigger: "A01".into(),
            control_id: "MSG00001".into(),
            processing_id: "P".into(),
            version: version.into(),
            accept_ack_type: String::new(),
        }
    }

    const ERR207: AckError<'static> = AckError {
        code: "MAPPING_REQUIRED_FIELD",
        hl7_code: "101",
        text: "Required field missing",
    };

    fn segments(ack: &str) -> Vec<&str> {
        assert!(ack.ends_with('\r'), "every segment ends with CR");
        assert!(!ack.contains('\n'));
        ack.trim_end_matches('\r').split('\r').collect()
    }

    #[test]
    fn original_mode_accept() {
        let ack = build_ack(
            Some(&header("2.5")),
            AckCode::Accept,
            None,
            "ACK0001",
            now(),
        );
        assert_eq!(
            ack,
            "MSH|^~\\&|RECAPP|RECFAC|SENDAPP|SENDFAC|20240305140709+0100||ACK^A01^ACK|ACK0001|P|2.5\r\
             MSA|AA|MSG00001\r"
        );
    }

    #[test]
    fn accept_with_error_has_msa3_but_no_err() {
        let ack = build_ack(
            Some(&header("2.5")),
            AckCode::Accept,
            Some(&ERR207),
            "A1",
            now(),
        );
        let segs = segments(&ack);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1], "MSA|AA|MSG00001|MAPPING_REQUIRED_FIELD");
    }

    #[test]
    fn error_with_err_v25() {
        let ack = build_ack(
            Some(&header("2.5")),
            AckCode::Error,
            Some(&ERR207),
            "A1",
            now(),
        );
        let segs = segments(&ack);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[1], "MSA|AE|MSG00001|MAPPING_REQUIRED_FIELD");
        assert_eq!(
            segs[2],
            "ERR|||101^Required field missing^HL70357|E|MAPPING_REQUIRED_FIELD^MAPPING_REQUIRED_FIELD^L"
        );
    }

    #[test]
    fn error_with_err_v251_and_v26_use_modern_form() {
        for v in ["2.5.1", "2.6", "2.8.2", "3"] {
            let ack = build_ack(Some(&header(v)), AckCode::Error, Some(&ERR207), "A1", now());
            assert!(segments(&ack)[2].starts_with("ERR|||101^"), "{v}: {ack}");
        }
    }

    #[test]
    fn error_with_err_v23() {
        let ack = build_ack(
            Some(&header("2.3")),
            AckCode::Error,
            Some(&ERR207),
            "A1",
            now(),
        );
        let segs = segments(&ack);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[1], "MSA|AE|MSG00001|MAPPING_REQUIRED_FIELD");
        assert_eq!(segs[2], "ERR|^^^101&Required field missing&HL70357");
    }

    #[test]
    fn err_old_form_for_v24_and_v231() {
        for v in ["2.4", "2.3.1", "2.2"] {
            let ack = build_ack(
                Some(&header(v)),
                AckCode::Reject,
                Some(&ERR207),
                "A1",
                now(),
            );
            assert_eq!(
                segments(&ack)[2],
                "ERR|^^^101&Required field missing&HL70357",
                "{v}"
            );
        }
    }

    #[test]
    fn reject_with_no_header() {
        let e = AckError {
            code: "NOT_HL7",
            hl7_code: "100",
            text: "Segment sequence error",
        };
        let ack = build_ack(None, AckCode::Reject, Some(&e), "ACK9", now());
        assert_eq!(
            ack,
            "MSH|^~\\&|||||20240305140709+0100||ACK|ACK9|P|2.5\r\
             MSA|AR||NOT_HL7\r\
             ERR|||100^Segment sequence error^HL70357|E|NOT_HL7^NOT_HL7^L\r"
        );
    }

    #[test]
    fn reject_without_error_has_no_err() {
        let ack = build_ack(None, AckCode::Reject, None, "ACK9", now());
        assert_eq!(
            ack,
            "MSH|^~\\&|||||20240305140709+0100||ACK|ACK9|P|2.5\rMSA|AR|\r"
        );
    }

    #[test]
    fn enhanced_mode_codes() {
        let mut h = header("2.5");
        h.accept_ack_type = "AL".into();
        for (code, want) in [
            (AckCode::Accept, "CA"),
            (AckCode::Error, "CE"),
            (AckCode::Reject, "CR"),
        ] {
            let ack = build_ack(Some(&h), code, None, "A1", now());
            assert_eq!(segments(&ack)[1], format!("MSA|{want}|MSG00001"));
            // MSH-15/16 of the ACK stay empty (not written).
            let msh: Vec<&str> = segments(&ack)[0].split('|').collect();
            assert_eq!(msh.len(), 12);
        }
    }

    #[test]
    fn original_mode_codes() {
        for (code, want) in [
            (AckCode::Accept, "AA"),
            (AckCode::Error, "AE"),
            (AckCode::Reject, "AR"),
        ] {
            let ack = build_ack(Some(&header("2.5")), code, None, "A1", now());
            assert_eq!(segments(&ack)[1], format!("MSA|{want}|MSG00001"));
        }
    }

    #[test]
    fn enhanced_mode_with_error() {
        let mut h = header("2.5");
        h.accept_ack_type = "NE".into();
        let ack = build_ack(Some(&h), AckCode::Error, Some(&ERR207), "A1", now());
        let segs = segments(&ack);
        assert_eq!(segs[1], "MSA|CE|MSG00001|MAPPING_REQUIRED_FIELD");
        assert!(segs[2].starts_with("ERR|||101^"));
    }

    #[test]
    fn non_default_delimiters() {
        let mut h = header("2.5");
        h.field_sep = '#';
        h.encoding_chars = "$~\\&".into();
        h.trigger = "A04".into();
        let ack = build_ack(Some(&h), AckCode::Error, Some(&ERR207), "A1", now());
        assert_eq!(
            ack,
            "MSH#$~\\&#RECAPP#RECFAC#SENDAPP#SENDFAC#20240305140709+0100##ACK$A04$ACK#A1#P#2.5\r\
             MSA#AE#MSG00001#MAPPING_REQUIRED_FIELD\r\
             ERR###101$Required field missing$HL70357#E#MAPPING_REQUIRED_FIELD$MAPPING_REQUIRED_FIELD$L\r"
        );
    }

    #[test]
    fn non_default_delimiters_old_err_form() {
        let mut h = header("2.3");
        h.field_sep = '#';
        h.encoding_chars = "$~\\%".into();
        let ack = build_ack(Some(&h), AckCode::Error, Some(&ERR207), "A1", now());
        let segs = segments(&ack);
        assert!(segs[0].starts_with("MSH#$~\\%#"));
        assert!(segs[0].contains("#ACK$A01#"));
        assert_eq!(segs[2], "ERR#$$$101%Required field missing%HL70357");
    }

    #[test]
    fn five_encoding_chars_are_kept() {
        let mut h = header("2.7");
        h.encoding_chars = "^~\\&#".into();
        let ack = build_ack(Some(&h), AckCode::Accept, None, "A1", now());
        assert!(ack.starts_with("MSH|^~\\&#|RECAPP|"), "{ack}");
    }

    #[test]
    fn malformed_encoding_chars_fall_back() {
        for bad in ["", "^~", "^~\\&#@", "^^\\&", "ab\\&", "^~|&", "^~ &"] {
            let mut h = header("2.5");
            h.encoding_chars = bad.into();
            let ack = build_ack(Some(&h), AckCode::Accept, None, "A1", now());
            assert!(ack.starts_with("MSH|^~\\&|RECAPP|"), "{bad:?}: {ack}");
            assert!(ack.contains("|ACK^A01^ACK|"), "{bad:?}");
        }
    }

    #[test]
    fn unusable_field_separator_falls_back() {
        let mut h = header("2.5");
        h.field_sep = '\0';
        let ack = build_ack(Some(&h), AckCode::Accept, None, "A1", now());
        assert!(ack.starts_with("MSH|^~\\&|RECAPP|"), "{ack:?}");

        // A field separator that clashes with the fallback encoding chars.
        let mut h = header("2.5");
        h.field_sep = '^';
        h.encoding_chars = "bad".into();
        let ack = build_ack(Some(&h), AckCode::Accept, None, "A1", now());
        assert!(ack.starts_with("MSH|^~\\&|RECAPP|"), "{ack:?}");
    }

    #[test]
    fn sender_and_receiver_are_swapped() {
        let mut h = header("2.5");
        h.sending_application = "LAB^1".into();
        h.sending_facility = "NORTH".into();
        h.receiving_application = "INTAKE".into();
        h.receiving_facility = "HUB".into();
        let ack = build_ack(Some(&h), AckCode::Accept, None, "A1", now());
        let msh: Vec<&str> = segments(&ack)[0].split('|').collect();
        // msh[0]="MSH", msh[1]=MSH-2, msh[n]=MSH-(n+1)
        assert_eq!(msh[2], "INTAKE"); // MSH-3
        assert_eq!(msh[3], "HUB"); // MSH-4
        assert_eq!(msh[4], "LAB^1"); // MSH-5, verbatim (not escaped)
        assert_eq!(msh[5], "NORTH"); // MSH-6
    }

    #[test]
    fn msh9_by_version() {
        let cases = [
            ("2.3", "ACK^A01"),
            ("2.2", "ACK^A01"),
            ("2.3.0", "ACK^A01"),
            ("2.3.1", "ACK^A01^ACK"),
            ("2.4", "ACK^A01^ACK"),
            ("2.10", "ACK^A01^ACK"),
            ("2.5^DEU", "ACK^A01^ACK"),
            ("2.3^DEU", "ACK^A01"),
            ("v2.x", "ACK^A01^ACK"),
            ("", "ACK^A01^ACK"),
        ];
        for (v, want) in cases {
            let ack = build_ack(Some(&header(v)), AckCode::Accept, None, "A1", now());
            let msh: Vec<&str> = segments(&ack)[0].split('|').collect();
            assert_eq!(msh[8], want, "version {v:?}");
        }
    }

    #[test]
    fn version_2_3_msh9_and_echo() {
        let ack = build_ack(Some(&header("2.3")), AckCode::Accept, None, "A1", now());
        assert_eq!(
            segments(&ack)[0],
            "MSH|^~\\&|RECAPP|RECFAC|SENDAPP|SENDFAC|20240305140709+0100||ACK^A01|A1|P|2.3"
        );
    }

    #[test]
    fn empty_trigger_gives_plain_ack() {
        for v in ["2.3", "2.5"] {
            let mut h = header(v);
            h.trigger.clear();
            let ack = build_ack(Some(&h), AckCode::Accept, None, "A1", now());
            let msh: Vec<&str> = segments(&ack)[0].split('|').collect();
            assert_eq!(msh[8], "ACK", "{v}");
        }
    }

    #[test]
    fn defaults_for_empty_processing_id_and_version() {
        let mut h = header("");
        h.processing_id.clear();
        let ack = build_ack(Some(&h), AckCode::Accept, None, "A1", now());
        assert!(segments(&ack)[0].ends_with("|A1|P|2.5"), "{ack}");

        let mut h = header("2.4");
        h.processing_id = "T".into();
        let ack = build_ack(Some(&h), AckCode::Accept, None, "A1", now());
        assert!(segments(&ack)[0].ends_with("|A1|T|2.4"), "{ack}");
    }

    #[test]
    fn version_echoed_verbatim() {
        let ack = build_ack(
            Some(&header("2.5.1^DEU&&ISO")),
            AckCode::Accept,
            None,
            "A1",
            now(),
        );
        assert!(segments(&ack)[0].ends_with("|P|2.5.1^DEU&&ISO"), "{ack}");
    }

    #[test]
    fn escaping_in_text_and_code() {
        let e = AckError {
            code: "A|B",
            hl7_code: "207",
            text: "x|y^z&w~v\\u\rq",
        };
        let ack = build_ack(Some(&header("2.5")), AckCode::Error, Some(&e), "A1", now());
        let segs = segments(&ack);
        assert_eq!(segs.len(), 3, "{ack:?}");
        assert_eq!(segs[1], "MSA|AE|MSG00001|A\\F\\B");
        assert_eq!(
            segs[2],
            "ERR|||207^x\\F\\y\\S\\z\\T\\w\\R\\v\\E\\u\\X0D\\q^HL70357|E|A\\F\\B^A\\F\\B^L"
        );

        let ack = build_ack(Some(&header("2.4")), AckCode::Error, Some(&e), "A1", now());
        assert_eq!(
            segments(&ack)[2],
            "ERR|^^^207&x\\F\\y\\S\\z\\T\\w\\R\\v\\E\\u\\X0D\\q&HL70357"
        );
    }

    #[test]
    fn escaping_uses_message_delimiters() {
        let mut h = header("2.5");
        h.field_sep = '#';
        h.encoding_chars = "$*!%".into(); // component, repetition, escape, subcomponent
        let e = AckError {
            code: "C",
            hl7_code: "207",
            text: "a#b$c*d!e%f|g^h",
        };
        let ack = build_ack(Some(&h), AckCode::Error, Some(&e), "A1", now());
        assert_eq!(
            segments(&ack)[2],
            "ERR###207$a!F!b!S!c!R!d!E!e!T!f|g^h$HL70357#E#C$C$L"
        );
    }

    #[test]
    fn truncation_char_is_escaped() {
        let mut h = header("2.7");
        h.encoding_chars = "^~\\&#".into();
        let e = AckError {
            code: "C",
            hl7_code: "207",
            text: "no #1",
        };
        let ack = build_ack(Some(&h), AckCode::Error, Some(&e), "A1", now());
        assert!(segments(&ack)[2].contains("^no \\P\\1^"), "{ack}");
    }

    #[test]
    fn ack_control_id_is_escaped() {
        let ack = build_ack(Some(&header("2.5")), AckCode::Accept, None, "A|1", now());
        let msh: Vec<&str> = segments(&ack)[0].split('|').collect();
        assert_eq!(msh[9], "A\\F\\1");
    }

    #[test]
    fn timestamp_formats() {
        let t = FixedOffset::west_opt(5 * 3600 + 1800)
            .unwrap()
            .with_ymd_and_hms(1999, 12, 31, 23, 59, 58)
            .unwrap();
        let ack = build_ack(None, AckCode::Accept, None, "A1", t);
        assert!(ack.contains("|19991231235958-0530|"), "{ack}");
        let t = FixedOffset::east_opt(0)
            .unwrap()
            .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
            .unwrap();
        let ack = build_ack(None, AckCode::Accept, None, "A1", t);
        assert!(ack.contains("|20240102030405+0000|"), "{ack}");
    }

    #[test]
    fn version_comparison() {
        assert!(version_at_least("2.3.1", &[2, 3, 1]));
        assert!(version_at_least("2.3.2", &[2, 3, 1]));
        assert!(version_at_least("2.4", &[2, 3, 1]));
        assert!(!version_at_least("2.3", &[2, 3, 1]));
        assert!(!version_at_least("2.3.0.9", &[2, 3, 1]));
        assert!(version_at_least("2.5", &[2, 5]));
        assert!(version_at_least("2.5.0", &[2, 5]));
        assert!(!version_at_least("2.4.9", &[2, 5]));
        assert!(version_at_least(" 2.10 ", &[2, 5]));
        assert!(version_at_least("garbage", &[2, 5]));
        assert!(version_at_least("2..5", &[2, 5]));
    }

    #[test]
    fn code_strings() {
        assert_eq!(msa_code(AckCode::Accept, false), "AA");
        assert_eq!(msa_code(AckCode::Reject, true), "CR");
    }
}
