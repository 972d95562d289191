//! HL7 v2 escape sequences: decoding ([`unescape`]) and encoding ([`escape`]).
//!
//! [`unescape`] turns the escape sequences of an HL7 v2 field value (already
//! split out of its segment) back into text: delimiter escapes (`\F\`, `\S\`,
//! `\T\`, `\R\`, `\E\`), hexadecimal data (`\Xhh..\`), line breaks (`\.br\`,
//! `\.sp\`), and it drops formatting and character-set switching escapes that
//! have no meaning in plain text.
//!
//! Anything it does not understand (unknown or malformed sequences, an escape
//! character without a closing one) is kept literally: the function never
//! panics and never drops text it cannot interpret.

use std::borrow::Cow;

/// The five HL7 v2 delimiters, as declared in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Field separator (MSH-1), usually `|`.
    pub field: char,
    /// Component separator, usually `^`.
    pub component: char,
    /// Repetition separator, usually `~`.
    pub repetition: char,
    /// Escape character, usually `\`.
    pub escape: char,
    /// Subcomponent separator, usually `&`.
    pub subcomponent: char,
}

impl Default for Delimiters {
    /// The standard delimiters `|^~\&`.
    fn default() -> Self {
        Delimiters {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
        }
    }
}

/// Encode `value` for use as a field value written with `d`: each delimiter, the
/// truncation character (HL7 2.7, when the message declares one) and CR/LF become their
/// escape sequences (`\F\`, `\S\`, `\T\`, `\R\`, `\E\`, `\P\`, `\X0D\`,
/// `\X0A\`), so that a value can never break the segment structure. The inverse of
/// [`unescape`] for the characters it escapes.
#[must_use]
pub fn escape(value: &str, d: &Delimiters, truncation: Option<char>) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let seq = if c == d.field {
            "F"
        } else if c == d.component {
            "S"
        } else if c == d.subcomponent {
            "T"
        } else if c == d.repetition {
            "R"
        } else if c == d.escape {
            "E"
        } else if Some(c) == truncation {
            "P"
        } else if c == '\r' {
            "X0D"
        } else if c == '\n' {
            "X0A"
        } else {
            out.push(c);
            continue;
        };
        out.push(d.escape);
        out.push_str(seq);
        out.push(d.escape);
    }
    out
}

/// Decode the escape sequences in `value`.
///
/// Returns [`Cow::Borrowed`] (no allocation) when `value` contains no escape
/// character. Recognized sequences (shown with the default escape `\`):
///
/// | sequence | result |
/// |---|---|
/// | `\F\` `\S\` `\T\` `\R\` `\E\` | field, component, subcomponent, repetition, escape character |
/// | `\Xhhhh..\` | the bytes in hex, as UTF-8 if valid, else Latin-1 per byte |
/// | `\.br\`, `\.sp\`, `\.spN\` | `"\n"` |
/// | `\H\` `\N\` `\.inN\` `\.tiN\` `\.ce\` `\.fi\` `\.nf\` | removed (formatting) |
/// | `\Zxx\` | removed (locally defined) |
/// | `\Chhhh\` `\Mhhhh\` `\Mhhhhhh\` | removed (character set switches) |
///
/// An unknown or malformed sequence is copied literally, including its opening
/// escape character, and scanning resumes at its closing escape character (so
/// a stray escape character does not swallow a following valid sequence). An
/// escape character with no closing one is copied literally with the rest of
/// the value.
#[must_use]
pub fn unescape<'a>(value: &'a str, d: &Delimiters) -> Cow<'a, str> {
    let esc = d.escape;
    let Some(first) = value.find(esc) else {
        return Cow::Borrowed(value);
    };
    let esc_len = esc.len_utf8();
    let mut out = String::with_capacity(value.len());
    out.push_str(&value[..first]);
    let mut pos = first; // `value[pos..]` starts with the escape character
    loop {
        let content_start = pos + esc_len;
        let Some(rel_end) = value[content_start..].find(esc) else {
            // Unterminated: keep the rest literally.
            out.push_str(&value[pos..]);
            break;
        };
        let content_end = content_start + rel_end;
        let content = &value[content_start..content_end];
        let next = if apply(content, d, &mut out) {
            content_end + esc_len
        } else {
            // Unknown: keep the opening escape and content, and let the
            // closing escape character start the next candidate sequence.
            out.push_str(&value[pos..content_end]);
            content_end
        };
        if let Some(rel) = value[next..].find(esc) {
            out.push_str(&value[next..next + rel]);
            pos = next + rel;
        } else {
            out.push_str(&value[next..]);
            break;
        }
    }
    Cow::Owned(out)
}

/// Append the meaning of one escape sequence `content` (the text between the
/// escape characters) to `out`. Returns `false` when the sequence is unknown
/// or malformed (nothing is appended then).
fn apply(content: &str, d: &Delimiters, out: &mut String) -> bool {
    match content {
        "F" => out.push(d.field),
        "S" => out.push(d.component),
        "T" => out.push(d.subcomponent),
        "R" => out.push(d.repetition),
        "E" => out.push(d.escape),
        "H" | "N" | ".ce" | ".fi" | ".nf" => {}
        ".br" => out.push('\n'),
        _ => {
            if let Some(hex) = content.strip_prefix('X') {
                return push_hex(hex, out);
            }
            if let Some(n) = content.strip_prefix(".sp") {
                if !is_optional_number(n) {
                    return false;
                }
                out.push('\n');
            } else if let Some(n) = content
                .strip_prefix(".in")
                .or_else(|| content.strip_prefix(".ti"))
            {
                return is_optional_number(n);
            } else if let Some(rest) = content.strip_prefix('Z') {
                return !rest.is_empty();
            } else if let Some(hex) = content.strip_prefix('C') {
                return hex.len() == 4 && is_hex(hex);
            } else if let Some(hex) = content.strip_prefix('M') {
                return (hex.len() == 4 || hex.len() == 6) && is_hex(hex);
            } else {
                return false;
            }
        }
    }
    true
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Empty, or an optionally signed decimal number (`.sp`, `.in`, `.ti`
/// arguments), possibly preceded by spaces.
fn is_optional_number(s: &str) -> bool {
    let s = s.trim_start_matches(' ');
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() {
        // A bare sign is not a number; an empty argument is fine.
        return s.is_empty();
    }
    digits.bytes().all(|b| b.is_ascii_digit())
}

/// Decode `\Xhh..\` data: an even, non-zero number of hex digits. The bytes are
/// taken as UTF-8 when valid, else as Latin-1 (one char per byte).
fn push_hex(hex: &str, out: &mut String) -> bool {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !is_hex(hex) {
        return false;
    }
    let bytes: Vec<u8> = hex
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| (hex_val(pair[0]) << 4) | hex_val(pair[1]))
        .collect();
    match std::str::from_utf8(&bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => out.extend(bytes.iter().map(|&b| char::from(b))),
    }
    true
}

/// Value of one ASCII hex digit (caller has checked it is one).
fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> String {
        unescape(s, &Delimiters::default()).into_owned()
    }

    #[test]
    fn escape_round_trips_through_unescape() {
        let d = Delimiters::default();
        let text = "a|b^c&d~e\\f#g\r\nh";
        let encoded = escape(text, &d, Some('#'));
        assert_eq!(
            encoded,
            "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\P\\g\\X0D\\\\X0A\\h"
        );
        assert!(!encoded.contains(['|', '^', '&', '~', '\r', '\n']));
        // `\P\` (truncation) has no meaning in plain text: unescape keeps it literally.
        assert_eq!(u(&encoded), text.replace('#', "\\P\\"));
    }

    #[test]
    fn default_delimiters() {
        let d = Delimiters::default();
        assert_eq!(
            (d.field, d.component, d.repetition, d.escape, d.subcomponent),
            ('|', '^', '~', '\\', '&')
        );
    }

    #[test]
    fn fast_path_borrows() {
        let d = Delimiters::default();
        assert!(matches!(unescape("plain text é", &d), Cow::Borrowed(_)));
        assert!(matches!(unescape("", &d), Cow::Borrowed(_)));
        assert!(matches!(unescape("a\\F\\b", &d), Cow::Owned(_)));
    }

    #[test]
    fn delimiter_escapes() {
        assert_eq!(u("a\\F\\b"), "a|b");
        assert_eq!(u("a\\S\\b"), "a^b");
        assert_eq!(u("a\\T\\b"), "a&b");
        assert_eq!(u("a\\R\\b"), "a~b");
        assert_eq!(u("a\\E\\b"), "a\\b");
        assert_eq!(u("\\F\\\\S\\\\T\\\\R\\\\E\\"), "|^&~\\");
        assert_eq!(u("\\E\\E\\"), "\\E\\");
    }

    #[test]
    fn escapes_use_given_delimiters() {
        let d = Delimiters {
            field: '#',
            component: '*',
            repetition: '$',
            escape: '@',
            subcomponent: '%',
        };
        assert_eq!(unescape("a@F@b@S@c@T@d@R@e@E@f", &d), "a#b*c%d$e@f");
        // The default escape char is ordinary text here.
        assert_eq!(unescape("C:\\F\\x", &d), "C:\\F\\x");
        assert!(matches!(unescape("C:\\F\\x", &d), Cow::Borrowed(_)));
        assert_eq!(unescape("x@.br@y", &d), "x\ny");
        assert_eq!(unescape("unterminated @F", &d), "unterminated @F");
    }

    #[test]
    fn multibyte_escape_char() {
        let d = Delimiters {
            escape: '§',
            ..Delimiters::default()
        };
        assert_eq!(unescape("ä§F§ö§X41§ü§", &d), "ä|öAü§");
    }

    #[test]
    fn hex_data() {
        assert_eq!(u("a\\X0D\\b"), "a\rb");
        assert_eq!(u("a\\X0A\\b"), "a\nb");
        assert_eq!(u("\\XC3A9\\"), "é");
        assert_eq!(u("\\Xc3a9\\"), "é");
        assert_eq!(u("\\X0D0A\\"), "\r\n");
        // Not valid UTF-8 → Latin-1 per byte.
        assert_eq!(u("\\XE9\\"), "é");
        assert_eq!(u("\\XC3\\"), "Ã");
        assert_eq!(u("\\XE282AC\\"), "€");
    }

    #[test]
    fn malformed_hex_kept_literally() {
        assert_eq!(u("\\X0\\"), "\\X0\\");
        assert_eq!(u("a\\XABC\\b"), "a\\XABC\\b");
        assert_eq!(u("\\X\\"), "\\X\\");
        assert_eq!(u("\\XZZ\\"), "\\XZZ\\");
        assert_eq!(u("\\X0G\\"), "\\X0G\\");
    }

    #[test]
    fn line_breaks() {
        assert_eq!(u("line1\\.br\\line2"), "line1\nline2");
        assert_eq!(u("a\\.sp\\b"), "a\nb");
        assert_eq!(u("a\\.sp2\\b"), "a\nb");
        assert_eq!(u("a\\.sp +1\\b"), "a\nb");
    }

    #[test]
    fn formatting_removed() {
        assert_eq!(u("\\H\\bold\\N\\ text"), "bold text");
        assert_eq!(u("a\\.in+4\\b"), "ab");
        assert_eq!(u("a\\.in-2\\b"), "ab");
        assert_eq!(u("a\\.ti4\\b"), "ab");
        assert_eq!(u("a\\.in\\b"), "ab");
        assert_eq!(u("a\\.ce\\b\\.fi\\c\\.nf\\d"), "abcd");
    }

    #[test]
    fn malformed_formatting_kept() {
        assert_eq!(u("a\\.spx\\b"), "a\\.spx\\b");
        assert_eq!(u("a\\.in+\\b"), "a\\.in+\\b");
        assert_eq!(u("a\\.xx\\b"), "a\\.xx\\b");
    }

    #[test]
    fn local_and_charset_escapes_removed() {
        assert_eq!(u("a\\Zfoo\\b"), "ab");
        assert_eq!(u("a\\C2842\\b"), "ab");
        assert_eq!(u("a\\M2442\\b"), "ab");
        assert_eq!(u("a\\M242842\\b"), "ab");
        // Malformed → literal.
        assert_eq!(u("a\\Z\\b"), "a\\Z\\b");
        assert_eq!(u("a\\C28\\b"), "a\\C28\\b");
        assert_eq!(u("a\\M24284\\b"), "a\\M24284\\b");
        assert_eq!(u("a\\CXYZW\\b"), "a\\CXYZW\\b");
    }

    #[test]
    fn unknown_sequence_kept_and_rescanned() {
        assert_eq!(u("a\\Q\\b"), "a\\Q\\b");
        assert_eq!(u("a\\f\\b"), "a\\f\\b");
        assert_eq!(u("a\\\\b"), "a\\\\b");
        // The closing escape of an unknown sequence may open a valid one.
        assert_eq!(u("C:\\dir\\F\\x"), "C:\\dir|x");
        assert_eq!(u("\\unknown\\S\\"), "\\unknown^");
    }

    #[test]
    fn unterminated_kept() {
        assert_eq!(u("abc\\F"), "abc\\F");
        assert_eq!(u("abc\\"), "abc\\");
        assert_eq!(u("\\"), "\\");
        assert_eq!(u("a\\F\\b\\S"), "a|b\\S");
        assert_eq!(u("a\\Q\\b\\S"), "a\\Q\\b\\S");
    }

    #[test]
    fn multibyte_text_around_escapes() {
        assert_eq!(u("Zoë\\S\\Müller"), "Zoë^Müller");
        assert_eq!(u("日本\\F\\語\\.br\\€"), "日本|語\n€");
        assert_eq!(u("é\\Xé\\é"), "é\\Xé\\é");
        assert_eq!(u("ü\\"), "ü\\");
        assert_eq!(u("\\ü"), "\\ü");
        assert_eq!(u("😀\\T\\😀"), "😀&😀");
    }

    #[test]
    fn odd_inputs_are_kept_verbatim() {
        let samples = [
            "\\", "\\\\", "\\\\\\", "\\X", "\\X\\X\\", "\\.", "\\.sp", "\\M\\", "\\C\\", "é\\",
            "\\é\\", "\\Z", "\\.br", "\\X\\\\", "\\\\X41",
        ];
        for s in samples {
            assert_eq!(u(s), s, "{s:?}");
        }
    }

    #[test]
    fn pseudo_random_inputs_never_panic() {
        let alphabet = [
            '\\', 'F', 'X', '0', 'A', 'é', '.', 'b', 'r', 'Z', 'M', 's', 'p', '€',
        ];
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..5000 {
            let mut s = String::new();
            for _ in 0..(seed % 16) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push(alphabet[usize::try_from(seed >> 33).unwrap() % alphabet.len()]);
            }
            let out = unescape(&s, &Delimiters::default());
            if !s.contains('\\') {
                assert!(matches!(out, Cow::Borrowed(_)));
            }
        }
    }
}
