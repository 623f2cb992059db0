//! `ncpc explain` (a genome's optimized formula, plain and LaTeX) and `ncpc export` (the
//! genome as a PyTorch module, an AMM program, a DAML expression or IR).

use super::CliError;
use super::compile::{CompileArgs, Emit, ReadArgs};
use super::input::{read_source, stem, write_output};
use crate::explain::{Style, formula, pytorch_module};
use clap::{Args, ValueEnum};
use ncp_ir::passes::{OptOptions, optimize};
use std::path::PathBuf;

/// Arguments of `ncpc explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Genome file, or `-` for stdin.
    pub genome: PathBuf,
    /// How the genome is read.
    #[command(flatten)]
    pub read: ReadArgs,
}

/// What `ncpc export` writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportTo {
    /// A self-contained Python file with a `torch.nn.Module`.
    Pytorch,
    /// An AMM program.
    Amm,
    /// A DAML expression.
    Daml,
    /// Optimized ncpc IR.
    Ir,
}

/// Arguments of `ncpc export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Genome file, or `-` for stdin.
    pub genome: PathBuf,
    /// Target.
    #[arg(long, value_enum)]
    pub to: ExportTo,
    /// How the genome is read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn optimized(genome: &std::path::Path, read: ReadArgs) -> Result<ncp_ir::Function, CliError> {
    let text = read_source(genome)?;
    let opts = read.options(genome);
    let mut f = crate::formats::compile(&text, &opts)?.func;
    optimize(&mut f, OptOptions::default())?;
    Ok(f)
}

/// Run `ncpc explain`.
pub fn run_explain(a: ExplainArgs) -> Result<(), CliError> {
    let f = optimized(&a.genome, a.read)?;
    let plain = formula(&f, Style::Plain)?;
    let latex = formula(&f, Style::Latex)?;
    let text = format!(
        "{plain}\nLaTeX:\n\\begin{{aligned}}\n{latex}\\end{{aligned}}\n\ny_pred (\\hat{{y}}) and y_true (y) are [B, C]; _b and _c reduce over rows and classes.\n"
    );
    write_output(None, &text)
}

/// Run `ncpc export`.
pub fn run_export(a: ExportArgs) -> Result<(), CliError> {
    let emit = match a.to {
        ExportTo::Pytorch => {
            let f = optimized(&a.genome, a.read)?;
            let class = {
                let mut s: String = stem(&a.genome)
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
                    .collect();
                if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
                    s.insert_str(0, "Loss");
                }
                s
            };
            return write_output(a.output.as_ref(), &pytorch_module(&f, &class)?);
        }
        ExportTo::Amm => Emit::Amm,
        ExportTo::Daml => Emit::Daml,
        ExportTo::Ir => Emit::IrOpt,
    };
    super::compile::run(CompileArgs {
        genome: a.genome,
        read: a.read,
        emit,
        fast_math: false,
        tier: crate::jit::Tier::Quick,
        classes: 10,
        output: a.output,
    })
}
