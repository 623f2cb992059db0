//! Accepting connections with limits: at most [`ServerConfig::max_connections`] open at
//! once and [`ServerConfig::max_connections_per_ip`] from one address (a connection over
//! either limit is answered `503` and closed at once, so it holds no file descriptor), and
//! hyper's header-read timeout, which hyper (1.12) also starts while a kept-alive connection
//! waits for its next request, so it is the idle timeout too: a client that connects and
//! sends nothing, sends headers a byte at a time, or leaves a connection open between
//! requests is dropped after [`ServerConfig::header_read_timeout`]. The peer address rides in
//! each request's extensions ([`Peer`]) for the per-IP limits.

use super::ServerConfig;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The address a request came from.
#[derive(Copy, Clone, Debug)]
pub struct Peer(pub SocketAddr);

/// The router with the peer's address put into every request.
#[derive(Clone)]
struct WithPeer {
    router: Router,
    peer: SocketAddr,
}

impl tower_service::Service<axum::http::Request<Incoming>> for WithPeer {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: axum::http::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(Peer(self.peer));
        let mut router = self.router.clone();
        Box::pin(async move {
            let req = req.map(axum::body::Body::new);
            tower_service::Service::call(&mut router, req).await
        })
    }
}

/// Open connections, in all and per IP address.
#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<String, usize>,
}

/// A connection's place in [`Counts`], given back when it closes.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: String,
}

impl Slot {
    /// A place for a connection from `ip` (an address's bucket: IPv6 by /64).
    fn take(counts: &Arc<Mutex<Counts>>, ip: &str, total: usize, per_ip: usize) -> Option<Slot> {
        let mut c = counts.lock().ok()?;
        let here = c.per_ip.get(ip).copied().unwrap_or(0);
        if c.total >= total || here >= per_ip {
            return None;
        }
        c.total += 1;
        c.per_ip.insert(ip.to_string(), here + 1);
        Some(Slot {
            counts: counts.clone(),
            ip: ip.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_ip.remove(&self.ip);
                }
            }
        }
    }
}

/// Answer a connection over the limits with 503 and close it, without waiting on the client.
fn refuse(stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 57\r\nconnection: close\r\n\r\n{\"detail\":\"too many connections; try again in a moment\"}\n";
    // Written on the socket itself: tokio's `try_write` refuses while it has not yet seen
    // the new socket become writable, and the kernel's empty send buffer takes these bytes.
    if let Ok(mut std) = stream.into_std() {
        use std::io::Write;
        let _ = std.write(BUSY);
    }
}

/// Serve `router` on `listener` under `config`'s connection limits until `stop` completes,
/// then let open requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    refused: prometheus::IntCounter,
    stop: impl Future<Output = ()> + Send,
    grace: Duration,
) -> anyhow::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let counts = Arc::new(Mutex::new(Counts::default()));
    let (total, per_ip) = (
        config.max_connections.max(1),
        config.max_connections_per_ip.max(1),
    );
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: wait for connections to close.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(slot) = Slot::take(&counts, &super::state::ip_bucket(peer.ip()), total, per_ip) else {
                    refused.inc();
                    refuse(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let service = hyper_util::service::TowerToHyperService::new(WithPeer {
                    router: router.clone(),
                    peer,
                });
                let conn = http.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(slot);
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {}
    }
    Ok(())
}
