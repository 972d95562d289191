//! `intake import` as a user runs it: real files, a real SQLite file, the real binary.
//! Counts on a mixed folder, idempotency, resume after a crash and after Ctrl-C, stdin,
//! and no progress output when stderr is not a terminal.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary with this folder's database and the shipped mappings.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_intake"));
    c.args(args)
        .current_dir(dir)
        .env_remove("INTAKE_CONFIG")
        .env(
            "INTAKE_DATABASE_URL",
            format!("sqlite://{}", dir.join("intake.db").display()),
        )
        .env("INTAKE_MAPPINGS_DIR", common::repo().join("mappings"))
        .env("INTAKE_LOG", "warn");
    c
}

/// Runs `intake ARGS` (with `stdin` piped in, if any): exit code, stdout, stderr.
fn intake(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The summary's `name: value` lines.
fn summary(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(common::repo().join("samples/demo").join(name)).unwrap()
}

/// The A01 sample with its own control id and visit number.
fn admit(n: usize) -> String {
    sample("a01-admit.hl7")
        .replace("DEMO-A01-0001", &format!("IMP-{n:07}"))
        .replace("V20261122-0001", &format!("VIMP-{n:07}"))
        .trim_end()
        .to_string()
}

fn events(dir: &Path) -> usize {
    let out = command(dir, &["events", "--tenant", "demo"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn sqlite(dir: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(dir.join("intake.db"))
        .arg(sql)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A folder of every input kind, plus one message that dead-letters.
fn mixed_folder(root: &Path) -> PathBuf {
    let d = root.join("in");
    for sub in ["a", "b", "c/deeper", "d"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    // Three messages, LF inside, blank lines and CRLF between.
    let hl7 = [
        sample("a01-admit.hl7"),
        sample("a02-transfer.hl7"),
        sample("a03-discharge.hl7"),
    ]
    .map(|m| m.trim_end().to_string())
    .join("\r\n\r\n");
    std::fs::write(d.join("a/adt.hl7"), hl7).unwrap();
    // A batch: its envelope is dropped, each message stands alone.
    let batch = format!(
        "FHS|^~\\&|ADT1|DEMO_HOSP\rBHS|^~\\&|ADT1|DEMO_HOSP\r{}\r{}\rBTS|2\rFTS|1\r",
        admit(1).replace('\n', "\r"),
        admit(2).replace('\n', "\r")
    );
    std::fs::write(d.join("b/batch.txt"), batch).unwrap();
    let mut mllp = Vec::new();
    for n in [3, 4] {
        mllp.extend_from_slice(b"\x0b");
        mllp.extend_from_slice(admit(n).replace('\n', "\r").as_bytes());
        mllp.extend_from_slice(b"\r\x1c\x0d");
    }
    std::fs::write(d.join("c/deeper/dump.mllp"), mllp).unwrap();
    let ndjson: Vec<String> = ["fhir-patient-create.json", "fhir-encounter-discharged.json"]
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_str(&sample(f)).unwrap();
            serde_json::to_string(&v).unwrap()
        })
        .collect();
    std::fs::write(d.join("d/export.ndjson"), ndjson.join("\n") + "\n").unwrap();
    std::fs::write(d.join("d/bundle.json"), sample("fhir-transaction.json")).unwrap();
    // An unmapped message type: a dead letter, stored with its reason.
    let bad = admit(5).replace("ADT^A01^ADT_A01", "ADT^A99^ADT_A01");
    std::fs::write(d.join("d/z-bad.hl7"), bad).unwrap();
    std::fs::write(d.join(".hidden"), "not read").unwrap();
    d
}

#[test]
fn a_mixed_folder_is_counted_exactly_and_a_rerun_stores_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let folder = mixed_folder(dir.path());
    let folder = folder.to_str().unwrap();
    let (code, out, err) = intake(dir.path(), &["import", "--tenant", "demo", folder], None);
    assert_eq!(code, 0, "{out}\n{err}");
    // Not a terminal: no progress bar, nothing at all on stderr.
    assert_eq!(err, "");
    let s = summary(&out);
    assert!(s["read"].starts_with("11 messages from 6 inputs"), "{out}");
    let stored_events = events(dir.path());
    assert_eq!(s["stored"], format!("10 ({stored_events} events)"), "{out}");
    assert_eq!(s["filtered"], "0");
    assert_eq!(s["duplicates"], "0");
    assert_eq!(s["dead-lettered"], "1 (UNMAPPED_MESSAGE_TYPE 1)");
    assert_eq!(s["not stored"], "0");
    assert_eq!(
        sqlite(dir.path(), "SELECT count(*) FROM inbound_messages"),
        "11"
    );
    assert_eq!(
        sqlite(dir.path(), "SELECT DISTINCT channel FROM inbound_messages"),
        "import"
    );

    // Again: every input was imported to its end, so it is skipped.
    let (code, out, _) = intake(dir.path(), &["import", "--tenant", "demo", folder], None);
    assert_eq!(code, 0);
    let s = summary(&out);
    assert!(s["read"].starts_with("0 messages from 0 inputs"), "{out}");
    assert_eq!(s["skipped"], "6 inputs already imported");

    // From the start: all duplicates, nothing new stored.
    let (code, out, _) = intake(
        dir.path(),
        &["import", "--tenant", "demo", "--from-start", folder],
        None,
    );
    assert_eq!(code, 0, "{out}");
    let s = summary(&out);
    assert!(s["read"].starts_with("11 messages from 6 inputs"), "{out}");
    assert_eq!(s["stored"], "0 (0 events)");
    assert_eq!(s["duplicates"], "11");
    assert_eq!(s["dead-lettered"], "0");
    assert_eq!(events(dir.path()), stored_events);
    assert_eq!(
        sqlite(dir.path(), "SELECT count(*) FROM inbound_messages"),
        "11"
    );
}

#[test]
fn stdin_is_read_with_a_dash_and_quiet_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = format!("{}\n\n{}\n", admit(1), admit(2));
    let (code, out, err) = intake(
        dir.path(),
        &["import", "--tenant", "demo", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
    assert!(summary(&out)["stored"].starts_with("2 ("), "{out}");
    // stdin has no checkpoint: read again, it is all duplicates.
    let (code, out, err) = intake(
        dir.path(),
        &["import", "--tenant", "demo", "--quiet", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    assert_eq!(
        sqlite(dir.path(), "SELECT count(*) FROM inbound_messages"),
        "2"
    );
}

#[test]
fn what_cannot_be_stored_fails_the_run_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!(
        "{}\n{}\n",
        admit(1),
        admit(2).replace("Doe^Alex", &"x".repeat(5000))
    );
    std::fs::write(dir.path().join("in.hl7"), big).unwrap();
    let (code, out, err) = intake(
        dir.path(),
        &[
            "import",
            "--tenant",
            "demo",
            "--max-message-bytes",
            "2000",
            "in.hl7",
        ],
        None,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("in.hl7: the message ending at byte"), "{err}");
    assert!(
        err.contains("(MESSAGE_TOO_LARGE)") && !err.contains("xxx"),
        "{err}"
    );
    let s = summary(&out);
    assert!(s["stored"].starts_with("1 ("), "{out}");
    assert_eq!(s["not stored"], "1 (MESSAGE_TOO_LARGE 1)");
    // The checkpoint stops before the message not stored: the next run reads it again.
    // Without the lower limit it is stored this time, and only it.
    let (code, out, err) = intake(dir.path(), &["import", "--tenant", "demo", "in.hl7"], None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(summary(&out)["read"].starts_with("1 messages"), "{out}");
    assert!(summary(&out)["stored"].starts_with("1 ("), "{out}");
    // An unknown tenant is refused before anything is read.
    let (code, _, err) = intake(
        dir.path(),
        &["import", "--tenant", "nobody", "in.hl7"],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("no tenant \"nobody\""), "{err}");
}

/// A file of `n` A01 messages (CR inside, LF between, as the bench mix writes them).
fn big_file(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("big.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..n {
        writeln!(f, "{}", admit(i).replace('\n', "\r")).unwrap();
    }
    f.flush().unwrap();
    path
}

/// Starts an import of `file` and waits until its checkpoint has moved.
fn start_and_wait_for_checkpoint(dir: &Path, file: &Path) -> Child {
    let mut child = command(dir, &["import", "--tenant", "demo", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cursor = sqlite(dir, "SELECT cursor FROM poll_cursors");
        if cursor.parse::<u64>().is_ok_and(|c| c > 0) {
            return child;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "import ended too early"
        );
        assert!(Instant::now() < deadline, "no checkpoint saved");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn resume_and_check(dir: &Path, file: &Path, n: usize) {
    let (code, out, err) = intake(
        dir,
        &["import", "--tenant", "demo", file.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let s = summary(&out);
    let read: usize = s["read"].split(' ').next().unwrap().parse().unwrap();
    assert!(
        read < n,
        "resumed from the checkpoint, not from scratch: {out}"
    );
    // Every message stored exactly once, with its events.
    assert_eq!(
        sqlite(
            dir,
            "SELECT count(*), count(DISTINCT control_id) FROM inbound_messages"
        ),
        format!("{n}|{n}")
    );
    assert_eq!(sqlite(dir, "SELECT count(*) FROM dead_letters"), "0");
    let per_message = sqlite(
        dir,
        "SELECT count(*) FROM events WHERE json_extract(metadata, '$.control_id') = 'IMP-0000000'",
    );
    assert_eq!(
        sqlite(dir, "SELECT count(*) FROM events"),
        (n * per_message.parse::<usize>().unwrap()).to_string()
    );
    assert_eq!(
        sqlite(dir, "SELECT cursor FROM poll_cursors"),
        std::fs::metadata(file).unwrap().len().to_string()
    );
}

#[test]
fn a_killed_import_resumes_and_stores_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let n = 40_000;
    let file = big_file(dir.path(), n);
    let mut child = start_and_wait_for_checkpoint(dir.path(), &file);
    child.kill().unwrap();
    child.wait().unwrap();
    resume_and_check(dir.path(), &file, n);
}

#[test]
fn ctrl_c_saves_the_checkpoint_prints_the_summary_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let n = 40_000;
    let file = big_file(dir.path(), n);
    let child = start_and_wait_for_checkpoint(dir.path(), &file);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    let s = summary(&stdout);
    assert_eq!(s["interrupted"], "run the same command again to resume");
    // What the summary says was stored is in the store, and the checkpoint is past it.
    let stored: usize = s["stored"].split(' ').next().unwrap().parse().unwrap();
    assert_eq!(
        sqlite(dir.path(), "SELECT count(*) FROM inbound_messages"),
        stored.to_string()
    );
    resume_and_check(dir.path(), &file, n);
}
