//! One publishing round: send claimed events persistent, wait for their confirms, and
//! say which prefix the broker confirmed.

use intake_pipeline::event::EventEnvelope;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel};
use std::time::Duration;
use tokio::time::Instant;

/// Why a connection is given up (the publisher reconnects and starts again from the first
/// unconfirmed event).
#[derive(Debug, thiserror::Error)]
pub enum Broken {
    /// The connection or channel is closed.
    #[error("connection closed")]
    Closed,
    /// An event could not be serialised.
    #[error("event at position {0} did not serialise")]
    Serialise(i64),
    /// Publishing or confirming failed on the connection.
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    /// The broker nacked an event.
    #[error("broker nacked the event at position {0}")]
    Nacked(i64),
    /// The confirms did not come in time.
    #[error("publisher confirms timed out")]
    ConfirmTimeout,
}

/// Publishes `events` to `exchange` and waits up to `confirm_timeout` for their confirms;
/// returns the positions of the confirmed prefix and why the round stopped short, if it
/// did.
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    confirm_timeout: Duration,
    events: &[EventEnvelope],
) -> (Vec<i64>, Option<Broken>) {
    let exchange: ShortString = exchange.into();
    let mut pending = Vec::with_capacity(events.len());
    let mut failure = None;
    for e in events {
        let Ok(body) = serde_json::to_vec(e) else {
            failure = Some(Broken::Serialise(e.global_position));
            break;
        };
        let key: ShortString = format!("{}.{}", e.tenant_id, e.event_type).into();
        let published = channel
            .basic_publish(
                exchange.clone(),
                key,
                BasicPublishOptions::default(),
                &body,
                properties(e),
            )
            .await;
        match published {
            Ok(confirm) => pending.push((e.global_position, confirm)),
            Err(err) => {
                failure = Some(err.into());
                break;
            }
        }
    }
    let deadline = Instant::now() + confirm_timeout;
    let mut confirmed = Vec::with_capacity(pending.len());
    for (position, confirm) in pending {
        match tokio::time::timeout_at(deadline, confirm).await {
            Ok(Ok(c)) if c.is_ack() => confirmed.push(position),
            Ok(Ok(_)) => {
                failure = Some(Broken::Nacked(position));
                break;
            }
            Ok(Err(err)) => {
                failure = Some(err.into());
                break;
            }
            Err(_) => {
                failure = Some(Broken::ConfirmTimeout);
                break;
            }
        }
    }
    (confirmed, failure)
}

/// AMQP properties of one event: persistent, `message_id` = event id, ids in headers.
fn properties(e: &EventEnvelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert("tenant_id".into(), text(&e.tenant_id));
    headers.insert("stream_id".into(), text(&e.stream_id.to_string()));
    headers.insert("stream_type".into(), text(&e.stream_type));
    headers.insert(
        "event_version".into(),
        AMQPValue::LongLongInt(e.event_version),
    );
    headers.insert(
        "global_position".into(),
        AMQPValue::LongLongInt(e.global_position),
    );
    let mut props = BasicProperties::default()
        .with_message_id(e.event_id.to_string().into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_type(e.event_type.as_str().into())
        .with_app_id("intake".into())
        .with_headers(headers);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&e.created_at) {
        props = props.with_timestamp(t.timestamp().max(0) as u64);
    }
    props
}
