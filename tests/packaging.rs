//! The systemd unit in `packaging/` is valid (`systemd-analyze verify`: no warning, no
//! error) and hardened (`systemd-analyze security`: exposure at most 2.0, "OK"). The unit
//! is checked with its ExecStart pointed at the binary this suite built.
//!
//! The container image (`packaging/Dockerfile`), where podman runs: built with the binary
//! this suite built (its `prebuilt` stage: a cold release build in the container takes far
//! longer than the suite's budget), then run without capabilities on a read-only root: the
//! server runs as its non-root user, answers
//! /healthz on its published port, acknowledges an MLLP message with AA and stores it in
//! its data volume, reports healthy through the image's HEALTHCHECK, and stops cleanly on
//! SIGTERM. Where podman is missing or cannot run a container, the test says why and is
//! skipped (`INTAKE_REQUIRE_CONTAINER=1` makes that a failure).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// The uid the image's `intake` user has (packaging/Dockerfile, `ARG UID`).
const IMAGE_UID: &str = "10001";

/// The base image the runtime stage starts from: `INTAKE_TEST_RUNTIME_IMAGE`, else Debian's
/// bookworm-slim from the registry or as made locally (`scripts/test` makes
/// `localhost/debian:bookworm-slim` with debootstrap where no registry is reachable).
const BASE_IMAGES: [&str; 2] = [
    "docker.io/library/debian:bookworm-slim",
    "localhost/debian:bookworm-slim",
];

#[test]
fn the_container_image_runs_as_non_root_answers_health_and_acks_mllp() {
    let podman = match Podman::find() {
        Ok(p) => p,
        Err(why) => {
            assert!(
                std::env::var_os("INTAKE_REQUIRE_CONTAINER").is_none(),
                "INTAKE_REQUIRE_CONTAINER is set, but: {why}"
            );
            eprintln!("skipped: the container image is not tested here: {why}");
            return;
        }
    };
    eprintln!(
        "container: {} (options: {:?} {:?}), base image {}",
        podman.version, podman.global, podman.options, podman.base
    );
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tag = format!("localhost/intake-test:{}", std::process::id());
    let name = format!("intake-test-{}", std::process::id());
    let _cleanup = Cleanup {
        podman: podman.clone(),
        container: name.clone(),
        image: tag.clone(),
    };

    // The build context: the Dockerfile's inputs and the binary this suite built.
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo.join("packaging/Dockerfile"),
        context.path().join("Dockerfile"),
    )
    .unwrap();
    for dir in ["mappings", "plugins", "samples"] {
        copy_tree(&repo.join(dir), &context.path().join(dir));
    }
    std::fs::copy(env!("CARGO_BIN_EXE_intake"), context.path().join("intake")).unwrap();
    let started = Instant::now();
    let ctx = context.path().to_str().unwrap();
    let base_arg = format!("RUNTIME_IMAGE={}", podman.base);
    let mut build = vec!["build", "--format", "docker", "--target", "prebuilt"];
    build.extend(["--build-arg", &base_arg, "--build-arg", "BINARY=intake"]);
    build.extend(podman.run_options());
    build.extend(["-t", &tag, ctx]);
    podman.ok(&build, 600);
    eprintln!("image built in {:?}", started.elapsed());

    let user = podman.ok(
        &["image", "inspect", "--format", "{{.Config.User}}", &tag],
        30,
    );
    assert_eq!(user.trim(), "intake:intake");
    let health = podman.ok(
        &[
            "image",
            "inspect",
            "--format",
            "{{json .HealthCheck}}",
            &tag,
        ],
        30,
    );
    assert!(health.contains("healthcheck"), "no HEALTHCHECK: {health}");
    let env = podman.ok(
        &["image", "inspect", "--format", "{{json .Config.Env}}", &tag],
        30,
    );
    assert!(
        !env.contains("INTAKE_ADMIN_TOKEN"),
        "a token in the image: {env}"
    );

    // Run as the README advises: no capabilities, a read-only root, no privilege gain.
    let mut run = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--cap-drop=ALL",
        "--read-only",
    ];
    run.extend(["--security-opt=no-new-privileges"]);
    run.extend(podman.run_options());
    run.extend(["-p", "127.0.0.1::2575", "-p", "127.0.0.1::8080", &tag]);
    podman.ok(&run, 60);
    let port = |p: &str| -> String {
        let out = podman.ok(&["port", &name, p], 30);
        let addr = out.lines().next().unwrap_or_default().trim().to_string();
        assert!(addr.contains(':'), "no published port for {p}: {out}");
        addr.replace("0.0.0.0:", "127.0.0.1:")
    };
    let (mllp, http) = (port("2575/tcp"), port("8080/tcp"));

    // /healthz answers on the published port (the listener is on 0.0.0.0 inside).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match http_get(&http, "/healthz") {
            Some((200, body)) => {
                assert!(body.contains("\"ok\""), "{body}");
                break;
            }
            other => {
                let state = podman.ok(&["inspect", "--format", "{{.State.Status}}", &name], 30);
                if Instant::now() > deadline || state.trim() != "running" {
                    let logs = podman.run(&["logs", &name], 30);
                    panic!("no /healthz on {http} ({other:?}, container {state}): {logs:?}");
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }

    // The server (pid 1 of the container) runs as the image's user, not root.
    let status = podman.ok(&["exec", &name, "cat", "/proc/1/status"], 30);
    let uids: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(uids, [IMAGE_UID; 4], "{status}");

    // An HL7 message over MLLP to the published port: AA, and stored in the data volume.
    let sent = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["send", "--to", &mllp])
        .arg(repo.join("samples/demo/a01-admit.hl7"))
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && summary.contains("sent 1 message(s): AA 1"),
        "{summary}{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let events = podman.ok(&["exec", &name, "intake", "events", "--tenant", "demo"], 60);
    assert!(events.contains("AdmissionCreated"), "{events}");
    let db = podman.ok(&["exec", &name, "ls", "-ln", "/var/lib/intake/data"], 30);
    assert!(db.contains("intake.db"), "{db}");

    // The image's HEALTHCHECK (`intake healthcheck` inside) reports healthy.
    let checked = podman.run(&["healthcheck", "run", &name], 60);
    assert!(checked.0, "healthcheck: {checked:?}");
    let state = podman.ok(
        &[
            "inspect",
            "--format",
            "{{.State.Healthcheck.Status}}",
            &name,
        ],
        30,
    );
    assert_eq!(state.trim(), "healthy");

    // SIGTERM drains and exits 0.
    podman.ok(&["stop", "--time", "20", &name], 60);
    let code = podman.ok(&["inspect", "--format", "{{.State.ExitCode}}", &name], 30);
    assert_eq!(code.trim(), "0", "{:?}", podman.run(&["logs", &name], 30));
    eprintln!("container checks done in {:?}", started.elapsed());
}

/// podman, with the options this machine needs to run a container at all.
#[derive(Clone)]
struct Podman {
    version: String,
    /// Global options (before the subcommand), e.g. `--runtime runc`.
    global: Vec<String>,
    /// Options of `run` and `build`, e.g. explicit `--ulimit`s.
    options: Vec<String>,
    base: String,
}

impl Podman {
    /// podman and a base image, and the first set of options a container runs with: none;
    /// resource limits within the hard limits of this process (podman's defaults exceed
    /// them where the runtime may not raise them); and runc instead of the default runtime
    /// (crun refuses cgroup v1 hierarchies with controllers also on v2).
    fn find() -> Result<Podman, String> {
        let plain = Podman {
            version: String::new(),
            global: Vec::new(),
            options: Vec::new(),
            base: String::new(),
        };
        let (ok, version, err) = plain.run(&["--version"], 30);
        if !ok {
            return Err(format!("podman is not installed or does not start ({err})"));
        }
        let base = match std::env::var("INTAKE_TEST_RUNTIME_IMAGE") {
            Ok(image) => {
                if !plain.run(&["image", "exists", &image], 30).0 {
                    plain.run(&["pull", "-q", &image], 120);
                }
                plain
                    .run(&["image", "exists", &image], 30)
                    .0
                    .then_some(image)
            }
            Err(_) => BASE_IMAGES
                .iter()
                .find(|i| plain.run(&["image", "exists", i], 30).0)
                .or_else(|| {
                    let pulled = plain.run(&["pull", "-q", BASE_IMAGES[0]], 120).0;
                    pulled.then_some(&BASE_IMAGES[0])
                })
                .map(|i| i.to_string()),
        };
        let Some(base) = base else {
            return Err(format!(
                "no base image: {} cannot be pulled and none of {BASE_IMAGES:?} is stored \
                 (scripts/test makes one with debootstrap; or set INTAKE_TEST_RUNTIME_IMAGE)",
                BASE_IMAGES[0]
            ));
        };
        let limits = ulimits();
        let mut tried = Vec::new();
        for (global, options) in [
            (vec![], vec![]),
            (vec![], limits.clone()),
            (vec!["--runtime".to_string(), "runc".to_string()], limits),
        ] {
            let p = Podman {
                version: version.trim().to_string(),
                global,
                options,
                base: base.clone(),
            };
            let mut args = vec!["run", "--rm"];
            args.extend(p.run_options());
            args.extend([base.as_str(), "true"]);
            let (ok, _, err) = p.run(&args, 60);
            if ok {
                return Ok(p);
            }
            tried.push(format!("{:?} {:?}: {}", p.global, p.options, err.trim()));
        }
        Err(format!(
            "{} cannot run a container: {}",
            version.trim(),
            tried.join("; ")
        ))
    }

    fn run_options(&self) -> Vec<&str> {
        self.options.iter().map(String::as_str).collect()
    }

    /// Runs `podman ARGS` for at most `secs`: (success, stdout, stderr).
    fn run(&self, args: &[&str], secs: u64) -> (bool, String, String) {
        let out = tempfile::tempdir().unwrap();
        let (stdout, stderr) = (out.path().join("out"), out.path().join("err"));
        let mut child = Command::new("podman")
            .args(&self.global)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn();
        let Ok(child) = child.as_mut() else {
            return (false, String::new(), "podman: not found".into());
        };
        let deadline = Instant::now() + Duration::from_secs(secs);
        let ok = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
        (ok, read(&stdout), read(&stderr))
    }

    /// Runs `podman ARGS`, which must succeed: its stdout.
    fn ok(&self, args: &[&str], secs: u64) -> String {
        let (ok, stdout, stderr) = self.run(args, secs);
        assert!(
            ok,
            "podman {args:?} failed (or took over {secs}s):\n{stdout}\n{stderr}"
        );
        stdout
    }
}

/// Removes the test's container and image, whatever happened.
struct Cleanup {
    podman: Podman,
    container: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.podman.run(&["rm", "-f", "-v", &self.container], 60);
        self.podman.run(&["rmi", "-f", &self.image], 60);
    }
}

/// `--ulimit`s for open files and processes within this process's hard limits.
fn ulimits() -> Vec<String> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let hard = |name: &str, cap: u64| -> u64 {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .map_or(cap, |v: u64| v.min(cap))
    };
    let files = hard("Max open files", 65536);
    let procs = hard("Max processes", 4096);
    vec![
        "--ulimit".into(),
        format!("nofile={files}:{files}"),
        "--ulimit".into(),
        format!("nproc={procs}:{procs}"),
    ]
}

/// A plain HTTP/1.1 GET: (status, body), or None when nothing answers.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    Some((status, body.unwrap_or_default()))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
