//! The MLLP listener: one task per connection, messages processed and acknowledged in
//! order, the ACK sent only after the message's batch has committed. A frame holding an
//! FHS/BHS batch is split by the pipeline and answered with one batch acknowledgement.

use super::config::MllpConfig;
use super::frame::{write_frame, Frame, FrameError, FrameReader};
use super::internal_events::{
    AcceptFailed, AckNotSent, ConnectionEnded, ConnectionOpened, ConnectionRefused, MessagesPaced,
};
use crate::component::{Component, ConnectionBudget, Shutdown};
use crate::rate::RateLimiter;
use crate::tls::server::TlsServer;
use intake_pipeline::hl7::ack::{build_ack, AckCode, AckError};
use intake_pipeline::hl7::sniff_header;
use intake_pipeline::ingest::Ingest;
use intake_pipeline::outcome::ack_control_id;
use intake_pipeline::{Format, RawMessage};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A bound MLLP listener.
pub struct MllpListener {
    listener: TcpListener,
    config: MllpConfig,
    tls: Option<Arc<TlsServer>>,
    total: ConnectionBudget,
}

impl MllpListener {
    /// Binds the address (port 0 picks a free port; see [`MllpListener::local_addr`]);
    /// with `tls`, every connection starts with a TLS handshake. Each connection also
    /// takes a permit of the process-wide `total`.
    pub async fn bind(
        config: MllpConfig,
        tls: Option<Arc<TlsServer>>,
        total: ConnectionBudget,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.addr).await?;
        Ok(MllpListener {
            listener,
            config,
            tls,
            total,
        })
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
        let rate = self.config.max_messages_per_second_per_address;
        let pace = RateLimiter::new(rate, rate.saturating_mul(2)).map(Arc::new);
        loop {
            tokio::select! {
                _ = shutdown.requested() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) if connections.len() >= self.config.max_connections => {
                        drop(stream);
                        ConnectionRefused { peer, limit: self.config.max_connections }.emit();
                    }
                    Ok((stream, peer)) => {
                        let Some(permit) = self.total.try_take() else {
                            drop(stream);
                            ConnectionRefused { peer, limit: self.total.limit() }.emit();
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let served = Served {
                            peer, ingest: ingest.clone(), config: self.config.clone(), channel: channel.clone(), shutdown: shutdown.clone(), budget: budget.clone(), pace: pace.clone(), _permit: permit,
                        };
                        connections.spawn(serve_socket(stream, self.tls.clone(), served));
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

/// What a connection's task needs besides its socket.
struct Served {
    peer: SocketAddr,
    ingest: Ingest,
    config: MllpConfig,
    channel: Arc<str>,
    shutdown: Shutdown,
    budget: Arc<tokio::sync::Semaphore>,
    /// The listener's messages-per-second limit per source address.
    pace: Option<Arc<RateLimiter<IpAddr>>>,
    /// This connection's share of `max_connections_total`, given back when it ends.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Serves an accepted socket: plain, or after a TLS handshake (a refused handshake is
/// logged with its code and the socket closed).
async fn serve_socket(stream: TcpStream, tls: Option<Arc<TlsServer>>, served: Served) {
    match tls {
        None => {
            let (read, write) = stream.into_split();
            connection(read, write, None, served).await
        }
        Some(tls) => match tls.accept(stream).await {
            Ok((stream, client)) => {
                let (read, write) = tokio::io::split(stream);
                connection(read, write, client, served).await
            }
            Err(refusal) => refusal.emit(served.peer),
        },
    }
}

/// Reads frames and answers each one, in order, until the sender closes, a limit ends
/// the connection, or shutdown is asked for. `client` is the mutual-TLS client's name.
async fn connection<R, W>(read: R, mut write: W, client: Option<String>, served: Served)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Served {
        peer,
        ingest,
        config,
        channel,
        mut shutdown,
        budget,
        pace,
        _permit,
    } = served;
    let mut paced = false;
    let mut reader = FrameReader::new(read, config.frame_limits()).with_budget(budget);
    ConnectionOpened {
        peer,
        client: client.as_deref(),
    }
    .emit();
    loop {
        let frame = tokio::select! {
            _ = shutdown.requested() => break,
            f = reader.next_frame() => f,
        };
        let ack = match frame {
            Ok(None) => break,
            Ok(Some(Frame::Message(bytes))) => {
                if let Some(limiter) = &pace {
                    while let Err(wait) = limiter.take(&peer.ip()) {
                        if !paced {
                            paced = true;
                            MessagesPaced { peer }.emit();
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
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
                    &ack_control_id(),
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

fn now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Local::now().fixed_offset()
}
