//! `ncpc run`: a genome's loss and gradient on given inputs.

use super::CliError;
use super::compile::ReadArgs;
use super::input::read_source;
use crate::loss::{Backend, evaluate_genome_with};
use crate::numbers::{decode_matrix, encode, encode_matrix};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `ncpc run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Genome file, or `-` for stdin.
    pub genome: PathBuf,
    /// JSON file `{"y_pred": [[...]], "y_true": [[...]]}`.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Print `{"loss": x, "grad_pred": [[...]] | null}`.
    #[arg(long)]
    pub json: bool,
    /// How the genome is read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Run the IR as compiled, without the optimizer.
    #[arg(long)]
    pub no_opt: bool,
    /// Which engine computes the loss: Cranelift native code (falls back to the interpreter
    /// for genomes it does not compile) or the reference interpreter.
    #[arg(long, value_enum, default_value = "jit")]
    pub backend: Backend,
    /// JIT transcendentals: exact (bit-equal to the interpreter) or fast (inline polynomials,
    /// within 1 ulp).
    #[arg(long, value_enum, default_value = "exact")]
    pub math: crate::jit::MathMode,
}

/// Run `ncpc run`.
pub fn run(a: RunArgs) -> Result<(), CliError> {
    let text = read_source(&a.genome)?;
    let inputs_text = read_source(&a.inputs)?;
    let inputs: serde_json::Value = serde_json::from_str(&inputs_text)
        .with_context(|| format!("{} is not valid JSON", a.inputs.display()))?;
    let get = |k: &str| {
        inputs
            .get(k)
            .ok_or_else(|| anyhow::anyhow!("{}: missing `{k}`", a.inputs.display()))
            .and_then(|v| {
                decode_matrix(v, k).map_err(|e| anyhow::anyhow!("{}: {e}", a.inputs.display()))
            })
    };
    let y_pred = get("y_pred")?;
    let y_true = get("y_true")?;
    let opts = a.read.options(&a.genome);
    let (v, used) =
        evaluate_genome_with(a.backend, a.math, &text, &opts, &y_pred, &y_true, !a.no_opt)?;
    if a.json {
        let mut o = serde_json::json!({
            "loss": encode(v.loss),
            "grad_pred": v.grad.as_deref().map(encode_matrix),
        });
        if let Some(t) = v.fault {
            o["fault"] = serde_json::Value::from(t.describe());
        }
        println!("{o}");
    } else {
        println!("loss: {}", v.loss);
        println!(
            "backend: {}",
            if used == Backend::Jit {
                "jit"
            } else {
                "interp"
            }
        );
        if let Some(t) = v.fault {
            println!(
                "fault: {} (AMM's loss wrapper returns 1.0 without gradient)",
                t.describe()
            );
        }
        match &v.grad {
            Some(g) => {
                println!("grad_pred:");
                for r in g {
                    let cells: Vec<String> = r.iter().map(|x| format!("{x}")).collect();
                    println!("  [{}]", cells.join(", "));
                }
            }
            None => println!("grad_pred: none (the loss does not depend on y_pred)"),
        }
    }
    Ok(())
}
