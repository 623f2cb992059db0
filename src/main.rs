//! The `ncpc` binary: parse arguments, run, print one error chain. Exit codes: 0 success,
//! 2 bad input or usage (what and where is printed), 1 an internal failure.

use std::process::ExitCode;

fn main() -> ExitCode {
    ncpc::cli::main()
}
