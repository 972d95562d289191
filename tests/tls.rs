//! TLS and mutual TLS on the MLLP and HTTP listeners, end to end: certificates made by a
//! test CA (rcgen), the real `intake serve`, `intake send --tls` and an HTTPS client.
//! Every refusal is checked for its logged code, and the listener for serving on after it.

mod common;

use common::certs::Ca;
use common::{Adt, Options, Server};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A server whose MLLP listeners (and HTTP, when `https`) use `tls` (an inline table's
/// keys), logging at info.
fn start(tls: &str, https: bool) -> Server {
    let table = format!("tls = {{ {tls} }}\n");
    Server::start_with(Options {
        mllp_extra: table.clone(),
        http_extra: if https { table } else { String::new() },
        log: Some("info".into()),
        ..Default::default()
    })
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn key(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// `intake send --to ADDR ARGS FILE` with one A01: (success, stdout+stderr).
fn send(server: &Server, control_id: &str, args: &[&str]) -> (bool, String) {
    let file = server.dir.join(format!("{control_id}.hl7"));
    std::fs::write(
        &file,
        Adt {
            control_id,
            visit: control_id,
            ..Default::default()
        }
        .build(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args([
            "send",
            "--timeout",
            "10",
            "--to",
            &server.mllp[0].to_string(),
        ])
        .args(args)
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

async fn wait_for_log(server: &Server, needle: &str) {
    for _ in 0..100 {
        if server.log.lock().unwrap().contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the log never showed {needle}");
}

#[tokio::test]
async fn mllp_over_tls_acknowledges_and_refuses_plain_tcp_and_untrusted_certificates() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("intake test CA");
    let ca_file = ca.write(certs.path(), "ca");
    let (cert, key_file) = ca.issue(
        certs.path(),
        "server",
        "intake.test",
        &["localhost", "127.0.0.1"],
        false,
    );
    let server = start(
        &format!("cert_file = {}, key_file = {}", key(&cert), key(&key_file)),
        false,
    );
    let ca_arg = ca_file.to_str().unwrap();

    let (ok, out) = send(
        &server,
        "T1",
        &["--ca", ca_arg, "--server-name", "localhost"],
    );
    assert!(ok && out.contains("AA 1"), "{out}");
    // The default server name is the host of --to: the certificate carries 127.0.0.1 too.
    let (ok, out) = send(&server, "T2", &["--ca", ca_arg]);
    assert!(ok && out.contains("AA 1"), "{out}");

    // Plain MLLP on a TLS listener: no ACK, the handshake fails and is logged by code.
    let mut plain = server.client().await;
    let answer = plain
        .send(
            &Adt {
                control_id: "P1",
                ..Default::default()
            }
            .build(),
        )
        .await;
    assert!(answer.is_err(), "a plain client got an answer: {answer:?}");
    wait_for_log(&server, "TLS_HANDSHAKE_FAILED").await;

    // A client that does not trust the server's CA (public roots only), or checks another name.
    let (ok, out) = send(&server, "T3", &["--tls"]);
    assert!(!ok && out.contains("connecting to"), "{out}");
    let (ok, out) = send(
        &server,
        "T4",
        &["--ca", ca_arg, "--server-name", "other.test"],
    );
    assert!(!ok && out.contains("connecting to"), "{out}");

    // The listener serves on.
    let (ok, out) = send(&server, "T5", &["--ca", ca_arg]);
    assert!(ok && out.contains("AA 1"), "{out}");
    let stored: Vec<String> = server
        .inbound_outcomes()
        .await
        .into_iter()
        .map(|(c, _, _)| c)
        .collect();
    assert_eq!(stored.len(), 3, "{stored:?}");
}

#[tokio::test]
async fn mutual_tls_lets_in_only_allowed_clients_of_the_client_ca() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let ca = Ca::new("intake test CA");
    let ca_file = ca.write(dir, "ca");
    let (cert, key_file) = ca.issue(
        dir,
        "server",
        "intake.test",
        &["localhost", "127.0.0.1"],
        false,
    );
    let clients = Ca::new("clients CA");
    let clients_file = clients.write(dir, "clients-ca");
    let server = start(
        &format!(
            "cert_file = {}, key_file = {}, client_ca_file = {}, allowed_clients = [\"lab-analyzer\", \"adt.example.org\"]",
            key(&cert),
            key(&key_file),
            key(&clients_file)
        ),
        false,
    );
    let ca_arg = ca_file.to_str().unwrap().to_string();
    let with = |stem: &str| {
        let (c, k) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        vec![
            "--ca".to_string(),
            ca_arg.clone(),
            "--cert".to_string(),
            c.display().to_string(),
            "--key".to_string(),
            k.display().to_string(),
        ]
    };

    clients.issue(dir, "lab", "lab-analyzer", &[], true);
    clients.issue(dir, "adt", "adt-feed", &["adt.example.org"], true);
    clients.issue(dir, "intruder", "intruder", &["intruder.example.org"], true);
    ca.issue(dir, "stranger", "lab-analyzer", &[], true);

    // Allowed by common name, and by DNS alternative name.
    let lab = with("lab");
    let (ok, out) = send(&server, "M1", &args(&lab));
    assert!(ok && out.contains("AA 1"), "{out}");
    let adt = with("adt");
    let (ok, out) = send(&server, "M2", &args(&adt));
    assert!(ok && out.contains("AA 1"), "{out}");

    // No client certificate.
    let (ok, out) = send(&server, "M3", &["--ca", &ca_arg]);
    assert!(!ok, "{out}");
    wait_for_log(&server, "TLS_HANDSHAKE_FAILED").await;
    // Signed by the client CA, but not on the allow-list.
    let intruder = with("intruder");
    let (ok, out) = send(&server, "M4", &args(&intruder));
    assert!(!ok, "{out}");
    wait_for_log(&server, "TLS_CLIENT_NOT_ALLOWED").await;
    // The allowed name, from a CA the listener does not trust for clients.
    let stranger = with("stranger");
    let (ok, out) = send(&server, "M5", &args(&stranger));
    assert!(!ok, "{out}");

    let (ok, out) = send(&server, "M6", &args(&lab));
    assert!(ok && out.contains("AA 1"), "{out}");
    let mut stored: Vec<String> = server
        .inbound_outcomes()
        .await
        .into_iter()
        .map(|(c, _, _)| c)
        .collect();
    stored.sort();
    assert_eq!(stored, ["M1", "M2", "M6"]);
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let old_file = old_ca.write(dir, "old-ca");
    let new_file = new_ca.write(dir, "new-ca");
    let (cert, key_file) = old_ca.issue(dir, "server", "intake.test", &["127.0.0.1"], false);
    let server = start(
        &format!("cert_file = {}, key_file = {}", key(&cert), key(&key_file)),
        false,
    );
    let (old_arg, new_arg) = (old_file.to_str().unwrap(), new_file.to_str().unwrap());

    assert!(send(&server, "R1", &["--ca", old_arg]).0);
    assert!(!send(&server, "R2", &["--ca", new_arg]).0);

    // Renewal: the same files, now from the new CA.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    new_ca.issue(dir, "server", "intake.test", &["127.0.0.1"], false);
    let mut renewed = false;
    for attempt in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if send(&server, &format!("R3-{attempt}"), &["--ca", new_arg]).0 {
            renewed = true;
            break;
        }
    }
    assert!(renewed, "the renewed certificate was never served");
    wait_for_log(&server, "TLS_RELOADED").await;

    // A key file that is not PEM: logged, and the renewed certificate stays in force.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&key_file, "not a key: SECRET-KEY-BYTES\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(send(&server, "R4", &["--ca", new_arg]).0);
    wait_for_log(&server, "TLS_RELOAD_FAILED").await;
    assert!(send(&server, "R5", &["--ca", new_arg]).0);
    assert!(!server.log.lock().unwrap().contains("SECRET-KEY-BYTES"));
}

#[tokio::test]
async fn https_serves_the_api_and_refuses_an_older_protocol_than_its_minimum() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("intake test CA");
    let ca_file = ca.write(certs.path(), "ca");
    let (cert, key_file) = ca.issue(certs.path(), "server", "intake.test", &["localhost"], false);
    let server = start(
        &format!(
            "cert_file = {}, key_file = {}, min_version = \"1.3\"",
            key(&cert),
            key(&key_file)
        ),
        true,
    );
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca_file).unwrap()).unwrap();
    let url = format!(
        "https://localhost:{}/api/v1/tenants/demo/events?limit=1",
        server.http.port()
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(root.clone())
        .resolve("localhost", server.http)
        .build()
        .unwrap();
    let authorized = || client.get(&url).bearer_auth(common::DEMO_TOKEN).send();
    let resp = authorized().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // TLS 1.2 at most, against a 1.3 minimum.
    let old = reqwest::Client::builder()
        .add_root_certificate(root)
        .resolve("localhost", server.http)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(old.get(&url).send().await.is_err());
    wait_for_log(&server, "TLS_HANDSHAKE_FAILED").await;
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let plain = reqwest::get(format!("http://{}/healthz", server.http)).await;
    assert!(plain.is_err(), "{plain:?}");
    assert_eq!(authorized().await.unwrap().status(), 200, "still serving");
}

#[test]
fn tls_settings_that_do_not_load_stop_serve_with_the_file_and_reason() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("intake test CA");
    let (cert, key_file) = ca.issue(certs.path(), "server", "intake.test", &["localhost"], false);
    let garbage = certs.path().join("garbage.key");
    std::fs::write(&garbage, "-----BEGIN PRIVATE KEY-----\nSECRET-KEY-BYTES\n").unwrap();
    let cases = [
        (
            format!(
                "cert_file = {}, key_file = {}, allowed_clients = [\"x\"]",
                key(&cert),
                key(&key_file)
            ),
            "allowed_clients needs client_ca_file".to_string(),
        ),
        (
            format!(
                "cert_file = {}, key_file = \"/nonexistent/server.key\"",
                key(&cert)
            ),
            "private key /nonexistent/server.key".to_string(),
        ),
        (
            format!("cert_file = {}, key_file = {}", key(&cert), key(&garbage)),
            format!("private key {}: ", garbage.display()),
        ),
        (
            format!(
                "cert_file = {}, key_file = {}",
                key(&key_file),
                key(&key_file)
            ),
            "certificate ".to_string(),
        ),
    ];
    for (tls, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        common::prepare(
            dir.path(),
            &Options {
                mllp_extra: format!("tls = {{ {tls} }}\n"),
                ..Default::default()
            },
        );
        let out = Command::new(env!("CARGO_BIN_EXE_intake"))
            .arg("--config")
            .arg(dir.path().join("intake.toml"))
            .arg("serve")
            .env_remove("INTAKE_MLLP_ADDR")
            .env_remove("INTAKE_HTTP_ADDR")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{tls}");
        assert!(stderr.contains(&expected), "{tls}: {stderr}");
        assert!(!stderr.contains("SECRET-KEY-BYTES"), "{stderr}");
    }
}

/// The store over TLS: `sslmode=verify-full` with `sslrootcert` against a PostgreSQL behind
/// a TLS proxy stores and acknowledges; against a server whose certificate is not from
/// that CA, the connection is refused with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_is_reached_over_tls_when_the_url_asks_for_it() {
    if !common::pg::available() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("database CA");
    let ca_file = ca.write(certs.path(), "ca");
    let (cert, key_file) = ca.issue(certs.path(), "db", "db.test", &["localhost"], false);
    let db = common::pg::Database::create();
    let (host, rest) = db.app_url.rsplit_once('@').unwrap();
    let (backend, name) = rest.split_once('/').unwrap();
    let proxy = common::certs::tls_proxy(&cert, &key_file, backend.to_string(), true).await;
    let url = format!(
        "{host}@localhost:{}/{name}?sslmode=verify-full&sslrootcert={}",
        proxy.port(),
        ca_file.display()
    );
    let server = Server::start_with(Options {
        database_url: Some(url),
        ..Default::default()
    });
    let mut client = server.client().await;
    let ack = common::SendAdt::ack(&mut client, Adt::default()).await;
    assert_eq!(common::msa(&ack).0, "AA", "{ack}");
    drop(client);
    drop(server);

    // The local server directly: its certificate (if it has TLS at all) is not from this
    // CA, so `verify-full` refuses to go on.
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("migrate")
        .env(
            "INTAKE_DATABASE_URL",
            format!(
                "{}?sslmode=verify-full&sslrootcert={}",
                db.owner_url,
                ca_file.display()
            ),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("tls") || stderr.contains("ssl"), "{stderr}");
}
