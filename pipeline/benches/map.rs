#![allow(missing_docs)] // criterion macros generate undocumented items
//! Parse + map cost per message, with the shipped `demo` mappings:
//! `cargo bench -p intake-pipeline --bench map`. The `per OBX` group maps ORUs of 10 to
//! 100,000 OBX and reports OBX per second: a flat rate means the work is linear in the
//! message (no step quadratic in segments or results).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use intake_pipeline::mapping::Tenants;
use intake_pipeline::{process, Format, RawMessage};
use std::hint::black_box;
use std::path::Path;

fn oru(results: usize) -> Vec<u8> {
    let mut m = String::from(
        "MSH|^~\\&|LAB|DEMO_HOSP|INTAKE|INTAKE|20261122091500||ORU^R01^ORU_R01|BENCH-ORU|P|2.5.1\r\
         PID|1||MRN100234^^^DEMO_HOSP^MR||Doe^Alex||19800214|F\r\
         PV1|1|I|WEST4^412^B||||D1234^House^Greg|||MED||||1|||D1234|IP|V20261122-0001\r\
         ORC|RE|P1|F1\rOBR|1|P1|F1|CBC^Complete blood count^L|||20261122080000\r",
    );
    for i in 0..results {
        m.push_str(&format!(
            "OBX|{}|NM|HGB^Hemoglobin^L||13.{i}|g/dl|12.0-16.0|N|||F|||20261122083000||TECH1\r",
            i + 1
        ));
    }
    m.into_bytes()
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    let tenants = Tenants::load(&dir).expect("demo mappings load");
    let adt = std::fs::read(dir.join("../samples/demo/a01-admit.hl7")).expect("sample");
    let oru10 = oru(10);
    let mut g = c.benchmark_group("parse+map");
    g.throughput(Throughput::Elements(1));
    for (name, bytes) in [("ADT^A01", adt), ("ORU^R01 10 OBX", oru10)] {
        let raw = RawMessage::new(Some("demo".into()), Format::Hl7v2, "bench", bytes);
        g.bench_function(name, |b| {
            b.iter(|| process(black_box(raw.clone()), &tenants))
        });
    }
    g.finish();
    per_obx(c, &dir);
    // The share of decoding and parsing alone, for profiling.
    let mut g = c.benchmark_group("decode+parse");
    let adt = std::fs::read(dir.join("../samples/demo/a01-admit.hl7")).expect("sample");
    for (name, bytes) in [("ADT^A01", adt), ("ORU^R01 10 OBX", oru(10))] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d =
                    intake_pipeline::hl7::charset::decode(black_box(&bytes)).expect("decodes");
                intake_pipeline::hl7::prepare(&mut d.text);
                intake_pipeline::hl7::Hl7Message::parse(&d.text)
                    .map(|m| m.segments().len())
                    .ok()
            })
        });
    }
    g.finish();
}

/// ORUs of growing size, with the demo mappings in a scratch copy whose tenant allows
/// 100,000 events per message (the shipped limit is 10,000).
fn per_obx(c: &mut Criterion, mappings: &Path) {
    let scratch = tempfile::tempdir().expect("scratch folder");
    let demo = scratch.path().join("demo");
    copy_dir(&mappings.join("demo"), &demo);
    let settings = std::fs::read_to_string(demo.join("tenant.yaml")).expect("tenant.yaml");
    std::fs::write(
        demo.join("tenant.yaml"),
        format!("{settings}\nmax_events_per_message: 200000\n"),
    )
    .expect("tenant.yaml");
    let tenants = Tenants::load(scratch.path()).expect("scratch mappings load");
    let mut g = c.benchmark_group("per OBX");
    g.sample_size(10);
    for n in [10, 100, 1_000, 10_000, 100_000] {
        let raw = RawMessage::new(Some("demo".into()), Format::Hl7v2, "bench", oru(n));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("ORU^R01 {n} OBX"), |b| {
            b.iter(|| process(black_box(raw.clone()), &tenants))
        });
    }
    g.finish();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

criterion_group!(benches, bench);
// criterion_main! generates `main`.
criterion_main!(benches);
