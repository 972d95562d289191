//! The MLLP listener: one task per connection, messages processed and acknowledged in
//! order, the ACK sent only after the message's batch has committed. A frame holding an
//! FHS/BHS batch is split by the pipeline and answered with one batch acknowledgement.

use super::config::MllpConfig;
use super::frame::{write_frame, Frame, FrameError, FrameReader};
use super::internal_events::{
    AcceptFailed, AckNotSent, ConnectionEnded, ConnectionOpened, ConnectionRefused,
};
use crate::component::{Component, Shutdown};
use intake_pipeline::hl7::ack::{build_ack, AckCode, AckError};
use intake_pipeline::hl7::sniff_header;
use intake_pipeline::ingest::Ingest;
use intake_pipeline::{Format, RawMessage};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A bound MLLP listener.
pub struct MllpListener {
    listener: TcpListener,
    config: MllpConfig,
}

impl MllpListener {
    /// Binds the address (port 0 picks a free port; see [`MllpListener::local_addr`]).
    pub async fn bind(config: MllpConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.addr).await?;
        Ok(MllpListener { listener, config })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

#[async_trait::async_trait]
impl Component for MllpListener {
    /// Accepts connections until shutdown is requested, then lets each connection finish
    /// the message it is on and returns.
    async fn run(self: Box<Self>, ingest: Ingest, mut shutdown: Shutdown) {
        let addr = self.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let channel: Arc<str> = Arc::from(format!("mllp:{addr}"));
        let mut connections = JoinSet::new();
        let budget = self.config.frame_budget();
        loop {
            tokio::select! {
                _ = shutdown.requested() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) if connections.len() >= self.config.max_connections => {
                        drop(stream);
                        ConnectionRefused { peer, limit: self.config.max_connections }.emit();
                    }
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        connections.spawn(connection(
                            stream, peer, ingest.clone(), self.config.clone(), channel.clone(), shutdown.clone(), budget.clone(),
                        ));
                    }
                    Err(error) => {
                        AcceptFailed { error: &error }.emit();
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        while connections.join_next().await.is_some() {}
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    ingest: Ingest,
    config: MllpConfig,
    channel: Arc<str>,
    mut shutdown: Shutdown,
    budget: Arc<tokio::sync::Semaphore>,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, config.frame_limits()).with_budget(budget);
    ConnectionOpened { peer }.emit();
    loop {
        let frame = tokio::select! {
            _ = shutdown.requested() => break,
            f = reader.next_frame() => f,
        };
        let ack = match frame {
            Ok(None) => break,
            Ok(Some(Frame::Message(bytes))) => {
                let raw = RawMessage::new(
                    config.tenant.clone(),
                    Format::Hl7v2,
                    channel.as_ref(),
                    bytes,
                );
                ingest.ingest_frame(raw).await.hl7_ack()
            }
            Ok(Some(Frame::Oversized {
                prefix,
                total_bytes,
            })) => {
                tracing::warn!(%peer, total_bytes, limit = config.max_frame_bytes, code = "FRAME_TOO_LARGE", "frame rejected");
                let header = sniff_header(&prefix);
                let err = AckError {
                    code: "FRAME_TOO_LARGE",
                    hl7_code: "100",
                    text: "Message exceeds the size limit",
                };
                build_ack(
                    header.as_ref(),
                    AckCode::Reject,
                    Some(&err),
                    &ack_id(),
                    now(),
                )
            }
            Err(e) => {
                let code = match e {
                    FrameError::IdleTimeout => "IDLE_TIMEOUT",
                    FrameError::FrameTimeout => "FRAME_TIMEOUT",
                    FrameError::ClosedMidFrame => "CLOSED_MID_FRAME",
                    FrameError::Io(_) => "IO_ERROR",
                };
                tracing::info!(%peer, code, "connection closed");
                return;
            }
        };
        if let Err(error) = write_frame(&mut write, ack.as_bytes()).await {
            AckNotSent {
                peer,
                error: &error,
            }
            .emit();
            return;
        }
    }
    ConnectionEnded { peer }.emit();
}

/// A unique control id for an ACK (20 characters, time-ordered).
fn ack_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()[..20].to_string()
}

fn now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Local::now().fixed_offset()
}
