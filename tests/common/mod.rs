//! Test harness: runs the real `intake serve` binary on ephemeral ports with its own
//! database (a SQLite file, or a fresh PostgreSQL database) and mappings, and talks to it
//! over real sockets.
//!
//! [`on_each_backend!`] turns one test into two, `<name>::sqlite` and `<name>::postgres`.
#![allow(dead_code, missing_docs)]

pub mod certs;
pub mod pg;

use intake_adapters::mllp::client::MllpClient;
use intake_pipeline::store::{self, DeadLetter, EventQuery, Store, StoreOptions};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ADMIN: &str = "admin-secret";

/// A rule for ADT^A04, which the test mappings lack (an A04 is dead-lettered until a test
/// adds it, as support fixes a mapping).
pub const A04_RULE: &str = "
  - message: ADT^A04
    events:
      - event: PatientRegistered
        stream: { type: Admission, key: PV1.19.1 }
        time: EVN.6 | EVN.2 | MSH.7
        fields:
          patient_mrn:  { path: \"PID.3[5=MR].1 | PID.3.1\", required: true }
          visit_number: { path: PV1.19.1, required: true }
";
/// An A08 rule for the test tenants (their fixture maps A01-A03 only).
pub const A08_RULE: &str = "
  - message: ADT^A08
    events:
      - event: PatientUpdated
        stream: { type: Admission, key: PV1.19.1 }
        time: EVN.6 | EVN.2 | MSH.7
        fields:
          patient_mrn:  { path: \"PID.3[5=MR].1 | PID.3.1\", required: true }
          visit_number: { path: PV1.19.1 }
          location:     { path: PV1.3.1 }
          bed:          { path: PV1.3.3 }
";
pub const DEMO_TOKEN: &str = "demo-secret";
pub const STRICT_TOKEN: &str = "strict-secret";

/// Which database a test's servers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

thread_local! {
    static BACKEND: Cell<Backend> = const { Cell::new(Backend::Sqlite) };
}

/// Sets the backend for servers prepared on this thread (the test's own thread).
pub fn set_backend(backend: Backend) {
    BACKEND.with(|b| b.set(backend));
}

/// The backend servers prepared on this thread use.
pub fn backend() -> Backend {
    BACKEND.with(Cell::get)
}

/// Defines `mod $name { fn sqlite(); fn postgres(); }`: the same end-to-end test on both
/// backends. The PostgreSQL variant is skipped (with a note) only when PostgreSQL is
/// unreachable and `INTAKE_TEST_REQUIRE_PG` is not `1`.
#[macro_export]
macro_rules! on_each_backend {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                $crate::common::set_backend($crate::common::Backend::Sqlite);
                $body
            }

            #[tokio::test]
            async fn postgres() {
                if !$crate::common::pg::available() {
                    return;
                }
                $crate::common::set_backend($crate::common::Backend::Postgres);
                $body
            }
        }
    };
}

/// A running server and the folder holding its database and mappings.
pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    /// [bound to demo, routed by MSH-4/MSH-6]
    pub mllp: Vec<SocketAddr>,
    pub http: SocketAddr,
    /// The server's log (stderr) when `Options::log` was set.
    pub log: Arc<Mutex<String>>,
    /// The database URL the server uses.
    pub database_url: String,
    _tmp: Option<tempfile::TempDir>,
    _db: Option<pg::Database>,
}

/// Extra lines for the `[[mllp]]` tables, e.g. `max_frame_bytes = 65536`.
#[derive(Default, Clone)]
pub struct Options {
    pub mllp_extra: String,
    /// Lines added to `[http]` (e.g. `header_read_timeout_ms = 500`).
    pub http_extra: String,
    /// `[mappings] reload_interval_ms`.
    pub reload_interval_ms: Option<u64>,
    /// `[mappings] staged` (with hot reload): edits go live only when the samples in
    /// `<dir>/samples/<tenant>/` pass. Off by default here: most tests edit tenants that
    /// have no samples.
    pub staged: bool,
    /// An `INTAKE_LOG` filter; when set, stderr is captured in `Server::log`.
    pub log: Option<String>,
    /// Serve the repository's own `mappings/` (the shipped demo tenant) instead of the
    /// test tenants.
    pub shipped_mappings: bool,
    /// Use this database instead of a fresh one (several servers on one database).
    pub database_url: Option<String>,
    /// `[amqp] url`: publish events to this broker through the outbox.
    pub amqp: Option<String>,
    /// More lines for the `[amqp]` table, e.g. `exchange = "x"` (with `amqp` only).
    pub amqp_extra: String,
    /// Appended to the config file as is (top-level tables).
    pub extra_config: String,
    /// Top-level keys, written before the first table (e.g. `max_connections_total = 3`).
    pub top_config: String,
}

/// Every file under `dir`, at any depth, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Copies the shipped plugins into `dir/plugins` (beside `dir/mappings`, where the demo
/// tenant's `plugins:` finds them).
pub fn copy_plugins(dir: &Path) {
    for entry in std::fs::read_dir(repo().join("plugins")).unwrap() {
        let from = entry.unwrap().path();
        let to = dir.join("plugins").join(from.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(&from).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
        }
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Prepares a folder with mappings and a config file. The test tenants are `demo`, with
/// the fixed A01-A03 mapping of `tests/fixtures` (so these tests do not move with the
/// shipped demo mapping), and `strict`, which answers AE for dead letters and claims
/// MSH-4 STRICT_HOSP.
pub fn prepare(dir: &Path, opts: &Options) -> Option<pg::Database> {
    let (database_url, db) = match (&opts.database_url, backend()) {
        (Some(url), _) => (url.clone(), None),
        (None, Backend::Sqlite) => (
            format!("sqlite://{}", dir.join("intake.db").display()),
            None,
        ),
        (None, Backend::Postgres) => {
            let db = pg::Database::create();
            (db.app_url.clone(), Some(db))
        }
    };
    std::fs::write(dir.join("database_url"), &database_url).unwrap();
    let maps = dir.join("mappings");
    for t in ["demo", "strict"] {
        std::fs::create_dir_all(maps.join(t)).unwrap();
        std::fs::copy(
            repo().join("tests/fixtures/adt-a01-a03.yaml"),
            maps.join(t).join("adt.yaml"),
        )
        .unwrap();
    }
    std::fs::copy(
        repo().join("mappings/demo/tenant.yaml"),
        maps.join("demo/tenant.yaml"),
    )
    .unwrap();
    copy_plugins(dir);
    std::fs::write(
        maps.join("strict/tenant.yaml"),
        "timezone: Europe/Berlin\nack_on_dead_letter: error\nrouting:\n  sending_facilities: [STRICT_HOSP]\n",
    )
    .unwrap();
    let mappings = format!(
        "[mappings]\n{}staged = {}\n",
        opts.reload_interval_ms
            .map(|ms| format!("reload_interval_ms = {ms}\n"))
            .unwrap_or_default(),
        opts.staged
    );
    let config =
        format!(
        "database_url = \"{database_url}\"\nmappings_dir = \"{maps}\"\nadmin_token = \"{ADMIN}\"\n{top}\n\
         [tenant_tokens]\ndemo = \"{DEMO_TOKEN}\"\n{strict}\
         [http]\naddr = \"127.0.0.1:0\"\n{http}\n{mappings}\
         [[mllp]]\naddr = \"127.0.0.1:0\"\ntenant = \"demo\"\n{extra}\n\
         [[mllp]]\naddr = \"127.0.0.1:0\"\n{extra}\n",
        maps = if opts.shipped_mappings { repo().join("mappings") } else { maps }.display(),
        extra = opts.mllp_extra,
        top = opts.top_config,
        http = opts.http_extra,
        // The shipped mappings hold no `strict` tenant, and a token for a missing tenant
        // stops serve.
        strict = if opts.shipped_mappings {
            String::new()
        } else {
            format!("strict = \"{STRICT_TOKEN}\"\n")
        },
    );
    let amqp = opts
        .amqp
        .as_ref()
        .map(|url| format!("[amqp]\nurl = \"{url}\"\n{}\n", opts.amqp_extra))
        .unwrap_or_default();
    let config = format!("{config}{amqp}{}\n", opts.extra_config);
    std::fs::write(dir.join("intake.toml"), config).unwrap();
    db
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let db = prepare(tmp.path(), &opts);
        let mut s = Self::start_in_with(tmp.path(), &opts);
        s._tmp = Some(tmp);
        s._db = db;
        s
    }

    /// Starts a server on an already prepared folder (used to restart after a crash).
    pub fn start_in(dir: &Path) -> Server {
        Self::start_in_with(dir, &Options::default())
    }

    pub fn start_in_with(dir: &Path, opts: &Options) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .arg("--config")
            .arg(dir.join("intake.toml"))
            .arg("serve")
            .current_dir(dir)
            .env_remove("INTAKE_DATABASE_URL")
            .env_remove("INTAKE_MAPPINGS_DIR")
            .env_remove("INTAKE_MLLP_ADDR")
            .env_remove("INTAKE_HTTP_ADDR")
            .env_remove("INTAKE_ADMIN_TOKEN")
            .env_remove("INTAKE_TOKENS_FILE")
            .env_remove("INTAKE_AMQP_URL")
            .env("INTAKE_LOG", opts.log.as_deref().unwrap_or("warn"))
            .stdout(Stdio::piped())
            .stderr(match opts.log {
                Some(_) => Stdio::piped(),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("start intake serve");
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut mllp = Vec::new();
        let http = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            let addr = |l: &str| {
                l.split_whitespace()
                    .nth(3)
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap()
            };
            if line.starts_with("intake listening: mllp") {
                mllp.push(addr(&line));
            } else if line.starts_with("intake listening: http") {
                break addr(&line);
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            dir: dir.to_path_buf(),
            mllp,
            http,
            log,
            database_url: std::fs::read_to_string(dir.join("database_url")).unwrap(),
            _tmp: None,
            _db: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn client(&self) -> MllpClient {
        MllpClient::connect(self.mllp[0], Duration::from_secs(20))
            .await
            .unwrap()
    }

    pub async fn routed_client(&self) -> MllpClient {
        MllpClient::connect(self.mllp[1], Duration::from_secs(20))
            .await
            .unwrap()
    }

    /// The server's store, opened as the server opens it (for PostgreSQL: the engine's
    /// role, so row-level security applies).
    pub async fn store(&self) -> Arc<dyn Store> {
        store::open(&self.database_url, StoreOptions::default())
            .await
            .unwrap()
    }

    pub async fn events(&self, tenant: &str) -> Vec<intake_pipeline::event::EventEnvelope> {
        let q = EventQuery {
            tenant: Some(tenant.into()),
            stream_id: None,
            after: 0,
            limit: 100_000,
        };
        self.store().await.read_events(&q).await.unwrap()
    }

    /// (control id, outcome, detail) of every inbound row, by control id, read with SQL
    /// (on PostgreSQL as the database owner, across tenants).
    pub async fn inbound_outcomes(&self) -> Vec<(String, String, Option<String>)> {
        use sqlx::Connection;
        let sql = "SELECT coalesce(control_id, ''), outcome, detail FROM inbound_messages \
                   ORDER BY control_id";
        match &self._db {
            Some(db) => {
                let mut c = sqlx::PgConnection::connect(&db.owner_url).await.unwrap();
                sqlx::query("SELECT set_config('app.tenant_id', '*', false)")
                    .execute(&mut c)
                    .await
                    .unwrap();
                sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
            }
            None => {
                let mut c = sqlx::SqliteConnection::connect(&self.database_url)
                    .await
                    .unwrap();
                sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
            }
        }
    }

    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.store().await.dead_letters(None).await.unwrap()
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// A plain HTTP/1.1 request; returns (status, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: intake\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let resp = String::from_utf8_lossy(&resp).into_owned();
        let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// POSTs FHIR JSON to `tenant`'s FHIR route with `token`: (status, body).
    pub fn post_fhir(&self, tenant: &str, token: &str, body: &[u8]) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let head = format!(
            "POST /api/v1/tenants/{tenant}/fhir HTTP/1.1\r\nHost: intake\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// Runs `intake ARGS` against this server's configuration, in its folder (where the
    /// tokens file is): (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_intake"))
            .arg("--config")
            .arg(self.dir.join("intake.toml"))
            .args(args)
            .current_dir(&self.dir)
            .env_remove("INTAKE_DATABASE_URL")
            .env_remove("INTAKE_MAPPINGS_DIR")
            .env_remove("INTAKE_TOKENS_FILE")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Creates a named token of demo with `scopes` and waits until the server accepts it.
    pub async fn demo_token(&self, name: &str, scopes: &str) -> String {
        let (ok, out, err) = self.cli(&[
            "token", "create", "--name", name, "--tenant", "demo", "--scope", scopes,
        ]);
        assert!(ok, "{err}");
        let token = out.trim().to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Every token of demo may list messages or dead letters, or read events.
        while [
            "/api/v1/tenants/demo/messages",
            "/api/v1/tenants/demo/events",
        ]
        .iter()
        .all(|p| self.http("GET", p, Some(&token), b"").0 != 200)
        {
            assert!(std::time::Instant::now() < deadline, "token not picked up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        token
    }

    /// Appends [`A04_RULE`] to `tenant`'s ADT mappings.
    pub fn add_a04_rule(&self, tenant: &str) {
        let file = self.dir.join("mappings").join(tenant).join("adt.yaml");
        let mut yaml = std::fs::read_to_string(&file).unwrap();
        yaml.push_str(A04_RULE);
        std::fs::write(&file, yaml).unwrap();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An ADT message for one visit. `extra_msh` is appended after MSH-12 (e.g. "|||AL|NE").
pub struct Adt<'a> {
    pub trigger: &'a str,
    pub control_id: &'a str,
    pub visit: &'a str,
    pub facility: &'a str,
    pub msh_tail: &'a str,
    pub location: &'a str,
}

impl Default for Adt<'_> {
    fn default() -> Self {
        Adt {
            trigger: "A01",
            control_id: "C1",
            visit: "V1",
            facility: "DEMO_HOSP",
            msh_tail: "",
            location: "WARD1^101^A",
        }
    }
}

impl Adt<'_> {
    pub fn build(&self) -> Vec<u8> {
        format!(
            "MSH|^~\\&|ADT1|{fac}|INTAKE|INTAKE|20261122083000||ADT^{trig}^ADT_{trig}|{ctrl}|P|2.5.1{tail}\r\
             EVN|{trig}|20261122083000|||OP1|20261122082500\r\
             PID|1||MRN-{visit}^^^{fac}^MR||Doe^Alex||19800214|F\r\
             PV1|1|I|{loc}||||D1234^House^Greg|||MED||||1|||D1234|IP|{visit}\r",
            fac = self.facility,
            trig = self.trigger,
            ctrl = self.control_id,
            tail = self.msh_tail,
            visit = self.visit,
            loc = self.location,
        )
        .into_bytes()
    }
}

/// MSA-1 and MSA-2 of an ACK.
pub fn msa(ack: &str) -> (String, String) {
    let seg = ack
        .split('\r')
        .find(|s| s.starts_with("MSA|"))
        .expect("MSA segment");
    let f: Vec<&str> = seg.split('|').collect();
    (f[1].to_string(), f.get(2).unwrap_or(&"").to_string())
}

/// The ERR segment, if any.
pub fn err_segment(ack: &str) -> Option<String> {
    ack.split('\r')
        .find(|s| s.starts_with("ERR|"))
        .map(str::to_string)
}

/// Sends test ADTs and returns their ACKs (panics on a transport error: tests only).
pub trait SendAdt {
    /// Sends `adt` and waits for its acknowledgement.
    async fn ack(&mut self, adt: Adt<'_>) -> String;
}

impl SendAdt for MllpClient {
    async fn ack(&mut self, adt: Adt<'_>) -> String {
        self.send(&adt.build()).await.unwrap()
    }
}
