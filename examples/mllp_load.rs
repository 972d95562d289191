//! MLLP load generator: C connections each send M messages in order, waiting for every
//! ACK (as real senders do). Prints throughput and ACK latency.
//!
//! ```text
//! cargo run --release --example mllp_load -- 127.0.0.1:2575 8 2000
//! cargo run --release --example mllp_load -- 127.0.0.1:2575 8 2000 --mix hl7_100000.txt --acked acked.txt
//! ```
//! Arguments: address, connections (default 8), messages per connection (default 2000).
//! `--mix FILE`: send the messages of FILE (one per line, segments separated by CR, as
//! `../shared/bench/gen_mix.py` writes them) instead of generated ADT^A01s; connection `c`
//! sends messages `c, c+C, c+2C, ...`, so each message goes once. `--acked FILE`: write the
//! control id (MSA-2) of every positive ACK, one per line, to check the server's store.
//! The last line is `key=value` pairs for scripts.

use intake_adapters::mllp::client::MllpClient;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one connection saw.
struct Seen {
    latencies: Vec<Duration>,
    acked: Vec<String>,
    rejected: usize,
}

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mix = take_flag(&mut args, "--mix").map(|f| read_mix(&f));
    let acked_file = take_flag(&mut args, "--acked");
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:2575".into());
    let connections: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(8);
    let per_connection: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(2000);
    if let Some(mix) = &mix {
        assert!(
            connections * per_connection <= mix.len(),
            "the mix holds {} messages, fewer than {connections} x {per_connection}",
            mix.len()
        );
    }
    let mix = Arc::new(mix);
    let run = std::process::id();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let (addr, mix) = (addr.clone(), mix.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = MllpClient::connect(addr.as_str(), Duration::from_secs(30))
                .await
                .expect("connect");
            let mut seen = Seen {
                latencies: Vec::with_capacity(per_connection),
                acked: Vec::with_capacity(per_connection),
                rejected: 0,
            };
            for i in 0..per_connection {
                let msg = match mix.as_ref() {
                    Some(mix) => mix[conn + i * connections].clone(),
                    None => adt(run, conn, i),
                };
                let t = Instant::now();
                let ack = client.send(msg.as_bytes()).await.expect("ack");
                seen.latencies.push(t.elapsed());
                let msa = ack.split(['\r', '\n']).find(|s| s.starts_with("MSA|"));
                let mut fields = msa.unwrap_or("").split('|').skip(1);
                match (fields.next(), fields.next()) {
                    (Some("AA" | "CA"), Some(id)) => seen.acked.push(id.to_string()),
                    _ => seen.rejected += 1,
                }
            }
            seen
        }));
    }
    let (mut all, mut acked, mut rejected) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        let seen = t.await.expect("task");
        all.extend(seen.latencies);
        acked.extend(seen.acked);
        rejected += seen.rejected;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let ms = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    let rate = all.len() as f64 / elapsed;
    let max = all.last().copied().unwrap_or_default().as_secs_f64() * 1e3;
    println!(
        "{} messages over {connections} connections in {elapsed:.2}s: {rate:.0} msg/s; ACK latency p50 {:.2} ms, p99 {:.2} ms, max {max:.2} ms; not AA: {rejected}",
        all.len(),
        ms(0.50),
        ms(0.99),
    );
    if let Some(file) = acked_file {
        std::fs::write(&file, acked.join("\n") + "\n").expect("write the acked ids");
    }
    println!(
        "messages={} seconds={elapsed:.3} rate={rate:.0} p50_ms={:.3} p99_ms={:.3} max_ms={max:.3} not_aa={rejected}",
        all.len(),
        ms(0.50),
        ms(0.99),
    );
}

/// Removes `flag VALUE` from `args`, returning the value.
fn take_flag(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let at = args.iter().position(|a| a == flag)?;
    let value = args.get(at + 1).cloned().expect("a value after the flag");
    args.drain(at..at + 2);
    Some(value)
}

/// The messages of a mix file: one per line.
fn read_mix(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("read the mix file");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// A generated ADT^A01 with a control id unique to this run, connection and index.
fn adt(run: u32, conn: usize, i: usize) -> String {
    format!(
        "MSH|^~\\&|LOAD|DEMO_HOSP|INTAKE|INTAKE|20261122083000||ADT^A01^ADT_A01|L{run}-{conn}-{i}|P|2.5.1\r\
         EVN|A01|20261122083000\r\
         PID|1||MRN{conn}{i}^^^DEMO_HOSP^MR||Doe^Alex||19800214|F\r\
         PV1|1|I|WARD1^101^A||||D1234^House^Greg|||MED||||1|||D1234|IP|V{run}-{conn}-{i}\r"
    )
}
