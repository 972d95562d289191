//! Crash safety: `kill -9` during a stream of messages, restart, resend what was not
//! acknowledged (and, for good measure, everything): every acknowledged message is
//! stored, none twice.

mod common;

use common::{msa, Adt, Server};
use intake_adapters::mllp::client::MllpClient;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CONNECTIONS: usize = 4;
const PER_CONNECTION: usize = 400;

fn message(conn: usize, i: usize) -> (String, Vec<u8>) {
    let ctrl = format!("K{conn}-{i}");
    let visit = format!("V{conn}-{i}");
    let bytes = Adt {
        control_id: &ctrl,
        visit: &visit,
        ..Default::default()
    }
    .build();
    (ctrl, bytes)
}

on_each_backend! {
    async fn kill_9_loses_nothing_acknowledged_and_stores_nothing_twice() {
        let mut server = Server::start();
        let dir = server.dir.clone();
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let mut tasks = Vec::new();
        for conn in 0..CONNECTIONS {
            let addr = server.mllp[0];
            let acked = acked.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(mut c) = MllpClient::connect(addr, Duration::from_secs(10)).await else {
                    return;
                };
                for i in 0..PER_CONNECTION {
                    let (ctrl, bytes) = message(conn, i);
                    match c.send(&bytes).await {
                        Ok(ack) if msa(&ack).0 == "AA" => {
                            acked.lock().unwrap().insert(ctrl);
                        }
                        _ => return,
                    }
                }
            }));
        }
        // Let the stream get going, then kill -9 in the middle of it.
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if acked.lock().unwrap().len() >= 150 {
                break;
            }
        }
        server.kill();
        for t in tasks {
            t.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() < CONNECTIONS * PER_CONNECTION,
            "the kill happened mid-stream"
        );

        // Restart on the same database; every acknowledged message must be there.
        let server = Server::start_in(&dir);
        let stored: BTreeSet<String> = server
            .events("demo")
            .await
            .iter()
            .map(|e| e.metadata["control_id"].as_str().unwrap().to_string())
            .collect();
        let lost: Vec<_> = acked.difference(&stored).collect();
        assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");

        // Resend everything (a sender replays its whole queue after a crash).
        let mut c = server.client().await;
        for conn in 0..CONNECTIONS {
            for i in 0..PER_CONNECTION {
                let (ctrl, bytes) = message(conn, i);
                assert_eq!(msa(&c.send(&bytes).await.unwrap()), ("AA".into(), ctrl));
            }
        }
        let events = server.events("demo").await;
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for e in &events {
            *count
                .entry(e.metadata["control_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        assert_eq!(
            count.len(),
            CONNECTIONS * PER_CONNECTION,
            "every message stored"
        );
        assert!(count.values().all(|&n| n == 1), "none stored twice");
        eprintln!(
            "kill -9 after {} acknowledged messages; {} stored before restart",
            acked.len(),
            stored.len()
        );
    }
}
