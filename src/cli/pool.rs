//! `ncpc pool`: talk to a Neural Component Pool by hand (register, look up, request a task),
//! to check a key and a pool URL before mining.

use super::CliError;
use super::key::{KeySource, default_key_file};
use crate::identity::Identity;
use crate::pool::client::{PoolClient, with_retries};
use crate::pool::protocol::TaskType;
use clap::{Args, Subcommand};
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

/// Run `ncpc pool`.
pub fn run(a: PoolArgs) -> Result<(), CliError> {
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
    let answer = match a.command {
        PoolCommand::Register => retry(&|| client.register())?,
        PoolCommand::Info => retry(&|| client.miner_info())?,
        PoolCommand::Balance => retry(&|| client.balance())?,
        PoolCommand::ResetActive => retry(&|| client.reset_active())?,
        PoolCommand::Request { task_type } => retry(&|| {
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
