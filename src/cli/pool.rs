//! `ncpc pool`: talk to a Neural Component Pool by hand (register, look up, request a task),
//! to check a key and a pool URL before mining; and `ncpc pool serve`, which runs a pool.

use super::CliError;
use super::key::{KeySource, default_key_file};
use crate::identity::Identity;
use crate::pool::client::{PoolClient, with_retries};
use crate::pool::protocol::TaskType;
use crate::pool::server::{DbLocation, ServerConfig, serve};
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
    Serve(ServeArgs),
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
    /// Seconds a miner holds a task before it is re-issued to others.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    lease_seconds: u64,
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
}

fn run_server(a: ServeArgs) -> Result<(), CliError> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    let config = ServerConfig {
        listen: a.listen,
        db: a.db,
        lease: Duration::from_secs(a.lease_seconds),
        max_skew_seconds: a.max_skew_seconds,
        require_signed_headers: a.require_signed_headers,
        genome_check: a.genome_check,
        ..ServerConfig::default()
    };
    serve(config).map_err(|err| CliError { code: 1, err })
}

/// Run `ncpc pool`.
pub fn run(a: PoolArgs) -> Result<(), CliError> {
    let command = match a.command {
        PoolCommand::Serve(s) => return run_server(s),
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
