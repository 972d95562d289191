//! The systemd unit in `packaging/` is valid (`systemd-analyze verify`: no warning, no
//! error) and hardened (`systemd-analyze security`: exposure at most 2.0, "OK"). The unit
//! is checked with its ExecStart pointed at the binary this suite built.

use std::process::Command;

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(repo.join("packaging/intake.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/intake "));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("intake.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/intake", env!("CARGO_BIN_EXE_intake")),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (the systemd package) is installed");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "{complaints}"
    );

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let score: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for intake.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(score <= 2.0, "exposure {score}:\n{report}");
}
