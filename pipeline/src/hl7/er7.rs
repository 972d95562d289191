//! A lazy, zero-copy ER7 reader. A message is a list of segment slices; fields,
//! repetitions, components and subcomponents are split only when a path reads them, so
//! parsing allocates one `Vec` per message and never drops a segment it cannot read
//! (segment ids are validated by [`super::Hl7Message::parse`]).

use super::Delimiters;

/// One segment: its id and its whole text (without the segment terminator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'m> {
    /// The three-character id, e.g. `PID`.
    pub name: &'m str,
    text: &'m str,
}

impl<'m> Segment<'m> {
    /// A segment from its text; the caller has checked that it starts with a valid id.
    pub(super) fn new(text: &'m str) -> Self {
        Segment {
            name: &text[..3],
            text,
        }
    }

    /// The segment's text as received.
    pub fn raw_value(&self) -> &'m str {
        self.text
    }

    /// Field `n` (1-based) as raw text. As in the standard, MSH-1 is the field
    /// separator itself and MSH-2 the encoding characters.
    pub fn field(&self, n: usize, d: &Delimiters) -> Option<&'m str> {
        match (self.name == "MSH", n) {
            (_, 0) => None,
            (true, 1) => self.text.get(3..3 + d.field.len_utf8()),
            // Splitting "MSH|^~\&|APP|..." gives ["MSH", "^~\&", "APP", ...]: MSH-n is n-1.
            (true, n) => self.text.split(d.field).nth(n - 1),
            (false, n) => self.text.split(d.field).nth(n),
        }
    }
}

/// The `k`-th (1-based) part of `text` split on `sep`.
pub(super) fn part(text: &str, sep: char, k: usize) -> Option<&str> {
    k.checked_sub(1).and_then(|i| text.split(sep).nth(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_the_standards_numbering() {
        let d = Delimiters::default();
        let msh = Segment::new("MSH|^~\\&|APP|FAC||RFAC");
        assert_eq!(msh.field(1, &d), Some("|"));
        assert_eq!(msh.field(2, &d), Some("^~\\&"));
        assert_eq!(msh.field(3, &d), Some("APP"));
        assert_eq!(msh.field(5, &d), Some(""));
        assert_eq!(msh.field(6, &d), Some("RFAC"));
        assert_eq!(msh.field(7, &d), None);
        let pid = Segment::new("PID|1||M1^^^H^MR");
        assert_eq!(
            (pid.name, pid.field(3, &d), pid.field(0, &d)),
            ("PID", Some("M1^^^H^MR"), None)
        );
        assert_eq!(Segment::new("NTE").field(1, &d), None);
        assert_eq!(part("a^b^c", '^', 2), Some("b"));
        assert_eq!(part("a^b", '^', 0), None);
    }
}
