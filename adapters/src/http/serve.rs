//! The accept loop: every connection is served by hyper with a header-read timeout, so a
//! client that trickles its request headers (slow loris) is closed instead of holding a
//! socket for ever; every request gets an overall time limit ([`time_limit`]). With TLS,
//! the handshake runs in the connection's own task, within its own time limit. On
//! shutdown the listener stops accepting and the requests in flight finish.

use super::error::ApiError;
use super::internal_events::{ConnectionRefused, ServeFailed};
use crate::component::ConnectionBudget;
use crate::tls::server::TlsServer;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long requests in flight may run on after shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// How a listener bounds its clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a client may take to send a request's headers.
    pub header_read: Duration,
    /// Connections served at once; one more is closed at once.
    pub max_connections: usize,
    /// The connections all listeners of the process may hold together.
    pub total: ConnectionBudget,
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `shutdown` completes,
/// within `limits`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<TlsServer>>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let header_read = limits.header_read;
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let service = app;
    tokio::pin!(shutdown);
    loop {
        let (socket, peer, permit) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => match (open.clone().try_acquire_owned(), limits.total.try_take()) {
                    (Ok(permit), Some(total)) => (socket, peer, (permit, total)),
                    (listener_permit, _) => {
                        drop(socket);
                        let limit = match listener_permit {
                            Ok(_) => limits.total.limit(),
                            Err(_) => limits.max_connections,
                        };
                        ConnectionRefused { peer, limit }.emit();
                        continue;
                    }
                },
                Err(error) => {
                    // Out of file descriptors, say: back off a little, keep serving.
                    ServeFailed { error: &error }.emit();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (builder, service, watcher, tls) = (
            builder.clone(),
            service.clone(),
            graceful.watcher(),
            tls.clone(),
        );
        tokio::spawn(async move {
            match tls {
                None => serve_connection(&builder, socket, peer, service, watcher).await,
                Some(tls) => match tls.accept(socket).await {
                    Ok((socket, _client)) => {
                        serve_connection(&builder, socket, peer, service, watcher).await
                    }
                    Err(refusal) => refusal.emit(peer),
                },
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
}

/// Serves one connection's requests until it closes or shutdown drains it. Each request
/// carries the client's address (`ConnectInfo`), for the rate limit per address.
async fn serve_connection<I>(
    builder: &Builder<TokioExecutor>,
    io: I,
    peer: SocketAddr,
    app: Router,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = tower::util::MapRequest::new(app, move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let service = TowerToHyperService::new(app);
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    // A client that goes away or times out ends its connection; nothing to report.
    let _ = watcher.watch(connection).await;
}

/// Answers 408 `REQUEST_TIMEOUT` when a request takes longer than `limit`.
pub async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}
