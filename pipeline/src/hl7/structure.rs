//! The HL7 v2 structure `intake check` knows: the standard segment ids, and how many
//! fields the segments that mappings commonly read have in each version, so that a path
//! such as `PVI.3` or `PV1.333` is an error at `file:line:col` instead of a field that is
//! silently always empty.
//!
//! Source: the segment definitions of hl7apy 1.3.5 (crs4/hl7apy, `hl7apy/v2_X/segments.py`,
//! versions 2.3 to 2.8.2); a count is the highest field number a version defines. Z-segments
//! (site-defined) are always allowed, with any number of fields, and so is a field of a
//! segment listed here only by id.

/// Every standard segment id (HL7 v2.8.2), sorted.
pub const SEGMENT_IDS: &[&str] = &[
    "ABS", "ACC", "ADD", "ADJ", "AFF", "AIG", "AIL", "AIP", "AIS", "AL1", "APR", "ARQ", "ARV",
    "AUT", "BHS", "BLC", "BLG", "BPO", "BPX", "BTS", "BTX", "BUI", "CDM", "CDO", "CER", "CM0",
    "CM1", "CM2", "CNS", "CON", "CSP", "CSR", "CSS", "CTD", "CTI", "DB1", "DG1", "DMI", "DON",
    "DPS", "DRG", "DSC", "DSP", "ECD", "ECR", "EDU", "EQP", "EQU", "ERR", "EVN", "FAC", "FHS",
    "FT1", "FTS", "GOL", "GP1", "GP2", "GT1", "IAM", "IAR", "IIM", "ILT", "IN1", "IN2", "IN3",
    "INV", "IPC", "IPR", "ISD", "ITM", "IVC", "IVT", "LAN", "LCC", "LCH", "LDP", "LOC", "LRL",
    "MCP", "MFA", "MFE", "MFI", "MRG", "MSA", "MSH", "NCK", "NDS", "NK1", "NPU", "NSC", "NST",
    "NTE", "OBR", "OBX", "ODS", "ODT", "OM1", "OM2", "OM3", "OM4", "OM5", "OM6", "OM7", "OMC",
    "ORC", "ORG", "OVR", "PAC", "PCE", "PCR", "PD1", "PDA", "PDC", "PEO", "PES", "PID", "PKG",
    "PM1", "PMT", "PR1", "PRA", "PRB", "PRC", "PRD", "PRT", "PSG", "PSH", "PSL", "PSS", "PTH",
    "PV1", "PV2", "PYE", "QAK", "QID", "QPD", "QRD", "QRF", "QRI", "RCP", "RDF", "RDT", "REL",
    "RF1", "RFI", "RGS", "RMI", "ROL", "RQ1", "RQD", "RXA", "RXC", "RXD", "RXE", "RXG", "RXO",
    "RXR", "RXV", "SAC", "SCD", "SCH", "SCP", "SDD", "SFT", "SGH", "SGT", "SHP", "SID", "SLT",
    "SPM", "STF", "STZ", "TCC", "TCD", "TQ1", "TQ2", "TXA", "UAC", "UB1", "UB2", "URD", "URS",
    "VAR", "VND",
];

/// Fields per version of the segments mappings commonly read: (segment, [(version, count)]).
pub const FIELD_COUNTS: &[(&str, &[(&str, u16)])] = &[
    (
        "AL1",
        &[
            ("2.3", 6),
            ("2.3.1", 6),
            ("2.4", 6),
            ("2.5", 6),
            ("2.5.1", 6),
            ("2.6", 6),
            ("2.7", 5),
            ("2.8", 5),
        ],
    ),
    (
        "DG1",
        &[
            ("2.3", 19),
            ("2.3.1", 19),
            ("2.4", 19),
            ("2.5", 21),
            ("2.5.1", 21),
            ("2.6", 26),
            ("2.7", 26),
            ("2.8", 26),
        ],
    ),
    (
        "ERR",
        &[
            ("2.3", 1),
            ("2.3.1", 1),
            ("2.4", 1),
            ("2.5", 12),
            ("2.5.1", 12),
            ("2.6", 12),
            ("2.7", 12),
            ("2.8", 12),
        ],
    ),
    (
        "EVN",
        &[
            ("2.3", 6),
            ("2.3.1", 6),
            ("2.4", 7),
            ("2.5", 7),
            ("2.5.1", 7),
            ("2.6", 7),
            ("2.7", 7),
            ("2.8", 7),
        ],
    ),
    (
        "FT1",
        &[
            ("2.3", 25),
            ("2.3.1", 26),
            ("2.4", 26),
            ("2.5", 31),
            ("2.5.1", 31),
            ("2.6", 31),
            ("2.7", 43),
            ("2.8", 43),
        ],
    ),
    (
        "GT1",
        &[
            ("2.3", 55),
            ("2.3.1", 55),
            ("2.4", 55),
            ("2.5", 57),
            ("2.5.1", 57),
            ("2.6", 57),
            ("2.7", 57),
            ("2.8", 57),
        ],
    ),
    (
        "IN1",
        &[
            ("2.3", 49),
            ("2.3.1", 49),
            ("2.4", 49),
            ("2.5", 53),
            ("2.5.1", 53),
            ("2.6", 53),
            ("2.7", 54),
            ("2.8", 55),
        ],
    ),
    (
        "MRG",
        &[
            ("2.3", 7),
            ("2.3.1", 7),
            ("2.4", 7),
            ("2.5", 7),
            ("2.5.1", 7),
            ("2.6", 7),
            ("2.7", 7),
            ("2.8", 7),
        ],
    ),
    (
        "MSA",
        &[
            ("2.3", 6),
            ("2.3.1", 6),
            ("2.4", 6),
            ("2.5", 6),
            ("2.5.1", 6),
            ("2.6", 8),
            ("2.7", 8),
            ("2.8", 8),
        ],
    ),
    (
        "MSH",
        &[
            ("2.3", 19),
            ("2.3.1", 20),
            ("2.4", 21),
            ("2.5", 21),
            ("2.5.1", 21),
            ("2.6", 25),
            ("2.7", 25),
            ("2.8", 25),
        ],
    ),
    (
        "NK1",
        &[
            ("2.3", 37),
            ("2.3.1", 37),
            ("2.4", 37),
            ("2.5", 39),
            ("2.5.1", 39),
            ("2.6", 39),
            ("2.7", 41),
            ("2.8", 41),
        ],
    ),
    (
        "NTE",
        &[
            ("2.3", 3),
            ("2.3.1", 4),
            ("2.4", 4),
            ("2.5", 4),
            ("2.5.1", 4),
            ("2.6", 8),
            ("2.7", 8),
            ("2.8", 8),
        ],
    ),
    (
        "OBR",
        &[
            ("2.3", 43),
            ("2.3.1", 45),
            ("2.4", 47),
            ("2.5", 49),
            ("2.5.1", 50),
            ("2.6", 50),
            ("2.7", 54),
            ("2.8", 54),
        ],
    ),
    (
        "OBX",
        &[
            ("2.3", 17),
            ("2.3.1", 17),
            ("2.4", 19),
            ("2.5", 19),
            ("2.5.1", 25),
            ("2.6", 25),
            ("2.7", 26),
            ("2.8", 28),
            ("2.8.2", 30),
        ],
    ),
    (
        "ORC",
        &[
            ("2.3", 19),
            ("2.3.1", 24),
            ("2.4", 25),
            ("2.5", 30),
            ("2.5.1", 31),
            ("2.6", 31),
            ("2.7", 33),
            ("2.8", 34),
        ],
    ),
    (
        "PD1",
        &[
            ("2.3", 12),
            ("2.3.1", 12),
            ("2.4", 21),
            ("2.5", 21),
            ("2.5.1", 21),
            ("2.6", 22),
            ("2.7", 22),
            ("2.8", 22),
        ],
    ),
    (
        "PID",
        &[
            ("2.3", 30),
            ("2.3.1", 30),
            ("2.4", 38),
            ("2.5", 39),
            ("2.5.1", 39),
            ("2.6", 39),
            ("2.7", 40),
            ("2.8", 40),
        ],
    ),
    (
        "PR1",
        &[
            ("2.3", 15),
            ("2.3.1", 16),
            ("2.4", 18),
            ("2.5", 20),
            ("2.5.1", 20),
            ("2.6", 22),
            ("2.7", 25),
            ("2.8", 25),
        ],
    ),
    (
        "PV1",
        &[
            ("2.3", 52),
            ("2.3.1", 52),
            ("2.4", 52),
            ("2.5", 52),
            ("2.5.1", 52),
            ("2.6", 52),
            ("2.7", 54),
            ("2.8", 54),
        ],
    ),
    (
        "PV2",
        &[
            ("2.3", 37),
            ("2.3.1", 37),
            ("2.4", 47),
            ("2.5", 49),
            ("2.5.1", 49),
            ("2.6", 50),
            ("2.7", 50),
            ("2.8", 50),
        ],
    ),
    (
        "ROL",
        &[
            ("2.3", 8),
            ("2.3.1", 8),
            ("2.4", 12),
            ("2.5", 12),
            ("2.5.1", 12),
            ("2.6", 13),
            ("2.7", 14),
            ("2.8", 14),
        ],
    ),
    (
        "SFT",
        &[("2.5", 6), ("2.5.1", 6), ("2.6", 6), ("2.7", 6), ("2.8", 6)],
    ),
    (
        "SPM",
        &[
            ("2.5", 29),
            ("2.5.1", 29),
            ("2.6", 29),
            ("2.7", 32),
            ("2.8", 32),
        ],
    ),
    (
        "TQ1",
        &[
            ("2.5", 14),
            ("2.5.1", 14),
            ("2.6", 14),
            ("2.7", 14),
            ("2.8", 14),
        ],
    ),
    ("UAC", &[("2.6", 2), ("2.7", 2), ("2.8", 2)]),
];

/// Whether `id` names a segment: a standard id, or a site-defined Z-segment.
pub fn is_known_segment(id: &str) -> bool {
    id.starts_with('Z') || SEGMENT_IDS.binary_search(&id).is_ok()
}

/// The most fields `id` has in any version, and the first version that has that many;
/// `None` for a segment without counts here (any field is accepted).
pub fn max_fields(id: &str) -> Option<(u16, &'static str)> {
    let (_, versions) = FIELD_COUNTS.iter().find(|(s, _)| *s == id)?;
    let most = versions.iter().map(|(_, n)| *n).max()?;
    versions
        .iter()
        .find(|(_, n)| *n == most)
        .map(|(v, n)| (*n, *v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sorted_and_counts_name_known_segments() {
        assert!(
            SEGMENT_IDS.windows(2).all(|w| w[0] < w[1]),
            "sorted for binary search"
        );
        for (id, versions) in FIELD_COUNTS {
            assert!(is_known_segment(id), "{id}");
            assert!(!versions.is_empty());
        }
    }

    #[test]
    fn segments_and_field_counts() {
        assert!(is_known_segment("PV1") && is_known_segment("ZDS") && is_known_segment("OBX"));
        assert!(!is_known_segment("PVI") && !is_known_segment("XYZ"));
        assert_eq!(max_fields("PV1"), Some((54, "2.7")));
        assert_eq!(max_fields("OBX"), Some((30, "2.8.2")));
        assert_eq!(max_fields("MSH"), Some((25, "2.6")));
        assert_eq!(max_fields("ZDS"), None);
        assert_eq!(max_fields("RXA"), None, "known, but not counted here");
    }
}
