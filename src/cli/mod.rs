//! The command line: one module per subcommand.

mod compile;
mod data;
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
#[command(name = "ncpc", version, about, propagate_version = true)]
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
    /// 2 for bad input, 1 for internal failures.
    pub code: u8,
    /// The message (an error chain).
    pub err: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError {
            code: 2,
            err: e.into(),
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(a) => compile::run(a),
        Command::Run(a) => run::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Evolve(a) => evolve::run(a),
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
