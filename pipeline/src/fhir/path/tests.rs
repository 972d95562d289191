use super::*;
use serde_json::json;

fn ids() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([(
        "mrn".to_string(),
        vec!["urn:mrn".to_string(), "http://h/mrn".to_string()],
    )])
}

/// The texts an expression finds on `v` (a Bundle indexes its entries).
fn texts(expr: &str, v: &Value) -> Vec<String> {
    texts_in(expr, v, v, None)
}

fn texts_in(expr: &str, ctx: &Value, resource: &Value, previous: Option<&Value>) -> Vec<String> {
    let p = FhirPath::parse(expr, &["mrn"]).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let identifiers = ids();
    let index = Index::new(resource);
    let env = Env {
        resource,
        previous,
        identifiers: &identifiers,
        index: &index,
    };
    p.eval(ctx, &env).iter().filter_map(node_text).collect()
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient", "id": "p1",
        "identifier": [
            {"system": "urn:ssn", "value": "S1"},
            {"system": "http://h/mrn", "value": "M1"},
            {"system": "urn:mrn", "value": "M2"}
        ],
        "name": [{"use": "old", "family": "F0", "given": ["G0"]},
                 {"use": "official", "family": "F1", "given": ["G1", "G2"]}],
        "active": true,
        "multipleBirthInteger": 2
    })
}

#[test]
fn members_flatten_and_index() {
    let p = patient();
    assert_eq!(texts("name.given", &p), ["G0", "G1", "G2"]);
    assert_eq!(texts("name[1].given[0]", &p), ["G1"]);
    assert_eq!(
        texts("name.given[2]", &p),
        ["G2"],
        "index over the flattened collection"
    );
    assert_eq!(texts("name.given.first()", &p), ["G0"]);
    assert_eq!(
        texts("Patient.name[0].family", &p),
        ["F0"],
        "a leading type filters"
    );
    assert!(texts("Encounter.name", &p).is_empty());
    assert_eq!(texts("active", &p), ["true"]);
    assert!(texts("name[5]", &p).is_empty());
    assert!(texts("nothing.here", &p).is_empty());
}

#[test]
fn where_with_literals_and_identifier_systems() {
    let p = patient();
    assert_eq!(texts("name.where(use = 'official').family", &p), ["F1"]);
    assert_eq!(
        texts("identifier.where(system='urn:ssn').value", &p),
        ["S1"]
    );
    assert_eq!(
        texts("identifier.where(system = %mrn).value", &p),
        ["M1", "M2"],
        "any system listed under the name, in document order"
    );
    assert!(texts("identifier.where(system = 'none').value", &p).is_empty());
    let obs = json!({"category": [{"coding": [{"code": "x"}, {"code": "laboratory"}]}]});
    assert_eq!(
        texts(
            "category.where(coding.code = 'laboratory').coding.code",
            &obs
        ),
        ["x", "laboratory"]
    );
}

#[test]
fn fallback_literals_and_empty() {
    let p = patient();
    assert_eq!(
        texts("identifier.where(system='x').value | name.family", &p),
        ["F0", "F1"]
    );
    assert_eq!(texts("meta.versionId | '1'", &p), ["1"]);
    assert!(texts("{}", &p).is_empty());
    assert_eq!(texts(r"'a\'b'", &p), ["a'b"]);
}

#[test]
fn choice_types_and_of_type() {
    let o = json!({"resourceType": "Observation", "valueQuantity": {"value": 13.2, "code": "g/dL"},
                   "effectivePeriod": {"start": "2024-01-01"}});
    let p = FhirPath::parse("value", &[]).unwrap();
    let (ids, index) = (BTreeMap::new(), Index::default());
    let env = Env {
        resource: &o,
        previous: None,
        identifiers: &ids,
        index: &index,
    };
    let found = p.eval(&o, &env);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].choice, Some("Quantity"));
    assert_eq!(texts("value.value", &o), ["13.2"]);
    assert_eq!(texts("value.ofType(Quantity).code", &o), ["g/dL"]);
    assert!(texts("value.ofType(string)", &o).is_empty());
    assert_eq!(texts("effective.ofType(Period).start", &o), ["2024-01-01"]);
    assert_eq!(
        texts("effectiveDateTime | effective.ofType(Period).start", &o),
        ["2024-01-01"]
    );
    let b = json!({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Patient", "id": "a"}},
        {"resource": {"resourceType": "Observation", "id": "b"}}]});
    assert_eq!(texts("entry.resource.ofType(Observation).id", &b), ["b"]);
}

#[test]
fn resolve_contained_bundle_entries_and_reference_keys() {
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "identifier": [{"value": "P-uuid"}]}},
        {"fullUrl": "http://x/fhir/Patient/p7", "resource": {"resourceType": "Patient", "id": "p7", "identifier": [{"value": "P-7"}]}},
        {"resource": {"resourceType": "DiagnosticReport", "id": "r",
                      "contained": [{"resourceType": "Observation", "id": "o1", "status": "final"}],
                      "result": [{"reference": "#o1"}, {"reference": "#missing"}]}}
    ]});
    let report = &bundle["entry"][2]["resource"];
    let refs = |r: &str| json!({"subject": {"reference": r}});
    for (r, want) in [
        ("urn:uuid:1", "P-uuid"),
        ("Patient/p7", "P-7"),
        ("http://other/fhir/Patient/p7/_history/3", "P-7"),
    ] {
        let ctx = refs(r);
        let index = Index::new(&bundle);
        let (ids, p) = (
            ids(),
            FhirPath::parse("subject.resolve().identifier.value", &[]).unwrap(),
        );
        let env = Env {
            resource: &ctx,
            previous: None,
            identifiers: &ids,
            index: &index,
        };
        let got: Vec<String> = p.eval(&ctx, &env).iter().filter_map(node_text).collect();
        assert_eq!(got, [want], "{r}");
    }
    assert!(texts("entry.resource.subject.resolve()", &refs("Patient/none")).is_empty());
    assert_eq!(
        texts_in("result.resolve().status", report, report, None),
        ["final"]
    );
    let loc = json!({"location": {"reference": "Location/icu-1/_history/2"}, "x": {"reference": "#c"}, "y": "Location/z"});
    assert_eq!(texts("location.getReferenceKey()", &loc), ["icu-1"]);
    assert_eq!(texts("x.getReferenceKey()", &loc), ["c"]);
    assert_eq!(texts("y.getReferenceKey()", &loc), ["z"]);
}

#[test]
fn resource_and_previous() {
    let enc = json!({"resourceType": "Encounter", "status": "finished",
                     "location": [{"location": {"display": "A"}}, {"location": {"display": "B"}}]});
    let second = &enc["location"][1];
    let first = &enc["location"][0];
    assert_eq!(
        texts_in("location.display", second, &enc, Some(first)),
        ["B"]
    );
    assert_eq!(
        texts_in("%previous.location.display", second, &enc, Some(first)),
        ["A"]
    );
    assert!(texts_in("%previous.location.display", first, &enc, None).is_empty());
    assert_eq!(
        texts_in("%resource.status", second, &enc, None),
        ["finished"]
    );
}

#[test]
fn syntax_errors_point_at_the_offending_character() {
    let e = |s: &str| FhirPath::parse(s, &["mrn"]).unwrap_err();
    assert_eq!(e("name.").offset, 5);
    assert_eq!(e("name..given").offset, 5);
    assert_eq!(e("name.foo()").offset, 5);
    assert!(e("name.foo()").message.contains("unknown function"));
    assert_eq!(e("identifier.where(system = %visit)").offset, 26);
    assert!(e("identifier.where(system = %visit)")
        .message
        .contains("%visit"));
    assert_eq!(e("where(system)").offset, 12);
    assert_eq!(e("name[x]").offset, 5);
    assert_eq!(e("name | ").offset, 7);
    assert_eq!(e("'open").offset, 0);
    assert_eq!(e("%other.x").offset, 0);
    assert_eq!(e("name given").offset, 5);
    assert_eq!(
        e("name.").to_string(),
        "invalid FHIRPath: expected a name at character 6"
    );
}
