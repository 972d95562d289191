//! MLLP load generator: C connections each send M distinct ADT^A01 messages in order,
//! waiting for every ACK (as real senders do). Prints throughput and ACK latency.
//!
//! ```text
//! cargo run --release --example mllp_load -- 127.0.0.1:2575 8 2000
//! ```
//! Arguments: address, connections (default 8), messages per connection (default 2000).

use intake_adapters::mllp::client::MllpClient;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:2575".into());
    let connections: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(8);
    let per_connection: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(2000);
    let run = std::process::id();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = MllpClient::connect(addr.as_str(), Duration::from_secs(30)).await.expect("connect");
            let mut latencies = Vec::with_capacity(per_connection);
            let mut rejected = 0usize;
            for i in 0..per_connection {
                let msg = format!(
                    "MSH|^~\\&|LOAD|DEMO_HOSP|INTAKE|INTAKE|20261122083000||ADT^A01^ADT_A01|L{run}-{conn}-{i}|P|2.5.1\r\
                     EVN|A01|20261122083000\r\
                     PID|1||MRN{conn}{i}^^^DEMO_HOSP^MR||Doe^Alex||19800214|F\r\
                     PV1|1|I|WARD1^101^A||||D1234^House^Greg|||MED||||1|||D1234|IP|V{run}-{conn}-{i}\r"
                );
                let t = Instant::now();
                let ack = client.send(msg.as_bytes()).await.expect("ack");
                latencies.push(t.elapsed());
                if !ack.contains("MSA|AA|") {
                    rejected += 1;
                }
            }
            (latencies, rejected)
        }));
    }
    let mut all = Vec::new();
    let mut rejected = 0;
    for t in tasks {
        let (l, r) = t.await.expect("task");
        all.extend(l);
        rejected += r;
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{} messages over {connections} connections in {:.2}s: {:.0} msg/s; ACK latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; not AA: {rejected}",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}
