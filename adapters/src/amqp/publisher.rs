//! The publisher's loop: connect (backing off while the broker is away), then claim and
//! publish rounds under the store's publisher lease until the connection breaks.

use super::config::AmqpConfig;
use super::internal_events::{
    BrokerConnected, BrokerDisconnected, BrokerUnreachable, ClaimFailed, LeaseHeldElsewhere,
    MarkFailed, Published, PublisherStarted, PublisherStatus, PublisherStopped, RoundFailed,
};
use super::round::{self, Broken};
use crate::backoff::Backoff;
use crate::component::Shutdown;
use intake_pipeline::store::Store;
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The outbox publisher (one per process; the store's lease makes it one per database).
pub struct Publisher {
    /// The settings.
    pub config: AmqpConfig,
    /// The checked broker URL.
    pub uri: AMQPUri,
    /// The `ca_file` an `amqps://` broker is checked against (PEM text).
    pub ca_pem: Option<String>,
    /// The store holding the outbox.
    pub store: Arc<dyn Store>,
    /// The lease holder's name (process id and a unique suffix).
    pub holder: String,
    /// Its counters.
    pub status: Arc<PublisherStatus>,
}

/// Why a connection ended.
enum End {
    /// Shutdown was requested.
    Stop,
    /// The connection or channel failed (or the broker nacked): reconnect.
    Broken(Broken),
}

impl Publisher {
    /// Publishes until shutdown; `wake` is notified after commits.
    pub async fn run_until_shutdown(self, wake: Arc<Notify>, mut shutdown: Shutdown) {
        let mut backoff = Backoff::new(FIRST_RETRY, self.config.retry_max());
        PublisherStarted {
            exchange: &self.config.exchange,
        }
        .emit();
        while !shutdown.is_requested() {
            let attempt = tokio::select! {
                a = tokio::time::timeout(CONNECT_TIMEOUT, self.connect()) => a,
                _ = shutdown.requested() => break,
            };
            let wait = match attempt {
                Ok(Ok((conn, channel))) => {
                    BrokerConnected {
                        exchange: &self.config.exchange,
                    }
                    .emit(&self.status);
                    backoff.reset();
                    let end = self.publish(&conn, &channel, &wake, &mut shutdown).await;
                    let why = match &end {
                        End::Stop => None,
                        End::Broken(why) => Some(why),
                    };
                    BrokerDisconnected { why }.emit(&self.status);
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        conn.close(200, "intake publisher stopping".into()),
                    )
                    .await;
                    if let End::Stop = end {
                        break;
                    }
                    backoff.next_delay(None)
                }
                Ok(Err(e)) => {
                    let retry = backoff.next_delay(None);
                    BrokerUnreachable {
                        error: Some(&e),
                        retry,
                    }
                    .emit(&self.status);
                    retry
                }
                Err(_) => {
                    let retry = backoff.next_delay(None);
                    BrokerUnreachable { error: None, retry }.emit(&self.status);
                    retry
                }
            };
            if shutdown.sleep(wait).await {
                break;
            }
        }
        PublisherStopped.emit();
    }

    async fn connect(&self) -> Result<(Connection, Channel), lapin::Error> {
        let props = ConnectionProperties::default().with_connection_name("intake".into());
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca_pem.clone(),
        };
        let runtime = lapin::runtime::default_runtime()?;
        let conn =
            Connection::connect_uri_with_config(self.uri.clone(), props, tls, runtime).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok((conn, channel))
    }

    /// Publishes rounds until the connection breaks or shutdown is requested.
    async fn publish(
        &self,
        conn: &Connection,
        channel: &Channel,
        wake: &Notify,
        shutdown: &mut Shutdown,
    ) -> End {
        let limit = self.config.batch() as i64;
        let poll = self.config.poll_interval();
        loop {
            if shutdown.is_requested() {
                return End::Stop;
            }
            if !conn.status().connected() || !channel.status().connected() {
                return End::Broken(Broken::Closed);
            }
            let claimed = self
                .store
                .outbox_claim(&self.holder, self.config.lease(), limit)
                .await;
            let events = match claimed {
                Ok(Some(events)) => events,
                Ok(None) => {
                    // Another instance holds the lease: it publishes; we stand by.
                    LeaseHeldElsewhere.emit();
                    if shutdown.sleep((self.config.lease() / 3).max(poll)).await {
                        return End::Stop;
                    }
                    continue;
                }
                Err(error) => {
                    ClaimFailed { error: &error }.emit();
                    if shutdown.sleep(poll.max(FIRST_RETRY * 10)).await {
                        return End::Stop;
                    }
                    continue;
                }
            };
            if events.is_empty() {
                // Wait for a commit, the poll interval or shutdown.
                let stop = tokio::select! {
                    _ = wake.notified() => false,
                    stop = shutdown.sleep(poll) => stop,
                };
                if stop {
                    return End::Stop;
                }
                continue;
            }
            let timeout = self.config.confirm_timeout();
            let (confirmed, failure) =
                round::publish(channel, &self.config.exchange, timeout, &events).await;
            if let Some(&last_position) = confirmed.last() {
                match self.store.outbox_mark_published(&confirmed).await {
                    Ok(()) => Published {
                        events: confirmed.len(),
                        last_position,
                    }
                    .emit(&self.status),
                    // They stay in the outbox and go out again: at-least-once.
                    Err(error) => MarkFailed { error: &error }.emit(),
                }
            }
            if let Some(why) = failure {
                RoundFailed {
                    unconfirmed: events.len() - confirmed.len(),
                    from_position: events.get(confirmed.len()).map_or(0, |e| e.global_position),
                }
                .emit(&self.status);
                return End::Broken(why);
            }
        }
    }
}
