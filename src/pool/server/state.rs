//! What every handler shares: the store, the rate limiters, the leaderboard cache and the
//! configuration, with the authentication every signed call goes through.

use super::ServerConfig;
use super::error::ApiError;
use super::ratelimit::RateLimiter;
use super::store::{AuthToken, Rules, Store, outside_runtime};
use crate::component::ComponentKind;
use crate::pool::headers::SignedHeaders;
use crate::pool::protocol::Auth;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A signed call that verified: the miner (its canonical address) and the one-time tokens it
/// spends, which [`AppState::db_signed`] claims before running the call.
pub struct Signed {
    /// The miner's canonical SS58 address.
    pub miner: String,
    tokens: Vec<AuthToken>,
    expires_ms: i64,
}

/// Genome checks that may run at once; more wait (at most [`GENOME_WAIT`]) for a slot.
const GENOME_CHECKS_AT_ONCE: usize = 2;

/// How long a submission waits for a genome-check slot before 503.
pub const GENOME_WAIT: Duration = Duration::from_secs(5);

/// Transactions run again at most this often when the database aborts them as conflicting.
const RETRIES: u32 = 8;

/// The server's shared state.
pub struct AppState {
    store: Arc<Mutex<Store>>,
    limiter: Mutex<RateLimiter>,
    ip_limiter: Mutex<RateLimiter>,
    leaderboard: Mutex<Option<(Instant, Value)>>,
    /// Function pages' explanations (formula, IR, export) by function id: a function never
    /// changes, so each is compiled once (at most [`EXPLAINED_CAP`] kept).
    pub explained: Mutex<std::collections::HashMap<i64, Value>>,
    /// Genome checks running at once (each is CPU work off the async workers).
    pub genome_slots: tokio::sync::Semaphore,
    /// The Prometheus metrics (`GET /metrics`).
    pub metrics: super::metrics::Metrics,
    started: Instant,
    /// Where the next task's component type is taken from in `config.component_types`.
    pub next_component: std::sync::atomic::AtomicUsize,
    /// The configuration it was started with.
    pub config: ServerConfig,
}

/// Explanations kept by [`AppState::explained`]; past it the cache starts over.
pub const EXPLAINED_CAP: usize = 10_000;

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

/// The bucket an address counts against: an IPv4 address, or an IPv6 /64 (one host's usual
/// allocation, so a client cannot spread its requests over the addresses of its own subnet).
pub fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Run `f` on `store`, again (up to [`RETRIES`] times, with a short pause) when the database
/// aborted it as conflicting with a concurrent transaction.
fn retrying<T>(
    store: &mut Store,
    f: impl Fn(&mut Store) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut attempt = 0;
    loop {
        match f(store) {
            Err(ApiError::Retry(e)) if attempt < RETRIES => {
                attempt += 1;
                tracing::debug!("retrying a conflicting transaction: {e:#}");
                std::thread::sleep(Duration::from_millis(1 << attempt.min(6)));
            }
            other => return other,
        }
    }
}

/// The rules the store applies, from the configuration.
fn rules(config: &ServerConfig) -> Rules {
    Rules {
        min_evaluators: config.min_evaluators.max(1),
        consensus: config.consensus,
        rewards: config.rewards.clone(),
        audit_share: config.audit_share.clamp(0.0, 1.0),
        expired_lease_strikes: config.expired_lease_strikes,
    }
}

/// With a local scorer, score every function still without consensus (the seeds on a new
/// pool) and record the scores as their consensus.
fn confirm_pending(
    store: &mut Store,
    scorer: &super::LocalScorer,
    component_type: &str,
) -> anyhow::Result<()> {
    let pending = store
        .unconfirmed(component_type, 1000)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (id, program) in pending {
        let score = (scorer.0)(&program);
        store
            .confirm_locally(id, score, now_ms())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

impl AppState {
    /// Open the store named by `config` (creating the schema and seeding the population).
    pub fn open(config: &ServerConfig) -> anyhow::Result<AppState> {
        // The Postgres client may not be created inside an async context: opening and
        // seeding run outside any runtime.
        let store = outside_runtime(|| -> anyhow::Result<Store> {
            let mut store = Store::open(&config.db)?;
            store.set_rules(rules(config));
            for kind in &config.component_types {
                store.seed(*kind, now_ms())?;
            }
            // The local scorer scores losses; other types wait for evaluators.
            if let Some(scorer) = &config.local_scorer
                && config.component_types.contains(&ComponentKind::Loss)
            {
                confirm_pending(&mut store, scorer, ComponentKind::Loss.name())?;
            }
            Ok(store)
        })??;
        let state = AppState {
            store: Arc::new(Mutex::new(store)),
            limiter: Mutex::new(RateLimiter::new(config.rate_burst, config.rate_per_second)),
            ip_limiter: Mutex::new(RateLimiter::new(
                config.ip_rate_burst,
                config.ip_rate_per_second,
            )),
            leaderboard: Mutex::new(None),
            explained: Mutex::new(std::collections::HashMap::new()),
            genome_slots: tokio::sync::Semaphore::new(GENOME_CHECKS_AT_ONCE),
            metrics: super::metrics::Metrics::new(),
            started: Instant::now(),
            next_component: std::sync::atomic::AtomicUsize::new(0),
            config: config.clone(),
        };
        Ok(state)
    }

    /// Run `f` on the store on a blocking thread (commits wait for the disk, and the Postgres
    /// client blocks on its own runtime, which it may not do on an async worker). A
    /// transaction the database aborted as conflicting with another (a replica's) is run again.
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().map_err(|_| poisoned())?;
            retrying(&mut guard, f)
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("a database task failed: {e}")))?
    }

    /// [`db`](Self::db) for a signed call: its one-time tokens are claimed first (committed
    /// whatever `f` answers, so a refused request cannot be replayed later either), then `f`
    /// runs, both on one blocking thread under one lock.
    pub async fn db_signed<T: Send + 'static>(
        &self,
        signed: &Signed,
        f: impl Fn(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (miner, tokens, expires) = (
            signed.miner.clone(),
            signed.tokens.clone(),
            signed.expires_ms,
        );
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().map_err(|_| poisoned())?;
            // Not run again on a conflict: a token it spent before failing stays spent, and a
            // second try would answer 409 to the request that spent it.
            guard.claim_auth(&miner, &tokens, expires, now_ms())?;
            retrying(&mut guard, f)
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("a database task failed: {e}")))?
    }

    /// Claim a signed call's tokens now, before checks that could refuse the request after
    /// its signature verified (a score out of range, metadata too large): whatever is
    /// answered, its auth cannot be used again.
    pub async fn claim(&self, signed: &Signed) -> Result<(), ApiError> {
        self.db_signed(signed, |_| Ok(())).await
    }

    /// The canonical form of a miner's SS58 address: it must be an SS58 address of this pool's
    /// network prefix (400 otherwise, naming the prefix), so one key is one miner.
    pub fn miner_key(&self, address: &str) -> Result<String, ApiError> {
        let Some((key, prefix)) = crate::identity::decode_ss58(address) else {
            return Err(ApiError::BadRequest(format!(
                "{address:?} is not an SS58 address of an sr25519 key"
            )));
        };
        let want = self.config.ss58_prefix;
        if prefix != want {
            return Err(ApiError::BadRequest(format!(
                "{address} is an address of SS58 network prefix {prefix}; this pool takes \
                 prefix {want} (the same key is {})",
                crate::identity::encode_ss58(&key, want)
            )));
        }
        Ok(crate::identity::encode_ss58(&key, want))
    }

    /// Check a signed call to `endpoint` on behalf of the miner `path_address`: the address
    /// must be of the pool's SS58 prefix (400), the signer must be that miner (403), the
    /// signature must verify inside the clock-skew window (401), and the key must be within
    /// its rate limit (429). The one-time tokens it spends (the AMM message, or the header
    /// nonce and the AMM message beside it) are returned for [`db_signed`](Self::db_signed) to
    /// claim (409 when spent before), so nothing is stored for a request the rate limit
    /// refuses.
    pub fn authenticate(
        &self,
        path_address: &str,
        auth: &Auth,
        endpoint: &str,
        raw: &RawRequest<'_>,
    ) -> Result<Signed, ApiError> {
        let miner = self.miner_key(path_address)?;
        let signer = self.miner_key(&auth.public_address)?;
        if signer != miner {
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
            && self.miner_key(&h.address)? != miner
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
        let skew = self.config.max_skew_seconds;
        let (tokens, timestamp) = match &headers {
            Some(h) => {
                h.verify(raw.method, raw.path, raw.body, now, skew)
                    .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
                let mut tokens = vec![AuthToken::Nonce(h.nonce.clone())];
                if auth.timestamp().is_ok() {
                    tokens.push(AuthToken::AmmBeside {
                        message: auth.message.clone(),
                    });
                }
                (tokens, h.timestamp)
            }
            None => {
                auth.verify(now, skew)
                    .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
                let t = auth
                    .timestamp()
                    .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
                let token = AuthToken::Amm {
                    message: auth.message.clone(),
                    endpoint: endpoint.to_string(),
                };
                (vec![token], t)
            }
        };
        let t = self.started.elapsed().as_secs_f64();
        if !self
            .limiter
            .lock()
            .map_err(|_| poisoned())?
            .allow(&miner, t)
        {
            return Err(ApiError::TooManyRequests(
                "too many requests from this key; slow down".into(),
            ));
        }
        // Remembered while the timestamp could still pass the skew check (the AMM message
        // beside headers may be older than the headers' timestamp: keep the later end).
        let latest = tokens
            .iter()
            .filter_map(|tk| match tk {
                AuthToken::AmmBeside { message } | AuthToken::Amm { message, .. } => {
                    message.strip_prefix("auth:")?.parse::<i64>().ok()
                }
                AuthToken::Nonce(_) => None,
            })
            .fold(timestamp, i64::max)
            .clamp(now - skew, now + skew);
        Ok(Signed {
            miner,
            tokens,
            expires_ms: (latest + skew + 1) * 1000,
        })
    }

    /// Take one token from `ip`'s bucket (unsigned requests, failed authentications,
    /// registrations); `false` when it is empty.
    pub fn ip_allow(&self, ip: IpAddr) -> bool {
        let t = self.started.elapsed().as_secs_f64();
        self.ip_limiter
            .lock()
            .map(|mut l| l.allow(&ip_bucket(ip), t))
            .unwrap_or(false)
    }

    /// Whether `ip`'s bucket has a token left, without taking it.
    pub fn ip_has_room(&self, ip: IpAddr) -> bool {
        let t = self.started.elapsed().as_secs_f64();
        self.ip_limiter
            .lock()
            .map(|mut l| l.has_room(&ip_bucket(ip), t))
            .unwrap_or(false)
    }

    /// The cached leaderboard answer, if it is younger than the configured cache time.
    pub fn cached_leaderboard(&self) -> Option<Value> {
        let cache = self.leaderboard.lock().ok()?;
        let (at, v) = cache.as_ref()?;
        (at.elapsed() < self.config.leaderboard_cache).then(|| v.clone())
    }

    /// Remember a fresh leaderboard answer.
    pub fn cache_leaderboard(&self, v: &Value) {
        if let Ok(mut cache) = self.leaderboard.lock() {
            *cache = Some((Instant::now(), v.clone()));
        }
    }
}
