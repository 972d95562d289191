//! The fuzz targets' bodies, one function each, so that the normal test suite replays the
//! crash inputs kept in `tests/fixtures/fuzz/<target>/` through exactly the same checks
//! (`tests/fuzz_regressions.rs` includes this file). Each function panics on a bug and
//! returns quietly on any input the engine refuses properly.

use intake::config::Config;
use intake_adapters::mllp::frame::chunked::assert_split_invariant;
use intake_pipeline::mapping::Tenants;
use intake_pipeline::{process, Format, RawMessage};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Every target, by name (`fuzz/fuzz_targets/<name>.rs`, `scripts/fuzz list`).
pub const TARGETS: [&str; 6] = [
    "mllp_frame",
    "hl7_message",
    "fhir_json",
    "fhir_xml",
    "mapping_loader",
    "config_loader",
];

/// Runs the target called `name` on `data`; `false` when there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "mllp_frame" => mllp_frame(data),
        "hl7_message" => map(Format::Hl7v2, data),
        "fhir_json" => map(Format::FhirJson, data),
        "fhir_xml" => map(Format::FhirXml, data),
        "mapping_loader" => mapping_loader(data),
        "config_loader" => config_loader(data),
        _ => return false,
    }
    true
}

/// The repository: its `mappings/`, `plugins/` and `samples/`.
pub fn repo() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Built as the fuzz crate (`fuzz/`) or included by the repository's own tests.
    match here.join("mappings").is_dir() {
        true => here,
        false => here.join(".."),
    }
}

/// The tenants of the repository's `mappings/` (with its `plugins/`), loaded on first use.
pub fn tenants() -> &'static Tenants {
    static TENANTS: OnceLock<Tenants> = OnceLock::new();
    TENANTS.get_or_init(|| match Tenants::load(&repo().join("mappings")) {
        Ok(t) => t,
        Err(errors) => panic!("the repository's mappings do not load: {errors:?}"),
    })
}

/// A raw message with a fixed id and receipt time, so two runs must agree exactly.
fn raw(tenant: Option<&str>, format: Format, bytes: &[u8]) -> RawMessage {
    RawMessage {
        id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
        tenant: tenant.map(str::to_string),
        format,
        channel: "fuzz".into(),
        bytes: bytes.to_vec(),
        received_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time"),
    }
}

/// `hl7_message`, `fhir_json`, `fhir_xml`: decodes, parses and maps `bytes` as the demo
/// tenant's (what `intake map --tenant demo` does), and again as a message of an unbound
/// source (routed by MSH-4 / MSH-6). Panics when mapping the same input twice gives
/// different results: mapping is a pure function of the bytes and the mappings.
pub fn map(format: Format, bytes: &[u8]) {
    let tenants = tenants();
    let first = process(raw(Some("demo"), format, bytes), tenants);
    let again = process(raw(Some("demo"), format, bytes), tenants);
    assert_eq!(
        format!("{:?}", first.disposition),
        format!("{:?}", again.disposition),
        "the same message mapped twice gave different results"
    );
    assert_eq!(first.key, again.key);
    let _ = process(raw(None, format, bytes), tenants);
}

/// `mllp_frame`: the frame decoder gives the same frames, error and skipped count however
/// the bytes are split into reads.
///
/// Input: one byte for the size limit (255: 1 MiB, else that many bytes), one byte for the
/// number of cuts (mod 17), that many little-endian u16 cut offsets, then the stream.
pub fn mllp_frame(data: &[u8]) {
    let [limit, ncuts, rest @ ..] = data else {
        return;
    };
    let max_frame_bytes = match limit {
        255 => 1024 * 1024,
        n => usize::from(*n),
    };
    let ncuts = usize::from(*ncuts % 17).min(rest.len() / 2);
    let (cuts, stream) = rest.split_at(ncuts * 2);
    let cuts: Vec<usize> = cuts
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
        .collect();
    assert_split_invariant(stream, &cuts, max_frame_bytes);
}

/// `mapping_loader`'s files: the input replaces (or adds) one of them, below a scratch
/// copy of the repository's demo tenant and plugins. `scripts/fuzz` seeds in this order.
pub const LOADER_FILES: [&str; 7] = [
    "mappings/demo/tenant.yaml",
    "mappings/demo/adt.yaml",
    "mappings/demo/oru.yaml",
    "mappings/demo/fhir.yaml",
    "mappings/demo/catalogue.yaml",
    "mappings/demo/tables/loinc.csv",
    "plugins/adt-core/manifest.yaml",
];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("scratch folder");
    for entry in std::fs::read_dir(from).expect("repository folder") {
        let entry = entry.expect("folder entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A scratch copy of the repository's demo tenant and plugins, made once per process.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("intake-fuzz-loader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&repo().join("mappings/demo"), &dir.join("mappings/demo"));
        copy_dir(&repo().join("plugins"), &dir.join("plugins"));
        dir
    })
}

/// `mapping_loader`: bytes as one mapping file through the loader and checker; every
/// problem must come back as located errors, never as a panic.
///
/// Input: one byte choosing the file ([`LOADER_FILES`], mod its length), then its text.
pub fn mapping_loader(data: &[u8]) {
    let [which, text @ ..] = data else {
        return;
    };
    let root = scratch();
    let file = root.join(LOADER_FILES[usize::from(*which) % LOADER_FILES.len()]);
    let original = std::fs::read(&file).ok();
    std::fs::write(&file, text).expect("write the fuzzed file");
    let loaded = Tenants::load_with(&root.join("mappings"), &root.join("plugins"));
    match &original {
        Some(bytes) => std::fs::write(&file, bytes).expect("restore"),
        None => std::fs::remove_file(&file).expect("remove"),
    }
    if let Err(errors) = loaded {
        assert!(!errors.is_empty(), "a refused load names its problems");
        for e in &errors {
            let _ = e.to_string();
        }
    }
}

/// `config_loader`: bytes as `intake.toml`, parsed, then every component's own settings
/// check. Errors are fine; a panic is a bug.
pub fn config_loader(data: &[u8]) {
    // The loader reads the file as UTF-8 text; other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(config) => {
            for component in config.components() {
                let _ = component.check().map_err(|e| e.to_string());
                let _ = component.bound_tenants();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
