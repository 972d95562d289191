//! Events to RabbitMQ through the outbox, against the real broker (`INTAKE_TEST_AMQP_URL`,
//! default `amqp://guest:guest@127.0.0.1:5672/%2f`), on SQLite and on PostgreSQL. Each test uses its own exchange and an exclusive
//! queue, so tests share the broker safely. A broker outage is simulated with a TCP proxy
//! the test owns and switches off and on: the real RabbitMQ keeps serving other tests.

mod common;

use common::{msa, Adt, SendAdt, Server};
use intake_pipeline::event::EventEnvelope;
use lapin::message::Delivery;
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

fn broker_url() -> String {
    std::env::var("INTAKE_TEST_AMQP_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// `host:port` of the broker URL.
fn broker_addr() -> String {
    let u = broker_url();
    let rest = u.split_once("://").map_or(u.as_str(), |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_string()
}

/// The broker URL (credentials, vhost) with its address replaced by `addr`.
fn url(addr: &str) -> String {
    broker_url().replacen(&broker_addr(), addr, 1)
}

/// A consumer's side: a unique durable topic exchange (as intake declares it) and an
/// exclusive queue bound to it.
struct Bound {
    conn: Connection,
    channel: Channel,
    exchange: String,
    queue: String,
}

impl Bound {
    async fn new(pattern: &str) -> Bound {
        let conn = Connection::connect(&url(&broker_addr()), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "RabbitMQ must run at {} (INTAKE_TEST_AMQP_URL): {e}",
                    broker_addr()
                )
            });
        let channel = conn.create_channel().await.unwrap();
        let exchange = format!("intake.test.{}", uuid::Uuid::now_v7());
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = queue.name().to_string();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Bound {
            conn,
            channel,
            exchange,
            queue,
        }
    }

    /// Takes deliveries into `got` until `done(got)` holds or `timeout` passes.
    async fn take_until(
        &self,
        got: &mut Vec<Delivery>,
        timeout: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(got) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            let message = self
                .channel
                .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            match message {
                Some(m) => got.push(m.delivery),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    async fn delete(self) {
        let _ = self
            .channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = self.conn.close(200, "done".into()).await;
    }
}

fn message_id(d: &Delivery) -> String {
    d.properties.message_id().as_ref().unwrap().to_string()
}

fn ids(deliveries: &[Delivery]) -> BTreeSet<String> {
    deliveries.iter().map(message_id).collect()
}

fn event_ids(events: &[EventEnvelope]) -> BTreeSet<String> {
    events.iter().map(|e| e.event_id.to_string()).collect()
}

fn header<'a>(d: &'a Delivery, name: &str) -> &'a AMQPValue {
    d.properties
        .headers()
        .as_ref()
        .unwrap()
        .inner()
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
}

fn text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => s.to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

fn int(v: &AMQPValue) -> i64 {
    match v {
        AMQPValue::LongLongInt(i) => *i,
        other => panic!("not an i64: {other:?}"),
    }
}

fn readyz(server: &Server) -> serde_json::Value {
    let (status, body) = server.http("GET", "/readyz", None, b"");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn metric(server: &Server, name: &str) -> Option<f64> {
    let (_, body) = server.http("GET", "/metrics", Some(common::ADMIN), b"");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `cond` every 50 ms for up to `timeout`.
async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

fn server_for(broker_url: &str, exchange: &str) -> Server {
    server_with(broker_url, exchange, "")
}

fn server_with(broker_url: &str, exchange: &str, extra: &str) -> Server {
    Server::start_with(common::Options {
        amqp: Some(broker_url.to_string()),
        amqp_extra: format!("exchange = \"{exchange}\"\nretry_max_secs = 1\nbatch = 16\n{extra}"),
        ..Default::default()
    })
}

/// `amqps://` with `[amqp] ca_file`: the publisher checks the broker's certificate against
/// the CA and publishes over TLS (a TLS proxy the test owns fronts the local RabbitMQ);
/// without the CA it never connects, and keeps the events in the outbox.
#[tokio::test(flavor = "multi_thread")]
async fn events_reach_a_broker_over_amqps_checked_against_the_ca_file() {
    let certs = tempfile::tempdir().unwrap();
    let ca = common::certs::Ca::new("broker CA");
    let ca_file = ca.write(certs.path(), "ca");
    let (cert, key) = ca.issue(certs.path(), "broker", "broker.test", &["localhost"], false);
    let proxy = common::certs::tls_proxy(&cert, &key, broker_addr(), false).await;
    let amqps = url(&format!("localhost:{}", proxy.port())).replacen("amqp://", "amqps://", 1);

    let bound = Bound::new("demo.*").await;
    let untrusting = server_for(&amqps, &bound.exchange);
    let ack = untrusting.client().await.ack(Adt::default()).await;
    assert_eq!(msa(&ack).0, "AA");
    let mut got = Vec::new();
    assert!(
        !bound
            .take_until(&mut got, Duration::from_secs(3), |d| !d.is_empty())
            .await,
        "published to a broker whose certificate it cannot check"
    );
    let backlog = metric(&untrusting, "intake_outbox_backlog").unwrap_or(0.0);
    assert!(backlog >= 1.0, "the events wait in the outbox: {backlog}");
    drop(untrusting);

    let ca_line = format!("ca_file = {:?}\n", ca_file.display().to_string());
    let server = server_with(&amqps, &bound.exchange, &ca_line);
    let ack = server.client().await.ack(Adt::default()).await;
    assert_eq!(msa(&ack).0, "AA");
    assert!(
        bound
            .take_until(&mut got, Duration::from_secs(20), |d| !d.is_empty())
            .await,
        "no event over amqps"
    );
    assert_eq!(ids(&got), event_ids(&server.events("demo").await));
    bound.delete().await;
}

on_each_backend! {
    async fn every_stored_event_is_published_with_its_id_headers_and_stream_order() {
        let bound = Bound::new("demo.*").await;
        let server = server_for(&url(&broker_addr()), &bound.exchange);
        // Two visits, admit-transfer-discharge each, interleaved over two connections.
        let (mut a, mut b) = (server.client().await, server.client().await);
        for (i, trigger) in ["A01", "A02", "A03"].into_iter().enumerate() {
            for (c, visit) in [(&mut a, "V1"), (&mut b, "V2")] {
                let ctrl = format!("{visit}-{i}");
                let ack = c
                    .ack(Adt {
                        trigger,
                        control_id: &ctrl,
                        visit,
                        ..Default::default()
                    })
                    .await;
                assert_eq!(msa(&ack).0, "AA");
            }
        }
        let stored = server.events("demo").await;
        assert_eq!(stored.len(), 6);
        let mut got = Vec::new();
        let want = event_ids(&stored);
        assert!(
            bound
                .take_until(&mut got, Duration::from_secs(20), |g| ids(g) == want)
                .await,
            "published {} of {} events",
            ids(&got).len(),
            want.len()
        );
        let by_id: BTreeMap<String, &EventEnvelope> =
            stored.iter().map(|e| (e.event_id.to_string(), e)).collect();
        let mut last_version: BTreeMap<String, i64> = BTreeMap::new();
        for d in &got {
            let e = by_id[&message_id(d)];
            assert_eq!(d.routing_key.as_str(), format!("demo.{}", e.event_type));
            assert_eq!(d.properties.delivery_mode(), &Some(2), "persistent");
            assert_eq!(
                d.properties.content_type().as_ref().unwrap().as_str(),
                "application/json"
            );
            assert_eq!(d.properties.kind().as_ref().unwrap().as_str(), e.event_type);
            assert!(d.properties.timestamp().is_some());
            assert_eq!(text(header(d, "tenant_id")), "demo");
            assert_eq!(text(header(d, "stream_id")), e.stream_id.to_string());
            assert_eq!(text(header(d, "stream_type")), "Admission");
            assert_eq!(int(header(d, "event_version")), e.event_version);
            assert_eq!(int(header(d, "global_position")), e.global_position);
            // The body is the envelope exactly as the HTTP API serves it.
            let body: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
            assert_eq!(body, serde_json::to_value(e).unwrap());
            // Per stream, versions arrive in order.
            let last = last_version.entry(e.stream_id.to_string()).or_insert(0);
            assert!(
                e.event_version > *last,
                "stream {} version {} after {last}",
                e.stream_id,
                e.event_version
            );
            *last = e.event_version;
        }
        assert!(
            eventually(Duration::from_secs(5), || readyz(&server)["outbox"]
                ["backlog"]
                == 0)
            .await
        );
        let ready = readyz(&server);
        assert_eq!(ready["status"], "ready");
        assert_eq!(ready["outbox"]["broker"], "connected");
        assert_eq!(metric(&server, "intake_outbox_published_total"), Some(6.0));
        assert_eq!(metric(&server, "intake_amqp_connected"), Some(1.0));
        assert_eq!(metric(&server, "intake_outbox_backlog"), Some(0.0));
        bound.delete().await;
    }
}

/// A TCP proxy to the broker that the test switches off (listener closed, every
/// connection cut) and on again, on the same port.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        drop(socket);
        let mut p = Proxy {
            addr,
            upstream,
            accept: None,
        };
        p.up();
        p
    }

    fn up(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).unwrap();
        let listener = socket.listen(64).unwrap();
        let upstream = self.upstream.clone();
        self.accept = Some(tokio::spawn(async move {
            // Dropping this task (abort) drops the listener and, through the JoinSet,
            // every piped connection.
            let mut pipes = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                pipes.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    async fn down(&mut self) {
        if let Some(t) = self.accept.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

on_each_backend! {
    async fn broker_outage_loses_nothing_and_the_outbox_drains_on_recovery() {
        let bound = Bound::new("#").await;
        let mut proxy = Proxy::start(broker_addr()).await;
        let server = server_for(&url(&proxy.addr.to_string()), &bound.exchange);
        let mut client = server.client().await;
        let send = |n: usize, prefix: &'static str| {
            (0..n).map(move |i| (format!("{prefix}{i}"), format!("{prefix}-V{}", i % 4)))
        };
        let mut got = Vec::new();

        // Connected: the first events go straight out.
        for (ctrl, visit) in send(4, "before") {
            let ack = client
                .ack(Adt {
                    control_id: &ctrl,
                    visit: &visit,
                    ..Default::default()
                })
                .await;
            assert_eq!(msa(&ack).0, "AA");
        }
        let first = event_ids(&server.events("demo").await);
        assert!(
            bound
                .take_until(&mut got, Duration::from_secs(20), |g| ids(g) == first)
                .await
        );

        // Broker unreachable: ingest and ACKs carry on, the outbox grows and shows.
        proxy.down().await;
        assert!(
            eventually(Duration::from_secs(10), || readyz(&server)["outbox"]
                ["broker"]
                == "disconnected")
            .await,
            "readyz notices the lost broker"
        );
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        let mut during = 0;
        for (i, (ctrl, visit)) in send(40, "during").enumerate() {
            let t = Instant::now();
            let trigger = if i < 4 { "A01" } else { "A02" };
            let ack = client
                .ack(Adt {
                    trigger,
                    control_id: &ctrl,
                    visit: &visit,
                    location: &format!("WARD{i}^1^A"),
                    ..Default::default()
                })
                .await;
            assert_eq!(
                msa(&ack).0,
                "AA",
                "stored and acknowledged without the broker"
            );
            slowest = slowest.max(t.elapsed());
            during += 1;
        }
        assert!(
            slowest < Duration::from_secs(2),
            "ACKs never wait on the broker (slowest {slowest:?}, all {:?})",
            started.elapsed()
        );
        let ready = readyz(&server);
        assert_eq!(
            ready["status"], "ready",
            "a broker outage is not an outage of intake"
        );
        assert_eq!(ready["outbox"]["backlog"], during, "{ready}");
        assert_eq!(
            metric(&server, "intake_outbox_backlog"),
            Some(during as f64)
        );
        assert_eq!(metric(&server, "intake_amqp_connected"), Some(0.0));
        // Let the publisher fail to reconnect a few times (back-off capped at 1 s here).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(metric(&server, "intake_amqp_publish_failures_total").unwrap() >= 1.0);
        assert_eq!(server.store().await.outbox_backlog().await.unwrap(), during);

        // Back: the outbox drains; the broker has every stored event, by id exactly the
        // stored set (at least once each).
        proxy.up();
        let stored = server.events("demo").await;
        assert_eq!(stored.len(), 4 + during as usize);
        let want = event_ids(&stored);
        assert!(
            bound
                .take_until(&mut got, Duration::from_secs(30), |g| ids(g) == want)
                .await,
            "after recovery the broker got {} of {} events",
            ids(&got).len(),
            want.len()
        );
        assert!(got.len() >= want.len());
        assert!(
            eventually(Duration::from_secs(10), || {
                let r = readyz(&server);
                r["outbox"]["backlog"] == 0 && r["outbox"]["broker"] == "connected"
            })
            .await
        );
        // Nothing extra arrives later either.
        bound
            .take_until(&mut got, Duration::from_millis(500), |_| false)
            .await;
        assert_eq!(ids(&got), want, "exactly the stored set of event ids");
        assert!(metric(&server, "intake_outbox_published_total").unwrap() >= want.len() as f64);
        proxy.down().await;
        bound.delete().await;
    }
}

on_each_backend! {
    async fn without_a_broker_nothing_is_queued_and_readyz_has_no_outbox() {
        let server = Server::start();
        let mut c = server.client().await;
        assert_eq!(msa(&c.ack(Adt::default()).await).0, "AA");
        assert_eq!(server.events("demo").await.len(), 1);
        assert_eq!(server.store().await.outbox_backlog().await.unwrap(), 0);
        let ready = readyz(&server);
        assert_eq!(ready, serde_json::json!({"status": "ready"}));
        assert_eq!(metric(&server, "intake_outbox_backlog"), None);
        assert_eq!(metric(&server, "intake_amqp_connected"), None);
    }
}

on_each_backend! {
    /// The killed instance held the publisher lease: the restarted one takes it over once it
    /// expires (`lease_secs`), and then drains the backlog.
    async fn a_backlog_survives_kill_9_and_drains_after_restart() {
        let bound = Bound::new("demo.#").await;
        let mut proxy = Proxy::start(broker_addr()).await;
        let mut server = server_with(
            &url(&proxy.addr.to_string()),
            &bound.exchange,
            "lease_secs = 2\n",
        );
        let mut client = server.client().await;
        let ack = client
            .ack(Adt {
                control_id: "K-first",
                visit: "KV-first",
                ..Default::default()
            })
            .await;
        assert_eq!(msa(&ack).0, "AA");
        let mut got = Vec::new();
        assert!(
            bound
                .take_until(&mut got, Duration::from_secs(20), |g| !g.is_empty())
                .await
        );
        proxy.down().await;
        for i in 0..20 {
            let (ctrl, visit) = (format!("K{i}"), format!("KV{}", i % 3));
            let ack = client
                .ack(Adt {
                    control_id: &ctrl,
                    visit: &visit,
                    location: &format!("WARD{i}^1^A"),
                    trigger: if i < 3 { "A01" } else { "A02" },
                    ..Default::default()
                })
                .await;
            assert_eq!(msa(&ack).0, "AA");
        }
        assert_eq!(readyz(&server)["outbox"]["backlog"], 20);
        server.kill();
        proxy.up();
        let server = Server::start_in(&server.dir.clone());
        let want = event_ids(&server.events("demo").await);
        assert_eq!(want.len(), 21);
        assert!(
            bound
                .take_until(&mut got, Duration::from_secs(30), |g| ids(g) == want)
                .await,
            "after the restart the broker got {} of {} events",
            ids(&got).len(),
            want.len()
        );
        assert!(
            eventually(Duration::from_secs(10), || readyz(&server)["outbox"]
                ["backlog"]
                == 0)
            .await
        );
        proxy.down().await;
        bound.delete().await;
    }
}

/// Two instances on one PostgreSQL database, both configured with the broker: one holds
/// the publisher lease at a time, and every event either instance stored arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_publish_every_event_under_one_lease() {
    if !common::pg::available() {
        return;
    }
    common::set_backend(common::Backend::Postgres);
    let bound = Bound::new("demo.*").await;
    let db = common::pg::Database::create();
    let opts = common::Options {
        database_url: Some(db.app_url.clone()),
        amqp: Some(url(&broker_addr())),
        amqp_extra: format!(
            "exchange = \"{}\"\nretry_max_secs = 1\nbatch = 16\n",
            bound.exchange
        ),
        ..Default::default()
    };
    let a = Server::start_with(opts.clone());
    let b = Server::start_with(opts);
    let mut tasks = Vec::new();
    for (n, server) in [&a, &b].into_iter().enumerate() {
        let addr = server.mllp[0];
        tasks.push(tokio::spawn(async move {
            let mut c =
                intake_adapters::mllp::client::MllpClient::connect(addr, Duration::from_secs(20))
                    .await
                    .unwrap();
            for i in 0..60 {
                let ctrl = format!("P{n}-{i}");
                let visit = format!("V{}", i % 4);
                let ack = c
                    .ack(Adt {
                        control_id: &ctrl,
                        visit: &visit,
                        ..Default::default()
                    })
                    .await;
                assert_eq!(msa(&ack).0, "AA");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = a.events("demo").await;
    assert_eq!(stored.len(), 120);
    let mut got = Vec::new();
    let want = event_ids(&stored);
    let all = bound
        .take_until(&mut got, Duration::from_secs(30), |g| {
            ids(g).is_superset(&want)
        })
        .await;
    assert!(all, "published {} of {}", ids(&got).len(), want.len());
    assert_eq!(ids(&got), want, "by message_id exactly the stored set");
    // Per stream, first deliveries come in version order (one publisher at a time).
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for d in &got {
        if !seen.insert(message_id(d)) {
            continue;
        }
        let stream = text(header(d, "stream_id"));
        let version = int(header(d, "event_version"));
        let prev = last.insert(stream.clone(), version).unwrap_or(0);
        assert!(
            version > prev,
            "stream {stream}: version {version} after {prev}"
        );
    }
    assert!(
        eventually(Duration::from_secs(10), || readyz(&a)["outbox"]["backlog"]
            == 0
            && readyz(&b)["outbox"]["backlog"] == 0)
        .await
    );
    let published = |s: &Server| metric(s, "intake_outbox_published_total").unwrap_or(0.0);
    let (pa, pb) = (published(&a), published(&b));
    assert!(pa + pb >= 120.0, "{pa} + {pb}");
    drop((a, b));
    bound.delete().await;
}
