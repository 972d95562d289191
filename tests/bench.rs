//! The side-by-side benchmark (`scripts/bench`) as a smoke run: a few hundred messages of
//! the mix against intake and whichever peers install here. No timing is asserted; the
//! run must end with every acknowledged message stored exactly once.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn bench_smoke_run_stores_every_acknowledged_message_once() {
    let shared = common::repo().join("../shared");
    if !shared.join("bench/gen_mix.py").exists() {
        assert!(
            std::env::var_os("INTAKE_REQUIRE_CORPUS").is_none(),
            "../shared/bench/gen_mix.py is required here"
        );
        eprintln!("skipped: no ../shared/bench beside the checkout");
        return;
    }
    let intake = PathBuf::from(env!("CARGO_BIN_EXE_intake"));
    // `cargo test` builds the examples beside the binaries.
    let load = intake.parent().unwrap().join("examples/mllp_load");
    assert!(load.exists(), "{} is built by cargo test", load.display());
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(common::repo().join("scripts/bench"))
        .env("INTAKE_BIN", &intake)
        .env("MLLP_LOAD", &load)
        .env("BENCH_DIR", work.path())
        .env("INTAKE_SHARED", &shared)
        .env("ROUNDS", "1")
        .env("CONNS", "1 4")
        .env("MESSAGES", "200")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("FAIL"), "{stderr}");
    for c in ["c=1 ", "c=4 "] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with("intake ") && l.contains(c))
            .unwrap_or_else(|| panic!("no intake row for {c}: {stdout}"));
        assert!(row.ends_with("not AA 0"), "{row}");
    }
    assert!(stdout.contains("| intake | 4 |"), "{stdout}");
}
