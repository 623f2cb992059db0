//! What every handler shares: the store, the replay guard, the rate limiter and the
//! configuration, with the authentication every signed call goes through.

use super::ServerConfig;
use super::error::ApiError;
use super::ratelimit::RateLimiter;
use super::store::{Store, outside_runtime};
use crate::pool::headers::SignedHeaders;
use crate::pool::protocol::Auth;
use crate::pool::replay::{ReplayError, ReplayGuard};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Triples the replay guard remembers at most (about 200 bytes each).
const REPLAY_CAPACITY: usize = 1_000_000;

/// What authentication reads from a request besides its parsed body.
pub struct RawRequest<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The full path, API prefix included, without the query.
    pub path: &'a str,
    /// The headers.
    pub headers: &'a axum::http::HeaderMap,
    /// The body bytes.
    pub body: &'a [u8],
}

/// The server's shared state.
pub struct AppState {
    store: Arc<Mutex<Store>>,
    guard: Mutex<ReplayGuard>,
    limiter: Mutex<RateLimiter>,
    started: Instant,
    /// The configuration it was started with.
    pub config: ServerConfig,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn poisoned() -> ApiError {
    ApiError::Internal(anyhow::anyhow!("a lock was poisoned by a panic"))
}

impl AppState {
    /// Open the store named by `config` (creating the schema and seeding the population).
    pub fn open(config: &ServerConfig) -> anyhow::Result<AppState> {
        // The Postgres client may not be created inside an async context: opening and
        // seeding run outside any runtime.
        let store = outside_runtime(|| -> anyhow::Result<Store> {
            let mut store = Store::open(&config.db)?;
            store.seed(&config.component_type, now_ms())?;
            Ok(store)
        })??;
        Ok(AppState {
            store: Arc::new(Mutex::new(store)),
            guard: Mutex::new(ReplayGuard::new(config.max_skew_seconds, REPLAY_CAPACITY)),
            limiter: Mutex::new(RateLimiter::new(config.rate_burst, config.rate_per_second)),
            started: Instant::now(),
            config: config.clone(),
        })
    }

    /// Run `f` on the store on a blocking thread (commits wait for the disk, and the Postgres
    /// client blocks on its own runtime, which it may not do on an async worker).
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().map_err(|_| poisoned())?;
            f(&mut guard)
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("a database task failed: {e}")))?
    }

    /// Check a signed call to `endpoint` on behalf of the miner `path_address`: the signer must
    /// be that miner (403), the signature must verify inside the clock-skew window (401), the
    /// auth fields (or the header nonce) must not have been used before (409), and the key must
    /// be within its rate limit (429). When the request carries signed headers
    /// ([`crate::pool::headers`]) they are checked instead of the body's AMM fields, which are
    /// then spent so they cannot be replayed alone.
    pub fn authenticate(
        &self,
        path_address: &str,
        auth: &Auth,
        endpoint: &str,
        raw: &RawRequest<'_>,
    ) -> Result<(), ApiError> {
        if auth.public_address != path_address {
            return Err(ApiError::Forbidden(format!(
                "the request is signed for {}, not for the miner {path_address} in the path",
                auth.public_address
            )));
        }
        let headers = SignedHeaders::read(|name| {
            raw.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        if let Some(h) = &headers
            && h.address != path_address
        {
            return Err(ApiError::Forbidden(format!(
                "the headers are signed by {}, not by the miner {path_address}",
                h.address
            )));
        }
        if headers.is_none() && self.config.require_signed_headers {
            return Err(ApiError::Unauthorized(
                "this pool requires the signed headers (x-ncp-signature ...); see docs/pool.md"
                    .into(),
            ));
        }
        let now = now_ms() / 1000;
        let refusal = |e: ReplayError| match e {
            ReplayError::Auth(a) => ApiError::Unauthorized(a.to_string()),
            ReplayError::Replayed => ApiError::Conflict(e.to_string()),
            ReplayError::Busy => ApiError::TooManyRequests(e.to_string()),
        };
        {
            let mut guard = self.guard.lock().map_err(|_| poisoned())?;
            match &headers {
                Some(h) => {
                    guard
                        .check_headers(h, raw.method, raw.path, raw.body, now)
                        .map_err(refusal)?;
                    guard.spend(auth, endpoint);
                }
                None => guard.check(auth, endpoint, now).map_err(refusal)?,
            }
        }
        let t = self.started.elapsed().as_secs_f64();
        if !self
            .limiter
            .lock()
            .map_err(|_| poisoned())?
            .allow(&auth.public_address, t)
        {
            return Err(ApiError::TooManyRequests(
                "too many requests from this key; slow down".into(),
            ));
        }
        Ok(())
    }
}
