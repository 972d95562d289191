//! The mapping language end to end: a tenant folder on disk, a message, the events.

use super::Tenants;
use crate::hl7::Hl7Message;
use crate::reason::Reason;
use serde_json::{json, Value};

mod repetitions;

/// A mappings folder with one tenant, `t1`, of these files (paths below its folder).
/// These tests are about the mapping language, not the catalogue: unless a test brings
/// its own `catalogue.yaml`, the event and stream types its rules name (and their fields)
/// are declared in one, so only the shipped events are held to the shipped catalogue.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t1");
    std::fs::create_dir_all(t.join("tables")).unwrap();
    for (name, text) in files {
        std::fs::write(t.join(name), text).unwrap();
    }
    if !files.iter().any(|(n, _)| *n == "catalogue.yaml") {
        let rules = files
            .iter()
            .filter(|(n, _)| !n.contains('/') && *n != "tenant.yaml");
        let catalogue = declare_events(rules.map(|(_, text)| *text));
        std::fs::write(t.join("catalogue.yaml"), catalogue).unwrap();
    }
    dir
}

/// A tenant catalogue declaring the event and stream types of these rules files that the
/// shipped catalogue lacks, with the fields and types the rules give them.
fn declare_events<'a>(rules: impl Iterator<Item = &'a str>) -> String {
    use super::catalogue::{Catalogue, Shape};
    let shipped = Catalogue::shipped();
    let (mut events, mut streams) = (
        std::collections::BTreeMap::new(),
        std::collections::BTreeSet::new(),
    );
    for text in rules {
        let Ok(doc) = serde_saphyr::from_str::<Value>(text) else {
            continue; // a test of a syntax error
        };
        let lists = ["rules", "resources"].map(|k| doc[k].as_array().cloned().unwrap_or_default());
        for rule in lists.iter().flatten() {
            for e in rule["events"].as_array().into_iter().flatten() {
                let Some(name) = e["event"].as_str().filter(|n| shipped.event(n).is_none()) else {
                    continue;
                };
                let entry = events
                    .entry(name.to_string())
                    .or_insert_with(|| (Vec::new(), Vec::new()));
                for s in [&e["stream"], &e["or_stream"]] {
                    if let Some(ty) = s["type"].as_str() {
                        entry.0.push(ty.to_string());
                        if !shipped.has_stream_type(ty) {
                            streams.insert(ty.to_string());
                        }
                    }
                }
                for (field, spec) in e["fields"].as_object().into_iter().flatten() {
                    let ty = spec["type"].as_str().and_then(super::FieldType::named);
                    let shape = Shape::of(ty.unwrap_or_default(), spec["all"] == true);
                    let shape = if ty.is_none() && spec["type"].is_string() {
                        Shape::Any
                    } else {
                        shape
                    };
                    entry.1.push((field.clone(), json!({"type": shape.name()})));
                }
            }
        }
    }
    let pascal = |s: &String| s.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    let streams: serde_json::Map<String, Value> = streams
        .into_iter()
        .filter(pascal)
        .map(|s| (s, json!("a test stream")))
        .collect();
    let mut declared = serde_json::Map::new();
    for (name, (mut on, fields)) in events.into_iter().filter(|(n, _)| pascal(n)) {
        on.retain(pascal);
        on.dedup();
        if on.is_empty() {
            on.push("Patient".into());
        }
        let fields: serde_json::Map<String, Value> = fields.into_iter().collect();
        declared.insert(name, json!({"streams": on, "fields": fields}));
    }
    json!({"stream_types": streams, "events": declared}).to_string()
}

fn tenant(rules: &str, tables: &[(&str, &str)]) -> (tempfile::TempDir, Tenants) {
    let mut files = vec![
        ("tenant.yaml", "timezone: Europe/Berlin\n"),
        ("rules.yaml", rules),
    ];
    let tables: Vec<(String, &str)> = tables
        .iter()
        .map(|(n, t)| (format!("tables/{n}"), *t))
        .collect();
    files.extend(tables.iter().map(|(n, t)| (n.as_str(), *t)));
    let dir = folder(&files);
    let tenants = Tenants::load(dir.path()).unwrap_or_else(|e| panic!("{e:?}"));
    (dir, tenants)
}

/// The load errors of a mappings folder, as `line:col: message`.
fn load_errors(dir: &std::path::Path) -> Vec<String> {
    Tenants::load(dir)
        .unwrap_err()
        .iter()
        .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
        .collect()
}

/// (event type, stream type, data) of each event, or the dead letter's reason and detail.
type Outcome = Result<Vec<(String, String, Value)>, (Reason, Option<String>)>;

/// Maps an HL7 message with tenant `t1`'s rules.
fn run(tenants: &Tenants, msg: &str) -> Outcome {
    let t = tenants.get("t1").unwrap();
    let mut text = msg.to_string();
    crate::hl7::prepare(&mut text);
    let m = Hl7Message::parse(&text).unwrap();
    match t.rules.apply(&m, &m.header_lenient(), t.timezone) {
        Ok(ev) => Ok(ev
            .into_events()
            .into_iter()
            .map(|e| (e.event_type, e.stream_type, e.data))
            .collect()),
        Err(rejection) => Err((rejection.reason, rejection.detail)),
    }
}

const ORU: &str = "MSH|^~\\&|LAB|H|X|Y|20240301101500||ORU^R01|L1|P|2.5.1\r\
    PID|1||M1^^^H^MR\rOBR|1|P1|F1|CBC\r\
    OBX|1|NM|HGB^Hemoglobin^L||13.5|g/dl|12-16|N|||F|||20240301100000\rNTE|1||fasting\r\
    OBX|2|SN|CRP^CRP^L||<^0.5|mg/L|||||C\r\
    OBR|2|P2|F2|BMP\rOBX|1|CWE|CX^Culture^L||SAL^Salmonella^SCT||||||F\r\
    OBX|2|TX|RPT^Report^L||line one~line two||||||F";

#[test]
fn for_each_conditions_types_tables_and_fallback_streams() {
    let rules = r#"
rules:
  - message: ORU^R01
    events:
      - event: ResultIn
        for_each: { segment: OBX, children: [NTE] }
        when: [ { path: OBX.11, not_in: [C] } ]
        stream: { type: Admission, key: PV1.19 }
        or_stream: { type: Patient, key: PID.3.1 }
        fields: &f
          panel: { path: OBR.4 }
          code: { path: OBX.3.1, table: loinc, on_miss: pass }
          loinc: { path: OBX.3.1, table: loinc, on_miss: empty }
          value: { path: OBX.5, type: observation_value }
          unit: { path: OBX.6, transform: [lower], table: ucum }
          flags: { path: "OBX.8[*]", all: true }
          notes: { path: "NTE[*].3", all: true }
          kind: { value: lab }
          label: { concat: [OBR.4, OBX.3.2], separator: " / " }
          status: { path: OBX.11, default: unknown }
      - event: ResultFixed
        for_each: { segment: OBX, children: [NTE] }
        when: [ { path: OBX.11, equals: C } ]
        stream: { type: Patient, key: PID.3.1 }
        fields: *f
"#;
    let (_d, t) = tenant(
        rules,
        &[
            ("loinc.csv", "local,loinc\nHGB,718-7\n"),
            ("ucum.yaml", "g/dl: g/dL\n"),
        ],
    );
    let ev = run(&t, ORU).unwrap();
    let types: Vec<(&str, &str)> = ev
        .iter()
        .map(|(e, s, _)| (e.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("ResultIn", "Patient"),
            ("ResultFixed", "Patient"),
            ("ResultIn", "Patient"),
            ("ResultIn", "Patient")
        ]
    );
    assert_eq!(
        ev[0].2,
        json!({"panel": "CBC", "code": "718-7", "loinc": "718-7", "value": 13.5, "unit": "g/dL", "flags": ["N"],
               "notes": ["fasting"], "kind": "lab", "label": "CBC / Hemoglobin", "status": "F"})
    );
    assert_eq!(
        ev[1].2["value"],
        json!({"comparator": "<", "value": 0.5, "separator": null, "value2": null})
    );
    assert_eq!(ev[1].2["notes"], Value::Null, "no notes of a neighbour");
    assert_eq!(ev[2].2["panel"], "BMP", "each OBX sees its own OBR");
    assert_eq!(
        ev[2].2["value"],
        json!({"code": "SAL", "display": "Salmonella", "system": "SCT"})
    );
    assert_eq!(
        (ev[2].2["code"].as_str(), ev[2].2["loinc"].clone()),
        (Some("CX"), Value::Null),
        "pass vs empty on a miss"
    );
    assert_eq!(ev[3].2["value"], "line one\nline two");
    assert_eq!(ev[3].2["status"], "F");
}

#[test]
fn precise_dead_letters_for_each_mapping_failure() {
    let rules = r#"
rules:
  - message: ADT^A01
    when: [ { path: PV1.2, in: [I, E] } ]
    events:
      - event: Admitted
        stream: { type: Admission, key: PV1.19 }
        fields:
          n: { path: PV1.4, type: number }
          at: { path: PV1.44, type: timestamp }
          ward: { path: PV1.3.1, table: wards, on_miss: dead_letter }
          mrn: { path: PID.3.1, required: true }
"#;
    let (_d, t) = tenant(rules, &[("wards.csv", "code,name\nW1,Ward one\n")]);
    // PV1 from (field number, value) pairs.
    let pv1 = |fields: &[(usize, &str)]| {
        let mut f = vec![""; 45];
        for (n, v) in fields {
            f[*n] = v;
        }
        f[1..].join("|")
    };
    let msg = |pv1: &str, pid: &str| {
        format!("MSH|^~\\&|A|H|X|Y|20240301||ADT^A01|C1|P|2.5\rPID|1||{pid}\rPV1|{pv1}")
    };
    let good = [
        (1, "1"),
        (2, "I"),
        (3, "W1"),
        (4, "7"),
        (19, "V1"),
        (44, "20240301120000"),
    ];
    let with = |changes: &[(usize, &str)]| {
        let mut f: Vec<(usize, &str)> = good.to_vec();
        f.extend_from_slice(changes);
        pv1(&f)
    };
    let ok = run(&t, &msg(&with(&[]), "M1")).unwrap();
    assert_eq!(
        ok[0].2,
        json!({"n": 7, "at": "2024-03-01T12:00:00+01:00", "ward": "Ward one", "mrn": "M1"})
    );
    let err = |pv1: &str, pid: &str| run(&t, &msg(pv1, pid)).unwrap_err();
    assert_eq!(
        err(&with(&[(2, "O")]), "M1"),
        (Reason::UnmappedMessageType, Some("ADT^A01".into())),
        "condition fails"
    );
    assert_eq!(
        err(&with(&[(4, "x")]), "M1"),
        (
            Reason::MappingInvalidValue,
            Some("field n (PV1.4) is not a number".into())
        )
    );
    assert_eq!(
        err(&with(&[(44, "2024-03-01")]), "M1"),
        (
            Reason::MappingInvalidValue,
            Some(
                "field at (PV1.44) is not an HL7 timestamp: its offset is not +HHMM or -HHMM"
                    .into()
            )
        )
    );
    assert_eq!(
        err(&with(&[(44, "20241301")]), "M1"),
        (
            Reason::MappingInvalidValue,
            Some("field at (PV1.44) is not an HL7 timestamp: it names no calendar date".into())
        ),
        "the reason names the rule broken, not the value"
    );
    assert_eq!(
        err(&with(&[(3, "W9")]), "M1"),
        (
            Reason::MappingTableMiss,
            Some("table wards, field ward (PV1.3.1)".into())
        )
    );
    assert_eq!(
        err(&with(&[]), ""),
        (
            Reason::MappingRequiredField,
            Some("field mrn (PID.3.1)".into())
        )
    );
    assert_eq!(
        err(&with(&[(19, "")]), "M1"),
        (
            Reason::MappingRequiredField,
            Some("stream key of Admitted (PV1.19)".into())
        )
    );
}

#[test]
fn a_rule_after_an_unconditioned_one_is_reported_unreachable() {
    let event = "    events:\n      - event: E\n        stream: { type: S, key: PID.3 }\n        fields: {}\n";
    let rules = format!("rules:\n  - message: ADT^A01\n{event}  - message: [ADT^A01, ADT^A02]\n    when: [ {{ path: PV1.2, equals: I }} ]\n{event}");
    let dir = folder(&[("tenant.yaml", "timezone: UTC\n"), ("rules.yaml", &rules)]);
    assert_eq!(
        load_errors(dir.path()),
        ["7:14: unreachable: an earlier rule for ADT^A01 has no conditions"]
    );
}

#[test]
fn routing_matches_msh4_by_its_first_component_in_the_messages_own_delimiters() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("north");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(
        t.join("tenant.yaml"),
        "timezone: UTC\nrouting:\n  sending_facilities: [NORTH]\n",
    )
    .unwrap();
    let tenants = Tenants::load(dir.path()).unwrap();
    let route = |msh: &str| {
        let m = crate::hl7::Hl7Message::parse(msh).unwrap();
        tenants.route(&m.header_lenient()).map(|t| t.name.clone())
    };
    assert_eq!(
        route("MSH|^~\\&|APP|NORTH^1.2.3^ISO|X|Y|2024||ADT^A01|1|P|2.5").as_deref(),
        Some("north")
    );
    assert_eq!(
        route("MSH|$~\\&|APP|NORTH$1.2.3$ISO|X|Y|2024||ADT$A01|1|P|2.5").as_deref(),
        Some("north")
    );
    assert_eq!(route("MSH|^~\\&|APP|SOUTH|X|Y|2024||ADT^A01|1|P|2.5"), None);
}

#[test]
fn an_ignoring_rule_filters_what_it_matches_in_both_languages() {
    let rules = "rules:\n  - message: ADT^A14\n    when: [ { path: PV1.2, equals: P } ]\n    ignore: true\n    reason: pre-admits are not used\n  - message: ADT^A14\n    events:\n      - event: E\n        stream: { type: S, key: PID.3 }\n        fields: {}\n";
    let fhir = "resources:\n  - resource: Observation\n    ignore: true\n    reason: \"vitals come from the monitors\"\n";
    let dir = folder(&[
        ("tenant.yaml", "timezone: UTC\n"),
        ("rules.yaml", rules),
        ("fhir.yaml", fhir),
    ]);
    let tenants = Tenants::load(dir.path()).unwrap_or_else(|e| panic!("{e:?}"));
    let t = tenants.get("t1").unwrap();
    let hl7 = |pv1_2: &str| {
        let text =
            format!("MSH|^~\\&|A|H|X|Y|20240301||ADT^A14|C1|P|2.5\rPID|1||M1\rPV1|1|{pv1_2}");
        let m = Hl7Message::parse(&text).unwrap();
        t.rules.apply(&m, &m.header_lenient(), t.timezone).unwrap()
    };
    let filtered = super::Mapped::Filtered(super::Filter {
        reason: "pre-admits are not used".into(),
        file: "rules.yaml".into(),
    });
    assert_eq!(hl7("P"), filtered);
    assert_eq!(
        hl7("I").into_events().len(),
        1,
        "the condition narrows the filter"
    );
    let obs = json!({"resourceType": "Observation", "status": "final"});
    match t.fhir.rules.apply(&obs, t.timezone).unwrap() {
        super::Mapped::Filtered(f) => assert_eq!(f.reason, "vitals come from the monitors"),
        other => panic!("{other:?}"),
    }
    // A Bundle of nothing but filtered entries is filtered as a whole.
    let bundle = json!({"resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": obs}, {"resource": obs}]});
    assert!(matches!(
        t.fhir.rules.apply(&bundle, t.timezone).unwrap(),
        super::Mapped::Filtered(_)
    ));
}

#[test]
fn an_ignoring_rule_needs_a_reason_and_no_events() {
    let event = "    events:\n      - event: E\n        stream: { type: S, key: PID.3 }\n        fields: {}\n";
    let rules = format!(
        "rules:\n  - message: ADT^A14\n    ignore: true\n  - message: ADT^A15\n    ignore: true\n    reason: x\n{event}  - message: ADT^A16\n    reason: x\n{event}"
    );
    let dir = folder(&[("tenant.yaml", "timezone: UTC\n"), ("rules.yaml", &rules)]);
    assert_eq!(
        load_errors(dir.path()),
        [
            "2:14: ignore: true needs a reason: (why these messages are not mapped)",
            "5:13: an ignoring rule has no events: remove events: or ignore:",
            "12:13: reason: only an ignoring rule (ignore: true) has one",
        ]
    );
}

#[test]
fn on_item_error_belongs_to_an_event_with_for_each() {
    let rules = "rules:\n  - message: ADT^A01\n    events:\n      - event: E\n        on_item_error: skip\n        stream: { type: S, key: PID.3 }\n        fields: {}\n";
    let dir = folder(&[("tenant.yaml", "timezone: UTC\n"), ("rules.yaml", rules)]);
    assert_eq!(
        load_errors(dir.path()),
        ["5:24: on_item_error: only an event with for_each has items"]
    );
}

#[test]
fn a_message_over_the_tenants_event_limit_is_refused_before_it_is_all_mapped() {
    let rules = "rules:\n  - message: ORU^R01\n    events:\n      - event: ResultIn\n        for_each: { segment: OBX }\n        on_item_error: skip\n        stream: { type: Patient, key: PID.3.1 }\n        fields: { code: { path: OBX.3.1, required: true } }\n";
    let dir = folder(&[
        ("tenant.yaml", "timezone: UTC\nmax_events_per_message: 3\n"),
        ("rules.yaml", rules),
    ]);
    let tenants = Tenants::load(dir.path()).unwrap();
    let oru = |n: usize, bad: usize| {
        let mut m = "MSH|^~\\&|L|F|I|I|2024||ORU^R01|1|P|2.5\rPID|1||M1\r".to_string();
        for i in 0..n {
            let code = if i < bad { "" } else { "HGB" };
            m.push_str(&format!("OBX|{}|NM|{code}||1\r", i + 1));
        }
        m
    };
    assert_eq!(run(&tenants, &oru(3, 0)).unwrap().len(), 3, "at the limit");
    let refused = (
        Reason::MappingTooManyEvents,
        Some("more than 3 events or items".to_string()),
    );
    assert_eq!(run(&tenants, &oru(4, 0)).unwrap_err(), refused);
    // Skipped items count too: a flood of bad items is refused as well.
    assert_eq!(run(&tenants, &oru(4, 3)).unwrap_err(), refused);
}

#[test]
fn a_retention_policy_is_days_of_one_to_a_hundred_years_located_when_wrong() {
    let rules = "rules: []\n";
    let load = |settings: &str| {
        let dir = folder(&[("tenant.yaml", settings), ("rules.yaml", rules)]);
        match Tenants::load(dir.path()) {
            Ok(t) => Ok(t.get("t1").unwrap().raw_retention_days),
            Err(_) => Err(load_errors(dir.path())),
        }
    };
    assert_eq!(load("timezone: UTC\n"), Ok(None), "absent: kept forever");
    assert_eq!(
        load("timezone: UTC\nretention:\n  raw_messages_days: 30\n"),
        Ok(Some(30))
    );
    let zero = load("timezone: UTC\nretention:\n  raw_messages_days: 0\n").unwrap_err();
    assert_eq!(zero.len(), 1);
    assert!(
        zero[0].starts_with("3:22: retention.raw_messages_days: 0 is not 1 to 36525 days"),
        "{zero:?}"
    );
    for bad in [
        "timezone: UTC\nretention:\n  raw_messages_days: -3\n",
        "timezone: UTC\nretention:\n  raw_messages_days: soon\n",
        "timezone: UTC\nretention:\n  raw_days: 3\n",
    ] {
        let e = load(bad).unwrap_err();
        assert!(e[0].starts_with("3:"), "{bad}: located on its line: {e:?}");
    }
}
