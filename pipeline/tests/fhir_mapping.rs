//! FHIR rules end to end on the shipped demo mappings: a resource in, events out.

use intake_pipeline::event::NewEvent;
use intake_pipeline::mapping::Tenants;
use intake_pipeline::{process, Disposition, Format, RawMessage, Reason};
use serde_json::{json, Value};
use std::path::Path;

fn demo() -> Tenants {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    Tenants::load(&dir).unwrap_or_else(|e| panic!("{e:?}"))
}

fn run(tenants: &Tenants, resource: &Value) -> Result<Vec<NewEvent>, (Reason, Option<String>)> {
    run_bytes(tenants, resource.to_string().into_bytes(), Format::FhirJson)
}

fn run_bytes(
    tenants: &Tenants,
    bytes: Vec<u8>,
    format: Format,
) -> Result<Vec<NewEvent>, (Reason, Option<String>)> {
    let p = process(
        RawMessage::new(Some("demo".into()), format, "test", bytes),
        tenants,
    );
    match p.disposition {
        Disposition::Events(ev) => Ok(ev),
        Disposition::Filtered(f) => panic!("filtered: {}", f.reason),
        Disposition::DeadLetter { rejection, .. } => Err((rejection.reason, rejection.detail)),
    }
}

/// The rules alone, for values the decoder (fhirbolt, strict) would refuse first.
fn apply(
    tenants: &Tenants,
    resource: &Value,
) -> Result<Vec<intake_pipeline::mapping::MappedEvent>, (Reason, Option<String>)> {
    let t = tenants.get("demo").unwrap();
    t.fhir
        .rules
        .apply(resource, t.timezone)
        .map(|m| m.into_events())
        .map_err(|r| (r.reason, r.detail))
}

fn types(events: &[NewEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

fn sample(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/demo")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

const MRN: &str = "http://demo-hospital.example/mrn";
const VISIT: &str = "http://demo-hospital.example/visit";

fn encounter(locations: usize, version: &str) -> Value {
    let codes = ["ER", "CT", "WEST4", "ICU1", "SDU2", "WEST5", "HOME"];
    let location: Vec<Value> = (0..locations)
        .map(|i| {
            json!({"location": {"identifier": {"value": codes[i]}},
                        "period": {"start": format!("2026-11-2{i}T10:00:00-05:00")}})
        })
        .collect();
    json!({"resourceType": "Encounter", "id": "e1", "meta": {"versionId": version},
           "status": "in-progress", "class": {"code": "IMP"},
           "identifier": [{"system": "urn:other", "value": "X9"}, {"system": VISIT, "value": "V1"}],
           "subject": {"identifier": {"system": MRN, "value": "M1"}},
           "period": {"start": "2026-11-20T10:00:00-05:00"},
           "location": location})
}

#[test]
fn patient_versions_register_then_update() {
    let t = demo();
    let mut p = json!({"resourceType": "Patient", "id": "p1",
        "identifier": [{"system": "urn:ssn", "value": "S"}, {"system": MRN, "value": "M1"}],
        "name": [{"family": "F", "given": ["G"]}], "gender": "male", "birthDate": "1970-01-02"});
    let ev = run(&t, &p).unwrap();
    assert_eq!(types(&ev), ["PatientRegistered"], "no versionId");
    assert_eq!(
        ev[0].data["patient_mrn"], "M1",
        "the mrn system wins over the first identifier"
    );
    assert_eq!(ev[0].data["sex"], "M");
    assert_eq!(ev[0].data["birth_date"], "1970-01-02");
    assert_eq!(ev[0].metadata["source"], "Patient/p1#PatientRegistered");
    p["meta"] = json!({"versionId": "1"});
    assert_eq!(types(&run(&t, &p).unwrap()), ["PatientRegistered"]);
    p["meta"] = json!({"versionId": "2", "lastUpdated": "2026-01-01T10:00:00Z"});
    let ev = run(&t, &p).unwrap();
    assert_eq!(types(&ev), ["PatientUpdated"]);
    assert_eq!(
        ev[0].metadata["source"],
        "Patient/p1/_history/2#PatientUpdated"
    );
    assert_eq!(ev[0].data["updated_at"], "2026-01-01T10:00:00+00:00");
    assert_eq!(ev[0].stream_type, "Patient");
}

#[test]
fn encounter_history_gives_location_changes_in_order_and_a_later_version_adds_only_the_new_one() {
    let t = demo();
    let v1 = run(&t, &encounter(5, "1")).unwrap();
    assert_eq!(types(&v1)[0], "AdmissionCreated");
    let moves: Vec<&NewEvent> = v1
        .iter()
        .filter(|e| e.event_type == "LocationChanged")
        .collect();
    assert_eq!(moves.len(), 5);
    let pairs: Vec<(Value, Value)> = moves
        .iter()
        .map(|e| {
            (
                e.data["from_location"].clone(),
                e.data["to_location"].clone(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (Value::Null, json!("ER")),
            (json!("ER"), json!("CT")),
            (json!("CT"), json!("WEST4")),
            (json!("WEST4"), json!("ICU1")),
            (json!("ICU1"), json!("SDU2")),
        ]
    );
    assert_eq!(moves[3].data["effective_at"], "2026-11-23T10:00:00-05:00");
    assert_eq!(
        moves[3].metadata["source"],
        "Encounter/e1#LocationChanged#3"
    );
    assert!(v1
        .iter()
        .all(|e| e.stream_type == "Admission" && e.data["visit_number"] == "V1"));

    // The same resource again: the same ids (the store keeps none twice).
    let again = run(&t, &encounter(5, "1")).unwrap();
    let ids = |ev: &[NewEvent]| ev.iter().map(|e| e.event_id).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&v1));
    // Version 2 with one more location: exactly one event id is new.
    let v2 = run(&t, &encounter(6, "2")).unwrap();
    let new: Vec<&NewEvent> = v2
        .iter()
        .filter(|e| !ids(&v1).contains(&e.event_id))
        .collect();
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].data["from_location"], "SDU2");
    assert_eq!(new[0].data["to_location"], "WEST5");
    // Finished: DischargeCompleted once, still no repeat of the others.
    let mut done = encounter(6, "3");
    done["status"] = json!("finished");
    done["period"]["end"] = json!("2026-11-27T09:00:00-05:00");
    let v3 = run(&t, &done).unwrap();
    let new: Vec<&str> = v3
        .iter()
        .filter(|e| !ids(&v2).contains(&e.event_id))
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(new, ["DischargeCompleted"]);
}

#[test]
fn hl7_a02_and_the_equivalent_fhir_encounter_have_the_same_shape_on_the_same_stream() {
    let t = demo();
    let hl7 = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/demo/a02-transfer.hl7"),
    )
    .unwrap();
    let a02 = run_bytes(&t, hl7, Format::Hl7v2).unwrap();
    let fhir = run(&t, &sample("fhir-encounter-history.json")).unwrap();
    let fhir_move = fhir
        .iter()
        .rfind(|e| e.event_type == "LocationChanged")
        .unwrap();
    let shape = |v: &Value| -> Vec<(String, &'static str)> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, x)| {
                let kind = match x {
                    Value::Null => "null",
                    Value::String(_) => "string",
                    Value::Number(_) => "number",
                    _ => "other",
                };
                (k.clone(), kind)
            })
            .collect()
    };
    assert_eq!(a02[0].event_type, fhir_move.event_type);
    assert_eq!(a02[0].stream_type, fhir_move.stream_type);
    assert_eq!(
        a02[0].stream_id, fhir_move.stream_id,
        "same visit number, same stream"
    );
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&a02[0].data), keys(&fhir_move.data));
    // Beds are not carried by FHIR locations (null), reason neither; the rest are strings.
    for ((k, h), (_, f)) in shape(&a02[0].data).into_iter().zip(shape(&fhir_move.data)) {
        assert!(h == f || f == "null", "{k}: HL7 {h}, FHIR {f}");
    }
    // Lab results too: ORU and FHIR Observation, the same fields and stream.
    let oru = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/demo/oru-numeric.hl7"),
    )
    .unwrap();
    let oru = run_bytes(&t, oru, Format::Hl7v2).unwrap();
    let obs = run(&t, &sample("fhir-observation-lab.json")).unwrap();
    assert_eq!(keys(&oru[0].data), keys(&obs[0].data));
    assert_eq!(oru[0].stream_id, obs[0].stream_id);
    assert_eq!(obs[0].data["value"], json!(13.2));
    assert_eq!(obs[0].data["value_type"], "NM");
    assert_eq!(obs[0].data["result_status"], "F");
    assert_eq!(obs[0].data["reference_range"], "4.0-11.0");
}

#[test]
fn observations_by_status_and_category() {
    let t = demo();
    let mut o = sample("fhir-observation-lab.json");
    assert_eq!(types(&run(&t, &o).unwrap()), ["LabResultReceived"]);
    o["status"] = json!("amended");
    o["meta"]["versionId"] = json!("2");
    let ev = run(&t, &o).unwrap();
    assert_eq!(types(&ev), ["LabResultCorrected"]);
    assert_eq!(
        ev[0].metadata["source"],
        "Observation/obs-wbc-1/_history/2#LabResultCorrected"
    );
    assert_eq!(ev[0].data["result_status"], "C");
    o["status"] = json!("entered-in-error");
    assert_eq!(types(&run(&t, &o).unwrap()), ["LabResultRetracted"]);
    // A vital sign has no (holding) rule: alone, it is an unmapped resource type.
    o["category"][0]["coding"][0]["code"] = json!("vital-signs");
    assert_eq!(
        run(&t, &o).unwrap_err(),
        (Reason::UnmappedResourceType, Some("Observation".into()))
    );
    // Without encounter: the Patient stream of the MRN.
    let mut o = sample("fhir-observation-lab.json");
    o.as_object_mut().unwrap().remove("encounter");
    let ev = run(&t, &o).unwrap();
    assert_eq!(
        (ev[0].stream_type.as_str(), &ev[0].data["visit_number"]),
        ("Patient", &Value::Null)
    );
    // Value types shaped like OBX-5.
    let mut o = sample("fhir-observation-lab.json");
    o.as_object_mut().unwrap().remove("valueQuantity");
    for (value, want, kind) in [
        (json!({"valueString": "clear"}), json!("clear"), "ST"),
        (
            json!({"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "10828004", "display": "Positive"}]}}),
            json!({"code": "10828004", "display": "Positive", "system": "http://snomed.info/sct"}),
            "CWE",
        ),
        (
            json!({"valueQuantity": {"value": 5, "comparator": "<"}}),
            json!({"comparator": "<", "value": 5, "separator": null, "value2": null}),
            "SN",
        ),
        (
            json!({"valueRange": {"low": {"value": 1}, "high": {"value": 3}}}),
            json!({"comparator": null, "value": 1, "separator": "-", "value2": 3}),
            "SN",
        ),
        (
            json!({"valueDateTime": "2026-01-02"}),
            json!("2026-01-02T00:00:00-05:00"),
            "DTM",
        ),
    ] {
        let mut x = o.clone();
        x.as_object_mut()
            .unwrap()
            .extend(value.as_object().unwrap().clone());
        let ev = run(&t, &x).unwrap();
        assert_eq!(
            (&ev[0].data["value"], ev[0].data["value_type"].as_str()),
            (&want, Some(kind))
        );
    }
}

#[test]
fn diagnostic_reports_map_contained_and_bundled_results_once() {
    let t = demo();
    let ev = run(&t, &sample("fhir-diagnosticreport-contained.json")).unwrap();
    assert_eq!(
        types(&ev),
        [
            "LabResultReceived",
            "LabResultReceived",
            "LabResultCorrected",
            "LabResultRetracted"
        ]
    );
    assert!(ev
        .iter()
        .all(|e| e.data["panel_code"] == "58410-2" && e.data["patient_mrn"] == "MRN100234"));
    let ev = run(&t, &sample("fhir-diagnosticreport-bundle.json")).unwrap();
    let codes: Vec<&Value> = ev.iter().map(|e| &e.data["code"]).collect();
    assert_eq!(
        codes[..2],
        [&json!("2951-2"), &json!("2160-0")],
        "each result once, report order"
    );
    assert_eq!(types(&ev)[2], "PatientRegistered");
    assert_eq!(
        ev[0].metadata["source"],
        "Observation/obs-na-7#LabResultReceived"
    );
    // Posted alone, a result maps to the same event id as through its report.
    let bundle = sample("fhir-diagnosticreport-bundle.json");
    let alone = run(&t, &bundle["entry"][1]["resource"]);
    assert!(
        alone.is_err(),
        "alone, its subject urn:uuid does not resolve: no MRN"
    );
    let mut with_mrn = bundle["entry"][1]["resource"].clone();
    with_mrn["subject"] = json!({"identifier": {"system": MRN, "value": "MRN200777"}});
    let alone = run(&t, &with_mrn).unwrap();
    assert_eq!(alone[0].metadata["source"], ev[0].metadata["source"]);
}

#[test]
fn bundles_map_every_entry_or_fail_whole() {
    let t = demo();
    let ev = run(&t, &sample("fhir-transaction.json")).unwrap();
    assert_eq!(
        types(&ev),
        [
            "PatientRegistered",
            "AdmissionCreated",
            "LocationChanged",
            "LocationChanged",
            "LabResultReceived"
        ],
        "the vital sign is skipped inside a Bundle"
    );
    assert_eq!(
        ev[1].data["admitted_at"], "2026-11-25T22:10:00-05:00",
        "no zone: tenant time"
    );
    assert_eq!(
        ev[4].data["visit_number"], "V20261125-0042",
        "resolved by fullUrl"
    );
    let (reason, detail) = run(&t, &sample("fhir-transaction-bad-entry.json")).unwrap_err();
    assert_eq!(reason, Reason::MappingRequiredField);
    assert_eq!(
        detail.as_deref(),
        Some("entry[3] Observation: field code (code.coding.code)")
    );
    let mut bad = sample("fhir-transaction.json");
    bad["entry"][3]["resource"]["valueQuantity"]["value"] = json!("Doe");
    let (reason, detail) = apply(&t, &bad).unwrap_err();
    assert_eq!(reason, Reason::MappingInvalidValue);
    assert_eq!(
        detail.as_deref(),
        Some("entry[3] Observation: field value (value) is not a Quantity with a numeric value")
    );
    assert_eq!(
        run(&t, &sample("fhir-transaction-response.json")).unwrap_err(),
        (Reason::MappingNoEvents, Some("Bundle".into()))
    );
    let only_unmapped = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Medication"}}, {"request": {"method": "DELETE", "url": "Patient/1"}}]});
    assert_eq!(
        run(&t, &only_unmapped).unwrap_err().0,
        Reason::MappingNoEvents
    );
    let ev = run(&t, &sample("fhir-message-preadmit.json")).unwrap();
    assert_eq!(
        types(&ev),
        ["AdmissionPreadmitted"],
        "MessageHeader skipped, planned location no move"
    );
    let searchset = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": "http://x/Patient/a", "resource": sample("fhir-patient-create.json"), "search": {"mode": "match"}}]});
    assert_eq!(types(&run(&t, &searchset).unwrap()), ["PatientRegistered"]);
}

#[test]
fn details_name_paths_and_types_never_values() {
    let t = demo();
    let hostile = json!({"resourceType": "Doe, John 1970-01-01", "id": "x"});
    let (reason, detail) = apply(&t, &hostile).unwrap_err();
    assert_eq!(reason, Reason::UnmappedResourceType);
    assert_eq!(detail.as_deref(), Some("unrecognised resource type"));
    let mut p = sample("fhir-patient-create.json");
    p["birthDate"] = json!("SECRET-1980");
    let (reason, detail) = apply(&t, &p).unwrap_err();
    assert_eq!(reason, Reason::MappingInvalidValue);
    let detail = detail.unwrap();
    assert!(
        !detail.contains("SECRET") && detail.contains("birth_date (birthDate)"),
        "{detail}"
    );
    let mut e = encounter(1, "1");
    e["subject"] = json!({"display": "John Doe"});
    let (_, detail) = run(&t, &e).unwrap_err();
    assert!(detail.unwrap().starts_with("field patient_mrn ("));
}

#[test]
fn check_reports_fhir_rule_errors_at_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t1");
    std::fs::create_dir_all(t.join("tables")).unwrap();
    std::fs::write(
        t.join("tenant.yaml"),
        "timezone: UTC\nfhir:\n  mode: lax\n  identifiers: { mrn: [urn:m] }\n",
    )
    .unwrap();
    let rules = "# FHIR\nresources:\n  - resource: Patient\n    events:\n      - event: PatientRegistered\n        stream: { type: Patient, key: \"identifier.where(system = %visit).value\" }\n        fields:\n          family_name: { path: name.foo() }\n          given_name: { path: name, table: nope }\n  - resource: bundle\n    events: []\n";
    std::fs::write(t.join("fhir.yaml"), rules).unwrap();
    let errors = Tenants::load(dir.path()).unwrap_err();
    let shown: Vec<String> = errors
        .iter()
        .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
        .collect();
    assert_eq!(shown.len(), 5, "{shown:#?}");
    assert_eq!(
        shown[0],
        "5:16: event PatientRegistered needs field(s) patient_mrn (required in the catalogue)",
        "the catalogue holds FHIR rules too"
    );
    assert!(
        shown[1].starts_with("6:66: invalid FHIRPath: unknown identifier system list %visit"),
        "{}",
        shown[1]
    );
    assert!(
        shown
            .iter()
            .any(|s| s.starts_with("8:37: invalid FHIRPath: unknown function")),
        "{shown:#?}"
    );
    assert!(
        shown.iter().any(|s| s.contains("no table \"nope\"")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.starts_with("10:15: resource must be")),
        "{shown:#?}"
    );
    // Valid: the mode and identifiers reach the tenant.
    std::fs::write(t.join("fhir.yaml"), "resources:\n  - resource: Patient\n    events:\n      - event: PatientRegistered\n        stream: { type: Patient, key: \"identifier.where(system = %mrn).value\" }\n        fields: { patient_mrn: { path: identifier.value, required: true } }\n").unwrap();
    let tenants = Tenants::load(dir.path()).unwrap();
    let tenant = tenants.get("t1").unwrap();
    assert_eq!(tenant.fhir.mode, intake_pipeline::fhir::Mode::Lax);
    assert_eq!(
        tenant.fhir.rules.resource_types().collect::<Vec<_>>(),
        ["Patient"]
    );
    assert!(tenant.rules.message_codes().next().is_none());
}
