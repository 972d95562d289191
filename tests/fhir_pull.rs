//! FHIR pull against a real FHIR-like HTTP server on loopback (axum, its own thread and
//! runtime): `intake serve` searches it with `_lastUpdated`, follows `next` links across
//! pages, rides out a 429 (Retry-After in seconds) and a 503 (Retry-After as an HTTP
//! date), stores every resource once, and after a hard kill and restart fetches only what
//! is new. On SQLite and PostgreSQL.
//!
//! Each resource is one inbound message, mapped by the shipped demo tenant's FHIR rules;
//! the tests count inbound messages (events or dead letters) and events by type.

mod common;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::Server;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const TOKEN: &str = "pull-secret";
const PAGE: usize = 3;
/// A name no log line may contain.
const NAME: &str = "Zebediah";
/// The demo tenant's identifier systems (mappings/demo/tenant.yaml, `fhir.identifiers`).
const MRN_SYSTEM: &str = "urn:oid:2.16.840.1.113883.3.9999.1";
const VISIT_SYSTEM: &str = "urn:oid:2.16.840.1.113883.3.9999.2";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// 429 with `Retry-After: 1`.
    TooMany,
    /// 503 with `Retry-After: <HTTP date 1 s ahead>`.
    Unavailable,
    /// No answer for a minute.
    Hang,
}

#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    resource_type: String,
    /// The `_lastUpdated` parameter of a first-page search.
    last_updated: Option<String>,
    status: u16,
}

#[derive(Default)]
struct Fhir {
    resources: Vec<Value>,
    /// Faults by request number (1-based, every request counted).
    faults: HashMap<usize, Fault>,
    requests: Vec<Seen>,
    /// Ids of resources sent in 200 responses, in order.
    served: Vec<String>,
    /// Result snapshots for `next` links: token -> (resource type, ids).
    pages: HashMap<String, (String, Vec<Value>)>,
    addr: Option<SocketAddr>,
    /// Where `next` links point, when not at this server (another origin).
    next_origin: Option<SocketAddr>,
}

type Shared = Arc<Mutex<Fhir>>;

fn updated(r: &Value) -> String {
    r["meta"]["lastUpdated"].as_str().unwrap().to_string()
}

fn id(r: &Value) -> String {
    format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    )
}

async fn search(
    State(fhir): State<Shared>,
    Path(resource_type): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let hang = {
        let f = fhir.lock().unwrap();
        f.faults.get(&(f.requests.len() + 1)) == Some(&Fault::Hang)
    };
    if hang {
        fhir.lock().unwrap().requests.push(Seen {
            at: Instant::now(),
            resource_type,
            last_updated: q.get("_lastUpdated").cloned(),
            status: 0,
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    let mut f = fhir.lock().unwrap();
    let n = f.requests.len() + 1;
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    let fault = f.faults.get(&n).copied();
    let status = match (authorized, fault) {
        (false, _) => 401,
        (true, Some(Fault::TooMany)) => 429,
        (true, Some(Fault::Unavailable)) => 503,
        (true, Some(Fault::Hang) | None) => 200,
    };
    f.requests.push(Seen {
        at: Instant::now(),
        resource_type: resource_type.clone(),
        last_updated: q.get("_lastUpdated").cloned(),
        status,
    });
    match status {
        401 => return StatusCode::UNAUTHORIZED.into_response(),
        429 => return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response(),
        503 => {
            let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(1));
            return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", at)]).into_response();
        }
        _ => {}
    }
    // A first page runs the search and keeps its result; `next` pages read from it.
    let (matches, offset) = match q.get("_page") {
        Some(token) => {
            let (t, ids) = f.pages.get(token).cloned().expect("known page token");
            assert_eq!(t, resource_type);
            (ids, q["_offset"].parse::<usize>().unwrap())
        }
        None => {
            assert_eq!(q.get("_sort").map(String::as_str), Some("_lastUpdated"));
            let after = q
                .get("_lastUpdated")
                .map(|v| v.strip_prefix("gt").expect("gt prefix").to_string());
            let mut m: Vec<Value> = f
                .resources
                .iter()
                .filter(|r| r["resourceType"] == resource_type.as_str())
                .filter(|r| after.as_ref().is_none_or(|a| updated(r) > *a))
                .cloned()
                .collect();
            m.sort_by_key(|r| (updated(r), id(r)));
            (m, 0)
        }
    };
    let count: usize = q.get("_count").map_or(PAGE, |c| c.parse().unwrap());
    assert!(count > 0);
    let page: Vec<Value> = matches.iter().skip(offset).take(count).cloned().collect();
    let mut entries: Vec<Value> = page
        .iter()
        .map(|r| json!({"fullUrl": format!("urn:test:{}", id(r)), "resource": r, "search": {"mode": "match"}}))
        .collect();
    if offset == 0 {
        // Servers add warnings as outcome entries: not a resource to ingest.
        entries.push(json!({"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}}));
    }
    for r in &page {
        let i = id(r);
        f.served.push(i);
    }
    let mut links = vec![json!({"relation": "self", "url": "ignored"})];
    if offset + count < matches.len() {
        let token = format!("t{n}");
        f.pages
            .insert(token.clone(), (resource_type.clone(), matches));
        let addr = f.next_origin.or(f.addr).unwrap();
        links.push(json!({"relation": "next",
            "url": format!("http://{addr}/fhir/{resource_type}?_page={token}&_offset={}&_count={count}", offset + count)}));
    }
    let bundle =
        json!({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries});
    (
        [("content-type", "application/fhir+json")],
        bundle.to_string(),
    )
        .into_response()
}

/// Starts the FHIR server on its own thread and runtime (the test's runtime blocks while
/// intake starts).
fn start_fhir(fhir: Shared) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    fhir.lock().unwrap().addr = Some(addr);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route("/fhir/{resource_type}", get(search))
                .with_state(fhir);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

fn patient(n: usize, at: &str) -> Value {
    json!({
        "resourceType": "Patient", "id": format!("p{n}"),
        "meta": {"versionId": "1", "lastUpdated": at},
        "identifier": [{"system": MRN_SYSTEM, "value": format!("MRN-{n}")}],
        "name": [{"family": NAME, "given": ["Test"]}],
        "gender": "female", "birthDate": "1980-02-14"
    })
}

/// Version 1 is in progress (AdmissionCreated, one LocationChanged); version 2 finished
/// (adds DischargeCompleted).
fn encounter(n: usize, version: usize, at: &str) -> Value {
    let mut e = json!({
        "resourceType": "Encounter", "id": format!("e{n}"),
        "meta": {"versionId": version.to_string(), "lastUpdated": at},
        "identifier": [{"system": VISIT_SYSTEM, "value": format!("V{n}")}],
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": format!("Patient/p{n}"),
                    "identifier": {"system": MRN_SYSTEM, "value": format!("MRN-{n}")}},
        "period": {"start": "2026-11-22T08:30:00Z"},
        "location": [{"location": {"display": "WARD1"}, "period": {"start": "2026-11-22T08:30:00Z"}}]
    });
    if version > 1 {
        e["status"] = json!("finished");
        e["period"]["end"] = json!("2026-11-23T10:00:00Z");
    }
    e
}

/// Event types and their counts.
fn tally(events: &[intake_pipeline::event::EventEnvelope]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for e in events {
        *t.entry(e.event_type.clone()).or_default() += 1;
    }
    t
}

fn ts(s: u32) -> String {
    format!("2026-11-22T09:{:02}:{:02}.000Z", s / 60, s % 60)
}

/// Inbound messages of `demo` that were stored: dead letters plus distinct inbound ids of
/// events. Panics if an inbound message is both.
async fn stored(server: &Server) -> (usize, usize, usize) {
    let events = server.events("demo").await;
    let inbound: BTreeSet<String> = events
        .iter()
        .map(|e| e.metadata["correlation_id"].as_str().unwrap().to_string())
        .collect();
    let letters: BTreeSet<String> = server
        .dead_letters()
        .await
        .into_iter()
        .filter(|d| d.tenant_id.as_deref() == Some("demo"))
        .map(|d| d.id.to_string())
        .collect();
    assert!(inbound.is_disjoint(&letters));
    (inbound.len() + letters.len(), events.len(), letters.len())
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Whether a first-page search for `t` asked for what lies after `cursor` (so the cursor
/// `cursor` was committed before that round).
fn searched_after(fhir: &Shared, t: &str, cursor: &str) -> bool {
    fhir.lock().unwrap().requests.iter().any(|r| {
        r.resource_type == t
            && r.status == 200
            && r.last_updated.as_deref() == Some(&format!("gt{cursor}"))
    })
}

on_each_backend! {
    async fn pages_retries_and_resumes_without_duplicates() {
        let fhir: Shared = Arc::default();
        {
            let mut f = fhir.lock().unwrap();
            // p3 and p4 share a timestamp across the page boundary (3 per page).
            for (n, s) in [(1, 1), (2, 2), (3, 3), (4, 3), (5, 5), (6, 6), (7, 7)] {
                f.resources.push(patient(n, &ts(s)));
            }
            for n in 1..=5 {
                f.resources.push(encounter(n, 1, &ts(10 + n as u32)));
            }
            // Request 1: Patient page 1; 2: page 2 -> 429; 3: page 2; 4: page 3 -> 503.
            f.faults.insert(2, Fault::TooMany);
            f.faults.insert(4, Fault::Unavailable);
        }
        let addr = start_fhir(fhir.clone());
        let opts = common::Options {
            shipped_mappings: true,
            log: Some("info".into()),
            extra_config: format!(
                "[[fhir_pull]]\ntenant = \"demo\"\nbase_url = \"http://{addr}/fhir/\"\n\
                 token_env = \"INTAKE_TEST_FHIR_TOKEN\"\nresource_types = [\"Patient\", \"Encounter\"]\n\
                 interval_ms = 200\npage_size = {PAGE}\nretry_max_secs = 2\ntimeout_secs = 10\n"
            ),
            ..Default::default()
        };
        // The token comes from the environment (token_env), as in production.
        std::env::set_var("INTAKE_TEST_FHIR_TOKEN", TOKEN);
        let tmp = tempfile::tempdir().unwrap();
        let _db = common::prepare(tmp.path(), &opts);
        let started = Instant::now();
        let mut server = Server::start_in_with(tmp.path(), &opts);

        wait_for("12 resources stored", Duration::from_secs(60), async || {
            stored(&server).await.0 >= 12
        })
        .await;
        let took = started.elapsed();
        // Both cursors committed: a later round searched after the newest of each type.
        wait_for("rounds after the cursors", Duration::from_secs(20), async || {
            searched_after(&fhir, "Patient", &ts(7)) && searched_after(&fhir, "Encounter", &ts(15))
        })
        .await;
        let (inbound, events, letters) = stored(&server).await;
        assert_eq!(inbound, 12, "each resource stored once");
        assert_eq!(letters, 0, "{:?}", server.dead_letters().await);
        let first = server.events("demo").await;
        assert_eq!(
            tally(&first),
            BTreeMap::from([
                ("PatientRegistered".to_string(), 7),
                ("AdmissionCreated".to_string(), 5),
                ("LocationChanged".to_string(), 5),
            ])
        );
        assert!(first.iter().all(|e| e.created_by == "intake/fhir-pull"));
        let first_events: BTreeSet<_> = first.iter().map(|e| e.event_id).collect();
        {
            let f = fhir.lock().unwrap();
            let statuses: Vec<u16> = f.requests.iter().map(|r| r.status).collect();
            assert_eq!(&statuses[..6], &[200, 429, 200, 503, 200, 200], "{statuses:?}");
            // Retry-After was obeyed: 1 s after the 429; the HTTP date (1 s ahead, second
            // resolution) at least not ignored.
            let (_, metrics) = server.http("GET", "/metrics", Some(common::ADMIN), b"");
            for series in ["status=\"429\"} 1", "status=\"503\"} 1"] {
                assert!(metrics.contains(series), "{series} in {metrics}");
            }
            let gap = f.requests[2].at - f.requests[1].at;
            assert!(gap >= Duration::from_millis(950), "429 retried after {gap:?}");
            let mut per_id: BTreeMap<&str, usize> = BTreeMap::new();
            for i in &f.served {
                *per_id.entry(i).or_default() += 1;
            }
            assert_eq!(per_id.len(), 12);
            assert!(per_id.values().all(|&c| c == 1), "each fetched once: {per_id:?}");
            eprintln!(
                "fhir_pull: 12 resources over {} requests (1 x 429, 1 x 503) stored in {took:?}: \
                 {events} events, {letters} dead letters",
                f.requests.len()
            );
        }

        // Hard stop, new and changed resources, restart: only those are fetched.
        let first_log = server.log.lock().unwrap().clone();
        server.kill();
        {
            let mut f = fhir.lock().unwrap();
            f.served.clear();
            f.requests.clear();
            f.faults.clear();
            for n in 8..=10 {
                f.resources.push(patient(n, &ts(20 + n as u32)));
            }
            let e1 = f.resources.iter_mut().find(|r| id(r) == "Encounter/e1").unwrap();
            *e1 = encounter(1, 2, &ts(40));
        }
        let server = Server::start_in_with(tmp.path(), &opts);
        wait_for("16 resources stored", Duration::from_secs(60), async || {
            stored(&server).await.0 >= 16
        })
        .await;
        wait_for("rounds after the new cursors", Duration::from_secs(20), async || {
            searched_after(&fhir, "Patient", &ts(30)) && searched_after(&fhir, "Encounter", &ts(40))
        })
        .await;
        let (inbound, events, letters) = stored(&server).await;
        assert_eq!(inbound, 16, "only the new resources were added");
        assert_eq!(letters, 0);
        // Encounter e1 version 2 adds only its discharge: its admission and location
        // change are already stored (same source keys, same event ids).
        assert_eq!(
            tally(&server.events("demo").await),
            BTreeMap::from([
                ("PatientRegistered".to_string(), 10),
                ("AdmissionCreated".to_string(), 5),
                ("LocationChanged".to_string(), 5),
                ("DischargeCompleted".to_string(), 1),
            ])
        );
        {
            let f = fhir.lock().unwrap();
            let first = f.requests.iter().find(|r| r.resource_type == "Patient").unwrap();
            assert_eq!(first.last_updated, Some(format!("gt{}", ts(7))), "resumed from the cursor");
            let served: BTreeSet<&str> = f.served.iter().map(String::as_str).collect();
            assert_eq!(f.served.len(), 4, "{:?}", f.served);
            assert_eq!(
                served,
                BTreeSet::from(["Patient/p8", "Patient/p9", "Patient/p10", "Encounter/e1"])
            );
        }
        let after: Vec<_> = server.events("demo").await;
        let after_ids: BTreeSet<_> = after.iter().map(|e| e.event_id).collect();
        assert_eq!(after_ids.len(), after.len(), "no event stored twice");
        assert!(first_events.is_subset(&after_ids));
        eprintln!("fhir_pull after restart: 4 resources fetched, {events} events, {letters} dead letters");

        let (_, metrics) = server.http("GET", "/metrics", Some(common::ADMIN), b"");
        for series in [
            "intake_fhir_pull_requests_total{tenant=\"demo\",resource_type=\"Patient\",status=\"200\"}",
            "intake_fhir_pull_last_success_seconds{tenant=\"demo\",resource_type=\"Encounter\"}",
        ] {
            assert!(metrics.contains(series), "{series} in {metrics}");
        }
        let log = format!("{first_log}{}", server.log.lock().unwrap());
        for secret in [TOKEN, NAME, "_lastUpdated=", "MRN-"] {
            assert!(!log.contains(secret), "the log holds {secret:?}");
        }
        assert!(log.contains("FHIR pull round"), "rounds are logged (counts only)");
    }
}

/// SIGTERM; returns how long the server took to exit (cleanly).
fn terminate(server: &mut Server) -> Duration {
    let start = Instant::now();
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

on_each_backend! {
    async fn a_stop_mid_result_resumes_from_below_the_page_boundary() {
        let fhir: Shared = Arc::default();
        {
            let mut f = fhir.lock().unwrap();
            // Page 1 is p1-p3; p4 shares p3's timestamp, so after page 1 only what lies
            // below it (p1, p2) is known complete.
            for (n, s) in [(1, 1), (2, 2), (3, 3), (4, 3), (5, 5), (6, 6), (7, 7)] {
                f.resources.push(patient(n, &ts(s)));
            }
            f.faults.insert(2, Fault::Hang);
        }
        let addr = start_fhir(fhir.clone());
        let opts = common::Options {
            shipped_mappings: true,
            extra_config: format!(
                "[[fhir_pull]]\ntenant = \"demo\"\nbase_url = \"http://{addr}/fhir\"\n\
                 token = \"{TOKEN}\"\nresource_types = [\"Patient\"]\n\
                 interval_ms = 200\npage_size = {PAGE}\ntimeout_secs = 30\n"
            ),
            ..Default::default()
        };
        let tmp = tempfile::tempdir().unwrap();
        let _db = common::prepare(tmp.path(), &opts);
        let mut server = Server::start_in_with(tmp.path(), &opts);
        wait_for("page 1 stored and page 2 asked for", Duration::from_secs(30), async || {
            fhir.lock().unwrap().requests.len() >= 2 && stored(&server).await.0 >= 3
        })
        .await;
        // Shutdown does not wait for the hanging request.
        let took = terminate(&mut server);
        assert!(took < Duration::from_secs(5), "stopped in {took:?}");
        assert_eq!(stored(&server).await.0, 3);
        {
            let mut f = fhir.lock().unwrap();
            f.faults.clear();
            f.requests.clear();
            f.served.clear();
        }
        let server = Server::start_in_with(tmp.path(), &opts);
        wait_for("all 7 stored", Duration::from_secs(30), async || {
            stored(&server).await.0 >= 7 && searched_after(&fhir, "Patient", &ts(7))
        })
        .await;
        assert_eq!(stored(&server).await.0, 7, "p3, fetched again, is a duplicate");
        assert_eq!(
            tally(&server.events("demo").await),
            BTreeMap::from([("PatientRegistered".to_string(), 7)])
        );
        let f = fhir.lock().unwrap();
        assert_eq!(f.requests[0].last_updated, Some(format!("gt{}", ts(2))));
        assert_eq!(
            f.served,
            ["Patient/p3", "Patient/p4", "Patient/p5", "Patient/p6", "Patient/p7"]
        );
        eprintln!("fhir_pull: stopped mid-result in {took:?}; resumed below the page boundary");
    }
}

on_each_backend! {
    async fn next_links_to_another_origin_are_not_followed() {
        let fhir: Shared = Arc::default();
        let elsewhere: Shared = Arc::default();
        let other = start_fhir(elsewhere.clone());
        {
            let mut f = fhir.lock().unwrap();
            for n in 1..=5 {
                f.resources.push(patient(n, &ts(n as u32)));
            }
            f.next_origin = Some(other);
        }
        let addr = start_fhir(fhir.clone());
        let opts = common::Options {
            shipped_mappings: true,
            log: Some("warn".into()),
            extra_config: format!(
                "[[fhir_pull]]\ntenant = \"demo\"\nbase_url = \"http://{addr}/fhir\"\n\
                 token = \"{TOKEN}\"\nresource_types = [\"Patient\"]\n\
                 interval_ms = 100\npage_size = 3\nretry_max_secs = 1\n"
            ),
            ..Default::default()
        };
        let server = Server::start_with(opts);
        // Each round takes page 1 of what is left and stops at its next link.
        wait_for("all stored, a page per round", Duration::from_secs(30), async || {
            fhir.lock().unwrap().requests.len() >= 2 && stored(&server).await.0 >= 5
        })
        .await;
        assert!(elsewhere.lock().unwrap().requests.is_empty(), "the token went to another origin");
        assert_eq!(stored(&server).await.0, 5, "each resource once");
        // The next round starts below page 1's last timestamp: p3 again, a duplicate.
        let f = fhir.lock().unwrap();
        assert_eq!(f.requests[1].last_updated, Some(format!("gt{}", ts(2))));
        let log = server.log.lock().unwrap().clone();
        assert!(log.contains("links to another origin"), "{log}");
        assert!(!log.contains(&other.to_string()), "no URL in the log");
    }
}

/// Pull throughput on SQLite: `cargo test --release --test fhir_pull -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "measurement"]
async fn pull_throughput() {
    const N: usize = 2000;
    let fhir: Shared = Arc::default();
    {
        let mut f = fhir.lock().unwrap();
        for n in 1..=N {
            let at = format!("2026-11-22T09:00:00.{:03}Z", n % 1000);
            let at = if n > 1000 {
                at.replace("09:00:00", "09:00:01")
            } else {
                at
            };
            f.resources.push(patient(n, &at));
        }
    }
    let addr = start_fhir(fhir.clone());
    let opts = common::Options {
        shipped_mappings: true,
        extra_config: format!(
            "[[fhir_pull]]\ntenant = \"demo\"\nbase_url = \"http://{addr}/fhir\"\n\
             token = \"{TOKEN}\"\nresource_types = [\"Patient\"]\ninterval_ms = 100\npage_size = 100\n"
        ),
        ..Default::default()
    };
    let started = Instant::now();
    let server = Server::start_with(opts);
    wait_for("all stored", Duration::from_secs(300), async || {
        stored(&server).await.0 >= N
    })
    .await;
    let took = started.elapsed();
    assert_eq!(server.events("demo").await.len(), N);
    eprintln!(
        "fhir_pull throughput: {N} Patients in pages of 100 in {took:?} ({:.0} resources/s, \
         including start-up)",
        N as f64 / took.as_secs_f64()
    );
}
