//! `ncpc pool`: talk to a Neural Component Pool by hand (register, look up, request a task),
//! to check a key and a pool URL before mining; and `ncpc pool serve`, which runs a pool.

use super::CliError;
use super::key::{KeySource, default_key_file};
use crate::identity::Identity;
use crate::pool::client::{PoolClient, with_retries};
use crate::pool::protocol::TaskType;
use crate::pool::server::rewards::RewardSchedule;
use crate::pool::server::{ConsensusRule, DbLocation, ServerConfig, serve};
use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

/// Arguments of `ncpc pool`.
#[derive(Args, Debug)]
pub struct PoolArgs {
    /// The pool's URL (with or without the trailing /api/v1).
    #[arg(
        long,
        alias = "api-url",
        alias = "pool_url",
        global = true,
        default_value = "http://127.0.0.1:8000"
    )]
    pool_url: String,
    #[command(flatten)]
    source: KeySource,
    #[command(subcommand)]
    command: PoolCommand,
}

#[derive(Subcommand, Debug)]
enum PoolCommand {
    /// Run a pool server (the AMM API) until Ctrl-C or SIGTERM; needs no key.
    Serve(Box<ServeArgs>),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The calls made with the miner's key.
#[derive(Subcommand, Debug)]
enum ClientCommand {
    /// Register the miner (registering again is not an error).
    Register,
    /// Print what the pool knows about the miner.
    Info,
    /// Print the miner's Alpha balance.
    Balance,
    /// Clear the miner's active task.
    ResetActive,
    /// Request a task and print the batch (the pool then expects a submission).
    Request {
        /// Which kind of task.
        #[arg(long, value_enum, default_value = "evaluate")]
        task_type: TaskType,
    },
}

/// Arguments of `ncpc pool serve`.
#[derive(Args, Debug)]
struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// The database: a SQLite file (created if missing; also `sqlite:PATH`), `sqlite::memory:`,
    /// or a Postgres URL `postgres://user:password@host:port/dbname` (the database must exist).
    #[arg(long, default_value = "pool.sqlite")]
    db: DbLocation,
    /// Seconds a miner holds an evolve task.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    lease_seconds: u64,
    /// Seconds a miner holds an evaluate task (it reserves evaluator slots, so it is short).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    evaluate_lease_seconds: u64,
    /// Leases a key may let expire within an hour before its requests wait (30 s, doubling).
    #[arg(long, default_value_t = 3)]
    expired_lease_strikes: u32,
    /// The SS58 network prefix miners' addresses must use (42: substrate's generic one).
    #[arg(long, default_value_t = 42)]
    ss58_prefix: u16,
    /// Distinct evaluators whose median forms a function's consensus.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=50))]
    min_evaluators: u64,
    /// How evaluations must agree with consensus: within 10% (`tolerance`), or equal
    /// (`exact`, for pools whose evaluators all run ncpc).
    #[arg(long, value_enum, default_value = "tolerance")]
    consensus: ConsensusRule,
    /// The share of evaluate tasks that audit functions with consensus.
    #[arg(long, default_value_t = 0.1)]
    audit_share: f64,
    /// A TOML file with the reward schedule (keys of docs/pool.md's schedule; missing ones
    /// keep their defaults).
    #[arg(long)]
    rewards: Option<std::path::PathBuf>,
    /// Seconds to wait for a request's headers (also the idle timeout of kept-alive
    /// connections).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout: u64,
    /// Connections open at once.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Connections open at once from one IP address.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_ip: u64,
    /// Signed requests one key may make at once.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    rate_burst: u32,
    /// Signed requests one key may make per second on average.
    #[arg(long, default_value_t = 5.0)]
    rate_per_second: f64,
    /// Unsigned requests and failed authentications one IP address may make per second.
    #[arg(long, default_value_t = 20.0)]
    ip_rate: f64,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 256 << 10)]
    body_limit: usize,
    /// The largest evolution metadata kept, in bytes of JSON.
    #[arg(long, default_value_t = 16 << 10)]
    max_metadata_bytes: usize,
    /// The most instructions a submitted program may have.
    #[arg(long, default_value_t = crate::pool::server::genome::MAX_INSTRUCTIONS)]
    max_instructions: usize,
    /// The most seconds a request's auth timestamp may differ from the server's clock.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(i64).range(1..=3600))]
    max_skew_seconds: i64,
    /// Refuse AMM's body-only auth: every signed call must carry ncpc's signed headers.
    #[arg(long)]
    require_signed_headers: bool,
    /// How submitted genomes are checked: `compat` takes what AMM's interpreter runs (AMM's
    /// Python miners submit such programs); `strict` also refuses registers read before they
    /// are written, NN ops short of parameters and the like, naming the instruction.
    #[arg(long, value_enum, default_value = "compat")]
    genome_check: crate::formats::Mode,
    /// The component types served, comma-separated: loss, activation, optimizer (AMM's pool
    /// serves all three). Each gets a population seeded with its built-in functions; tasks
    /// take the types in turn, and a submission is checked as its task's type.
    #[arg(long, value_delimiter = ',', default_value = "loss")]
    component_types: Vec<crate::component::ComponentKind>,
}

fn run_server(a: ServeArgs) -> Result<(), CliError> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    let bad = |msg: String| CliError {
        code: 2,
        err: anyhow::anyhow!(msg),
    };
    let rewards = match &a.rewards {
        None => RewardSchedule::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| CliError {
                code: 1,
                err: anyhow::anyhow!("{}: {e}", p.display()),
            })?;
            RewardSchedule::from_toml(&text).map_err(|e| bad(format!("{}: {e}", p.display())))?
        }
    };
    if !(0.0..=1.0).contains(&a.audit_share) {
        return Err(bad(format!(
            "--audit-share must lie in [0, 1], not {}",
            a.audit_share
        )));
    }
    if !(a.rate_per_second.is_finite() && a.rate_per_second > 0.0) {
        return Err(bad(format!(
            "--rate-per-second must be above 0, not {}",
            a.rate_per_second
        )));
    }
    if !(a.ip_rate.is_finite() && a.ip_rate > 0.0) {
        return Err(bad(format!("--ip-rate must be above 0, not {}", a.ip_rate)));
    }
    if a.min_evaluators < 3 {
        eprintln!(
            "ncpc: warning: with --min-evaluators {} a ring of {} key(s) forms consensus alone; \
             a pool open to others wants at least 3",
            a.min_evaluators, a.min_evaluators
        );
    }
    let config = ServerConfig {
        listen: a.listen,
        db: a.db,
        ss58_prefix: a.ss58_prefix,
        lease: Duration::from_secs(a.lease_seconds),
        evaluate_lease: Duration::from_secs(a.evaluate_lease_seconds),
        expired_lease_strikes: a.expired_lease_strikes,
        max_skew_seconds: a.max_skew_seconds,
        require_signed_headers: a.require_signed_headers,
        genome_check: a.genome_check,
        min_evaluators: a.min_evaluators as usize,
        consensus: a.consensus,
        audit_share: a.audit_share,
        rewards,
        header_read_timeout: Duration::from_secs(a.header_read_timeout),
        max_connections: a.max_connections as usize,
        max_connections_per_ip: a.max_connections_per_ip as usize,
        rate_burst: a.rate_burst,
        rate_per_second: a.rate_per_second,
        ip_rate_per_second: a.ip_rate,
        ip_rate_burst: (a.ip_rate * 6.0).ceil().clamp(1.0, 1e6) as u32,
        body_limit: a.body_limit,
        max_metadata_bytes: a.max_metadata_bytes,
        max_instructions: a.max_instructions,
        component_types: {
            let mut kinds = a.component_types.clone();
            kinds.sort();
            kinds.dedup();
            kinds
        },
        ..ServerConfig::default()
    };
    serve(config).map_err(|err| CliError { code: 1, err })
}

/// Run `ncpc pool`.
pub fn run(a: PoolArgs) -> Result<(), CliError> {
    let command = match a.command {
        PoolCommand::Serve(s) => return run_server(*s),
        PoolCommand::Client(c) => c,
    };
    let id = match a.source.load()? {
        Some(id) => id,
        None => Identity::from_seed_file(&default_key_file()).map_err(|e| {
            anyhow::anyhow!(
                "{e}\n  give a key with --mnemonic, --seed-file or --wallet/--hotkey, or make one with `ncpc key generate`"
            )
        })?,
    };
    let client = PoolClient::new(&a.pool_url, id)?;
    let retry =
        |op: &dyn Fn() -> Result<serde_json::Value, _>| with_retries(3, Duration::from_secs(1), op);
    let answer = match command {
        ClientCommand::Register => retry(&|| client.register())?,
        ClientCommand::Info => retry(&|| client.miner_info())?,
        ClientCommand::Balance => retry(&|| client.balance())?,
        ClientCommand::ResetActive => retry(&|| client.reset_active())?,
        ClientCommand::Request { task_type } => retry(&|| {
            client
                .request_task(task_type)
                .map(|b| serde_json::to_value(b).unwrap_or_default())
        })?,
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_else(|_| answer.to_string())
    );
    Ok(())
}
