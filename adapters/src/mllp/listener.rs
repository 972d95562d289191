//! The MLLP listener: one task per connection, messages processed and acknowledged in
//! order, the ACK sent only after the message's batch has committed.

use super::ack::{build_ack, AckError, InboundHeader};
use super::config::MllpConfig;
use super::frame::{write_frame, Frame, FrameError, FrameReader};
use super::internal_events::{AcceptFailed, AckNotSent, ConnectionEnded, ConnectionOpened};
use crate::component::{Component, Shutdown};
use intake_pipeline::hl7::{sniff_header, Header};
use intake_pipeline::ingest::{Ingest, Ingested};
use intake_pipeline::{AckCode, RawMessage, Reason};
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
        loop {
            tokio::select! {
                _ = shutdown.requested() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        connections.spawn(connection(
                            stream, peer, ingest.clone(), self.config.clone(), channel.clone(), shutdown.clone(),
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
) {
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, config.frame_limits());
    ConnectionOpened { peer }.emit();
    loop {
        let frame = tokio::select! {
            _ = shutdown.requested() => break,
            f = reader.next_frame() => f,
        };
        let ack = match frame {
            Ok(None) => break,
            Ok(Some(Frame::Message(bytes))) => {
                let raw = RawMessage::new(config.tenant.clone(), channel.as_ref(), bytes);
                ack_for(&ingest.ingest(raw).await)
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
                    header.as_ref().map(inbound).as_ref(),
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

/// The ACK for a committed (or failed) message.
pub fn ack_for(r: &Ingested) -> String {
    let header = r.header.as_ref().map(inbound);
    let err = r
        .code
        .as_deref()
        .filter(|_| r.ack != AckCode::Accept)
        .map(|code| {
            let reason = reason_of(code);
            AckError {
                code,
                hl7_code: reason.map(Reason::hl7_error_code).unwrap_or("207"),
                text: reason
                    .map(Reason::text)
                    .unwrap_or("Application internal error"),
            }
        });
    build_ack(header.as_ref(), r.ack, err.as_ref(), &ack_id(), now())
}

fn reason_of(code: &str) -> Option<Reason> {
    Reason::ALL.into_iter().find(|r| r.code() == code)
}

fn inbound(h: &Header) -> InboundHeader {
    InboundHeader {
        field_sep: h.field_sep,
        encoding_chars: h.encoding_chars.clone(),
        sending_application: h.sending_application.clone(),
        sending_facility: h.sending_facility.clone(),
        receiving_application: h.receiving_application.clone(),
        receiving_facility: h.receiving_facility.clone(),
        message_type: h.message_type.clone(),
        trigger: h.trigger.clone(),
        control_id: h.control_id.clone(),
        processing_id: h.processing_id.clone(),
        version: h.version.clone(),
        accept_ack_type: h.accept_ack_type.clone(),
    }
}

/// A unique control id for an ACK (20 characters, time-ordered).
fn ack_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()[..20].to_string()
}

fn now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Local::now().fixed_offset()
}
