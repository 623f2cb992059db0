//! The pool server (`ncpc pool serve`): the Neural Component Pool API over HTTP with axum,
//! state in SQLite or Postgres. It serves the AMM Python client unchanged and ncpc's own
//! [`PoolClient`](crate::pool::client::PoolClient).
//!
//! [`serve`] runs a server until Ctrl-C or SIGTERM; [`spawn_local`] runs one on a background
//! thread (its own tokio runtime) and returns its URL, for tests and for solo mining on an
//! in-process pool. The rules (tasks, leases, consensus, rewards, status codes) are in
//! docs/pool.md.

mod app;
pub mod component_genome;
mod config;
pub mod consensus;
mod error;
pub mod fingerprint;
pub mod genome;
mod handlers;
mod listener;
pub mod metrics;
mod pages;
mod ratelimit;
pub mod rewards;
mod state;
pub mod store;

pub use app::app;
pub use config::{ConsensusRule, LocalScorer, ServerConfig};
pub use error::ApiError;
pub use listener::Peer;
pub use state::AppState;
pub use store::DbLocation;

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A pool server running on a background thread; dropping it shuts the server down.
pub struct RunningPool {
    url: String,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningPool {
    /// The server's base URL, `http://127.0.0.1:PORT` (give it to
    /// [`PoolClient::new`](crate::pool::client::PoolClient::new)).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop the server and wait for its thread (what dropping it does).
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningPool {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Connections still open this long after a shutdown request are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serve the app on `listener` until `stop` completes, then let open requests finish for at
/// most [`SHUTDOWN_GRACE`].
async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = state.config.clone();
    let refused = state.metrics.connections_refused.clone();
    listener::serve(listener, app(state), &config, refused, stop, SHUTDOWN_GRACE)
        .await
        .context("the pool server failed")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Start a pool server on `config.listen` (use port 0 for a free port) on a background thread
/// with its own tokio runtime. The store is opened and the listener bound before this returns,
/// so the URL answers at once; errors (a bad database file, a port in use) are returned here.
pub fn spawn_local(config: ServerConfig) -> anyhow::Result<RunningPool> {
    let state = Arc::new(AppState::open(&config)?);
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("listening on {}", config.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let rt = runtime()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ncpc-pool".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("the pool server could not use its socket: {e}");
                        return;
                    }
                };
                let stop = async move {
                    let _ = stopped.await;
                };
                if let Err(e) = run(listener, state, stop).await {
                    tracing::error!("{e:#}");
                }
            });
        })
        .context("starting the pool server thread")?;
    Ok(RunningPool {
        url: format!("http://{addr}"),
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Run a pool server in the foreground until Ctrl-C or SIGTERM.
pub fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let state = Arc::new(AppState::open(&config)?);
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!("pool listening on http://{addr} (database: {})", config.db);
        run(listener, state, shutdown_signal()).await
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
