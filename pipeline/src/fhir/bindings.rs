//! Strict mode's checks beyond the R4 structure: codes bound to a *required* value set
//! (a `gender` of `zzbogus` is not a code of administrative-gender) and dates that name no
//! calendar day. fhirbolt checks the structure and the primitive types, not these. A
//! refusal names the element (`Patient.gender`), never its value.

use chrono::NaiveDate;
use serde_json::Value;

/// The codes of the required value sets of the elements the shipped mappings read.
const REQUIRED_CODES: &[(&str, &str, &[&str])] = &[
    ("Patient", "gender", &["male", "female", "other", "unknown"]),
    (
        "Encounter",
        "status",
        &[
            "planned",
            "arrived",
            "triaged",
            "in-progress",
            "onleave",
            "finished",
            "cancelled",
            "entered-in-error",
            "unknown",
        ],
    ),
    (
        "Observation",
        "status",
        &[
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        ],
    ),
    (
        "DiagnosticReport",
        "status",
        &[
            "registered",
            "partial",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "appended",
            "cancelled",
            "entered-in-error",
            "unknown",
        ],
    ),
];

/// FHIR `date` elements checked for a real calendar date.
const DATES: &[(&str, &str)] = &[("Patient", "birthDate")];

/// The expression of the first element of `resource` (and of the resources a Bundle or
/// `contained` holds) whose value breaks a binding or names no date.
pub fn first_violation(resource: &Value) -> Option<String> {
    let ty = resource.get("resourceType")?.as_str()?;
    for (on, element, codes) in REQUIRED_CODES {
        if *on == ty {
            if let Some(v) = resource.get(*element) {
                if !v.as_str().is_some_and(|c| codes.contains(&c)) {
                    return Some(format!("{ty}.{element}"));
                }
            }
        }
    }
    for (on, element) in DATES {
        if *on == ty {
            if let Some(v) = resource.get(*element) {
                if !v.as_str().is_some_and(is_fhir_date) {
                    return Some(format!("{ty}.{element}"));
                }
            }
        }
    }
    let entries = resource
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let nested = entries.filter_map(|e| e.get("resource"));
    let contained = resource
        .get("contained")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    nested.chain(contained).find_map(first_violation)
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, naming a real month and day.
fn is_fhir_date(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [y] => y.len() == 4 && digits(y),
        [y, m] => {
            y.len() == 4
                && m.len() == 2
                && digits(y)
                && digits(m)
                && (1..=12).contains(&m.parse::<u32>().unwrap_or(0))
        }
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_of_required_bindings_and_dates_are_checked_at_every_depth() {
        let ok = json!({"resourceType": "Patient", "gender": "female", "birthDate": "1980-02-29"});
        assert_eq!(first_violation(&ok), None);
        let bad = json!({"resourceType": "Patient", "gender": "zzbogus"});
        assert_eq!(first_violation(&bad).as_deref(), Some("Patient.gender"));
        for date in [
            "1980-13-45",
            "1981-02-29",
            "80-01-01",
            "1980-1-1",
            "1980-00",
        ] {
            let p = json!({"resourceType": "Patient", "birthDate": date});
            assert_eq!(
                first_violation(&p).as_deref(),
                Some("Patient.birthDate"),
                "{date}"
            );
        }
        for date in ["1980", "1980-12", "1980-12-31"] {
            let p = json!({"resourceType": "Patient", "birthDate": date});
            assert_eq!(first_violation(&p), None, "{date}");
        }
        let bundle = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Encounter", "status": "finished"}},
            {"resource": {"resourceType": "Observation", "status": "done",
                          "contained": []}}]});
        assert_eq!(
            first_violation(&bundle).as_deref(),
            Some("Observation.status")
        );
        let contained = json!({"resourceType": "DiagnosticReport", "status": "final",
            "contained": [{"resourceType": "Patient", "gender": "M"}]});
        assert_eq!(
            first_violation(&contained).as_deref(),
            Some("Patient.gender")
        );
    }
}
