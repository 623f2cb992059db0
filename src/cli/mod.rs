//! The command line: one module per subcommand.

mod compile;
mod data;
mod discover;
mod eval;
mod evolve;
mod evolve_config;
mod explain;
mod input;
mod key;
mod mine;
mod pool;
mod protocol_args;
mod run;
mod stop;
mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// ncpc: compile, run and evolve genetic loss functions; mine on a Neural Component Pool.
#[derive(Parser, Debug)]
#[command(
    name = "ncpc",
    version,
    about,
    propagate_version = true,
    after_help = "Exit codes: 0 success; 2 bad input (a malformed genome, data file or flag, a \
                  missing input, a refused request); 1 any other failure (a file that cannot \
                  be written, the network, a database, an internal error)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compile a genome to IR (or another format) and optionally optimize it.
    Compile(compile::CompileArgs),
    /// Compute a genome's loss and its gradient on given inputs.
    Run(run::RunArgs),
    /// Score a genome: train networks with it under an evaluation protocol.
    Eval(eval::EvalArgs),
    /// Search for better losses by evolution.
    Evolve(evolve::EvolveArgs),
    /// Discover a loss that transfers: search a proxy, tune constants, check on a held-out protocol.
    Discover(discover::DiscoverArgs),
    /// Print a genome's optimized formula, plain and LaTeX.
    Explain(explain::ExplainArgs),
    /// Write a genome as a PyTorch module, an AMM program, a DAML expression or IR.
    Export(explain::ExportArgs),
    /// Datasets: where they live, and checking them.
    Data(data::DataArgs),
    /// Miner identities: generate or inspect an sr25519 key.
    Key(key::KeyArgs),
    /// Talk to a pool by hand: register, info, balance, reset-active, request.
    Pool(pool::PoolArgs),
    /// Mine: evolve and evaluate losses for a pool (an in-process one without --pool-url).
    Mine(mine::MineArgs),
    /// Validate: score miners' submissions (copies earn 0) and set DAML's top-k weights.
    Validate(validate::ValidateArgs),
}

/// An error with the exit code it deserves.
#[derive(Debug)]
pub struct CliError {
    /// [`BAD_INPUT`] or [`FAILURE`].
    pub code: u8,
    /// The message (an error chain).
    pub err: anyhow::Error,
}

/// Exit code for bad input: a malformed genome, data file or flag, a missing input file, a
/// refused request.
pub const BAD_INPUT: u8 = 2;

/// Exit code for everything else: a file that cannot be written, a network or database
/// failure, an internal error.
pub const FAILURE: u8 = 1;

/// The exit code an error deserves, from the errors in its chain: an I/O error is a failure
/// ([`FAILURE`]) unless it says the input is missing or malformed; every other error that
/// reaches `?` comes from checking what the user gave ([`BAD_INPUT`]). Commands that fail
/// otherwise (a pool that cannot be reached, mining that stops) set [`FAILURE`] themselves.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{InvalidData, InvalidInput, NotFound};
            return if matches!(io.kind(), NotFound | InvalidData | InvalidInput) {
                BAD_INPUT
            } else {
                FAILURE
            };
        }
    }
    BAD_INPUT
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> Self {
        let err = e.into();
        CliError {
            code: exit_code(&err),
            err,
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Pool(_)) {
        // Warnings from the library (a population kernel that could not be built, ...) on
        // stderr; the pool server sets up its own, more talkative, log.
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_max_level(tracing::Level::WARN)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
    }
    if let Some(w) = ncp_ir::vmath::override_warning() {
        tracing::warn!("{w}");
    }
    let result = match cli.command {
        Command::Compile(a) => compile::run(a),
        Command::Run(a) => run::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Evolve(a) => evolve::run(a),
        Command::Discover(a) => discover::run(a),
        Command::Explain(a) => explain::run_explain(a),
        Command::Export(a) => explain::run_export(a),
        Command::Data(a) => data::run(a),
        Command::Key(a) => key::run(a),
        Command::Pool(a) => pool::run(a),
        Command::Mine(a) => mine::run(a),
        Command::Validate(a) => validate::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ncpc: {:#}", e.err);
            ExitCode::from(e.code)
        }
    }
}
