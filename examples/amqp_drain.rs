//! Publish-rate probe: binds a durable queue `<exchange>.drain` to the topic exchange
//! with `#`, empties it, then waits until N messages have arrived and prints the rate
//! from the first to the Nth (the broker's own queue depth, so nothing is consumed).
//!
//! ```text
//! cargo run --release --example amqp_drain -- amqp://guest:guest@127.0.0.1:5672/%2f intake.events 20000
//! ```
//! Start it before the intake instance whose outbox should drain; it prints `ready`.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::options::{QueueDeleteOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::{Duration, Instant};

async fn depth(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue")
        .message_count()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let exchange = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "intake.events".into());
    let want: u32 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
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
        .expect("exchange");
    let queue = format!("{exchange}.drain");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    channel
        .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    println!("ready");
    let mut first = None;
    let mut n = 0;
    while n < want {
        n = depth(&channel, &queue).await;
        if n > 0 && first.is_none() {
            first = Some((Instant::now(), n));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (t0, n0) = first.expect("messages arrived");
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{n} messages in the queue; {} arrived in {secs:.2}s after the first {n0}: {:.0} msg/s",
        n - n0,
        (n - n0) as f64 / secs
    );
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    let _ = conn.close(200, "done".into()).await;
}
