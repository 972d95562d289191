//! One condition semantic for both languages: on a field with two repetitions (HL7
//! `PID-3`) and on a list of two elements (FHIR `Patient.identifier`), every operator
//! gives the same answer, and it is decided by any value, the second as well as the first.

use super::Tenants;
use crate::hl7::Hl7Message;
use serde_json::json;

/// (event, operator and operand, path) — the event is emitted when its condition holds.
/// `both` finds `111` then `222`; `second` finds a value in the second repetition only;
/// `none` finds nothing.
const CASES: [(&str, &str, &str); 10] = [
    ("EqualsFirst", "equals: \"111\"", "both"),
    ("EqualsSecond", "equals: \"222\"", "both"),
    ("InSecond", "in: [\"999\", \"222\"]", "both"),
    ("InNeither", "in: [\"999\"]", "both"),
    ("NotInSecond", "not_in: [\"222\"]", "both"),
    ("NotInNeither", "not_in: [\"999\"]", "both"),
    ("PresentInSecond", "present: true", "second"),
    ("AbsentInSecond", "present: false", "second"),
    ("PresentNowhere", "present: true", "none"),
    ("AbsentNowhere", "present: false", "none"),
];

const HOLDING: [&str; 6] = [
    "EqualsFirst",
    "EqualsSecond",
    "InSecond",
    "NotInNeither",
    "PresentInSecond",
    "AbsentNowhere",
];

/// A rules file with one event per case, `paths` naming `both`, `second` and `none`.
fn rules(top: &str, key: &str, paths: [&str; 3]) -> String {
    let path = |which: &str| match which {
        "both" => paths[0],
        "second" => paths[1],
        _ => paths[2],
    };
    let mut out = format!("{top}:\n  - {key}\n    events:\n");
    for (event, op, which) in CASES {
        out.push_str(&format!(
            "      - event: {event}\n        when: [ {{ path: \"{}\", {op} }} ]\n        \
             stream: {{ type: Patient, key: \"{}\" }}\n        fields: {{}}\n",
            path(which),
            paths[0],
        ));
    }
    out
}

#[test]
fn hl7_and_fhir_conditions_agree_on_repetitions() {
    let hl7 = rules(
        "rules",
        "message: ADT^A01",
        ["PID.3[*].1", "PID.3[*].4", "PID.3[*].9"],
    );
    let fhir = rules(
        "resources",
        "resource: Patient",
        [
            "identifier.value",
            "identifier.system",
            "identifier.period.start",
        ],
    );
    let files = [
        ("tenant.yaml", "timezone: UTC\n"),
        ("hl7.yaml", &hl7),
        ("fhir.yaml", &fhir),
    ];
    let dir = super::folder(&files);
    let tenants = Tenants::load(dir.path()).unwrap_or_else(|e| panic!("{e:?}"));
    let tenant = tenants.get("t1").unwrap();

    let msg = "MSH|^~\\&|A|H|X|Y|20240301||ADT^A01|C1|P|2.5\rPID|1||111^^^^PI~222^^^H^MR";
    let m = Hl7Message::parse(msg).unwrap();
    let from_hl7 = tenant
        .rules
        .apply(&m, &m.header_lenient(), tenant.timezone)
        .unwrap()
        .into_events();
    let patient = json!({"resourceType": "Patient", "identifier": [
        {"value": "111"}, {"value": "222", "system": "H"}]});
    let from_fhir = tenant
        .fhir
        .rules
        .apply(&patient, tenant.timezone)
        .unwrap()
        .into_events();

    let events = |ev: &[crate::mapping::MappedEvent]| {
        ev.iter()
            .map(|e| (e.event_type.clone(), e.stream_key.clone()))
            .collect::<Vec<_>>()
    };
    let expected: Vec<(String, String)> = HOLDING
        .iter()
        .map(|e| (e.to_string(), "111".to_string()))
        .collect();
    assert_eq!(events(&from_hl7), expected, "HL7");
    assert_eq!(events(&from_fhir), expected, "FHIR");
}
