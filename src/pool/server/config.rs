//! How a pool server runs: [`ServerConfig`], every limit and rule an operator can set (each
//! a flag of `ncpc pool serve`), with defaults a public pool can start from.

use super::DbLocation;
pub use super::consensus::ConsensusRule;
use super::rewards::RewardSchedule;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A scorer the pool itself runs to confirm functions (solo pools): the AMM program's text in,
/// its score out (AMM's encoding: accuracy in [0, 1], -99999 for a failed function).
#[derive(Clone)]
pub struct LocalScorer(pub Arc<dyn Fn(&str) -> f64 + Send + Sync>);

impl fmt::Debug for LocalScorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalScorer")
    }
}

/// How a pool server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The database: in memory (lost on exit), a SQLite file, or a Postgres URL.
    pub db: DbLocation,
    /// The SS58 network prefix of miners' addresses (42, substrate's generic prefix, by
    /// default); an address with another prefix is refused with 400, so one key is one miner.
    pub ss58_prefix: u16,
    /// How long a miner holds an evolve task before it ends.
    pub lease: Duration,
    /// How long a miner holds an evaluate task: shorter, since it reserves evaluator slots.
    pub evaluate_lease: Duration,
    /// Leases a key may let expire within an hour before its requests are slowed down.
    pub expired_lease_strikes: u32,
    /// The most seconds an auth timestamp may differ from the server's clock.
    pub max_skew_seconds: i64,
    /// The longest a request may take, body upload included (longer ones answer 408).
    pub request_timeout: Duration,
    /// The longest the server waits for a request's headers, on a new connection or an idle
    /// kept-alive one (then it closes the connection): the header-read and idle timeout.
    pub header_read_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// The largest request body accepted, in bytes (larger ones answer 413).
    pub body_limit: usize,
    /// The largest evolution `metadata` stored, in bytes of JSON (larger ones answer 413).
    pub max_metadata_bytes: usize,
    /// Signed requests a key may make at once before the rate limit answers 429.
    pub rate_burst: u32,
    /// Signed requests per second a key may make on average.
    pub rate_per_second: f64,
    /// Unsigned requests (GETs) and requests that fail authentication one IP address may make
    /// at once before 429.
    pub ip_rate_burst: u32,
    /// ... and per second on average.
    pub ip_rate_per_second: f64,
    /// How long the leaderboard answer is cached.
    pub leaderboard_cache: Duration,
    /// The most functions in one evaluate task.
    pub evaluate_batch_size: usize,
    /// Distinct evaluators whose median forms a function's consensus (at least 3 on a pool
    /// open to others, so that one key cannot set a score).
    pub min_evaluators: usize,
    /// How evaluations must agree with consensus.
    pub consensus: ConsensusRule,
    /// The share of evaluate tasks that are audits of functions with consensus even while
    /// others wait for a first evaluation (their agreement feeds evaluators' reputation).
    pub audit_share: f64,
    /// What each confirmed event pays.
    pub rewards: RewardSchedule,
    /// The component types served, a population each (`loss` by default; AMM's pool serves
    /// `loss`, `activation` and `optimizer`). Tasks go round them in turn.
    pub component_types: Vec<crate::component::ComponentKind>,
    /// Refuse AMM's body-only auth: every signed call must carry the signed headers.
    pub require_signed_headers: bool,
    /// How submitted genomes are checked before they are stored: as AMM's interpreter runs
    /// them (compat, the default, so AMM's Python miners are served unchanged) or strictly.
    pub genome_check: crate::formats::Mode,
    /// The most instructions a submitted program may have.
    pub max_instructions: usize,
    /// A scorer the pool runs itself: when set, each new function (and each seed) is scored
    /// by it and that one score is its consensus. For solo pools only, where the operator is
    /// the only miner; a public pool leaves it unset and waits for distinct evaluators.
    pub local_scorer: Option<LocalScorer>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            db: DbLocation::Memory,
            ss58_prefix: 42,
            lease: Duration::from_secs(600),
            evaluate_lease: Duration::from_secs(120),
            expired_lease_strikes: 3,
            max_skew_seconds: 120,
            request_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_ip: 64,
            body_limit: 256 << 10,
            max_metadata_bytes: 16 << 10,
            rate_burst: 30,
            rate_per_second: 5.0,
            ip_rate_burst: 120,
            ip_rate_per_second: 20.0,
            leaderboard_cache: Duration::from_secs(2),
            evaluate_batch_size: 4,
            min_evaluators: 3,
            consensus: ConsensusRule::Tolerance,
            audit_share: 0.1,
            rewards: RewardSchedule::default(),
            component_types: vec![crate::component::ComponentKind::Loss],
            require_signed_headers: false,
            genome_check: crate::formats::Mode::Compat,
            max_instructions: super::genome::MAX_INSTRUCTIONS,
            local_scorer: None,
        }
    }
}

impl ServerConfig {
    /// A pool for this machine only (tests, embedding): a free port on 127.0.0.1, state in
    /// `db`, defaults otherwise.
    pub fn local(db: DbLocation) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db,
            ..ServerConfig::default()
        }
    }

    /// The lease of a task of `task_type`, in milliseconds.
    pub fn lease_ms(&self, task_type: crate::pool::protocol::TaskType) -> i64 {
        let d = match task_type {
            crate::pool::protocol::TaskType::Evolve => self.lease,
            crate::pool::protocol::TaskType::Evaluate => self.evaluate_lease,
        };
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
    }
}
