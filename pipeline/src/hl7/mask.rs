//! A message's shape without its values: each segment's id and the byte length of each
//! field. Support staff see where a message is malformed or empty without seeing PHI.

use serde::Serialize;

/// One segment, masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaskedSegment {
    /// The segment id when it is three upper-case letters or digits, else `"???"` (a
    /// malformed line could start with text).
    pub segment: String,
    /// The byte length of each field after the id (MSH: from MSH-2 on).
    pub field_lengths: Vec<usize>,
}

/// Masks an ER7 message. Bytes that are not HL7 v2 (no `MSH` start) give no segments.
pub fn masked_structure(raw: &[u8]) -> Vec<MaskedSegment> {
    if !raw.starts_with(b"MSH") || raw.len() < 4 {
        return Vec::new();
    }
    let sep = raw[3];
    raw.split(|b| *b == b'\r' || *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let id = line.get(..3).filter(|id| {
                id.iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                    && line.get(3).is_none_or(|b| *b == sep)
            });
            let rest = line.get(4..).unwrap_or_default();
            let mut fields: Vec<usize> = match line.len() > 3 {
                true => rest.split(|b| *b == sep).map(<[u8]>::len).collect(),
                false => Vec::new(),
            };
            if id == Some(b"MSH".as_slice()) {
                fields.insert(0, 1); // MSH-1, the field separator itself
            }
            MaskedSegment {
                segment: match id {
                    Some(id) => String::from_utf8_lossy(id).into_owned(),
                    None => "???".into(),
                },
                field_lengths: fields,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_their_ids_and_fields_only_their_lengths() {
        let raw =
            b"MSH|^~\\&|HIS|H|||20240101||ADT^A01|C1|P|2.5\rPID|1||123^^^H||Doe^Jane\rjunk line\r";
        let m = masked_structure(raw);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].segment, "MSH");
        assert_eq!(&m[0].field_lengths[..4], &[1, 4, 3, 1]);
        assert_eq!(m[1].segment, "PID");
        assert_eq!(m[1].field_lengths, vec![1, 0, 7, 0, 8]);
        assert_eq!(m[2].segment, "???");
        let json = serde_json::to_string(&m).unwrap();
        assert!(!json.contains("Doe") && !json.contains("123") && !json.contains("junk"));
        assert!(masked_structure(b"{\"resourceType\":\"Patient\"}").is_empty());
    }
}
