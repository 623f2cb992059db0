//! `ncpc eval`: score a genome by training networks with it under a protocol.

use super::CliError;
use super::compile::ReadArgs;
use super::input::{read_source, stem, write_output};
use super::protocol_args::ProtocolArgs;
use crate::train::run::{Genome, LossScore, Report, evaluate};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `ncpc eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Genome file, or `-` for stdin.
    pub genome: PathBuf,
    /// The protocol and its knobs.
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// First seed (default 42).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Skip the cross-entropy and MSE baselines (HAZ scoring still trains cross-entropy).
    #[arg(long)]
    pub no_baselines: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// How the genome is read.
    #[command(flatten)]
    pub read: ReadArgs,
}

/// Run `ncpc eval`.
pub fn run(a: EvalArgs) -> Result<(), CliError> {
    let text = read_source(&a.genome)?;
    let setup = a.protocol.resolve(|p| {
        if let Some(s) = a.seed {
            p.seed = s;
        }
        if a.no_baselines {
            p.baselines = false;
        }
    })?;
    let (p, data, notes, opts) = (setup.protocol, setup.data, setup.notes, setup.opts);
    let genome = Genome {
        name: stem(&a.genome),
        text,
        opts: a.read.options(&a.genome),
    };
    let runs = p.seeds
        * if p.baselines || p.score_needs_baseline() {
            3
        } else {
            1
        };
    let bar = indicatif::ProgressBar::new(runs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} runs, {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("eval {}", genome.name));
    let report = evaluate(&genome, &p, &data, opts, notes, &|| bar.inc(1));
    bar.finish_and_clear();
    let report = report?;
    if a.json {
        let text = serde_json::to_string_pretty(&report).map_err(anyhow::Error::from)?;
        write_output(None, &format!("{text}\n"))
    } else {
        write_output(None, &table(&report))
    }
}

fn fmt_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        format!("{x}")
    }
}

fn row(s: &LossScore) -> String {
    format!(
        "{:<16} {:>10} {:>10}  {:<6} {}\n",
        s.name,
        fmt_num(s.score),
        fmt_num(s.accuracy),
        s.engine.name(),
        s.failure.as_deref().unwrap_or("")
    )
}

/// The human-readable report.
fn table(r: &Report) -> String {
    let mut out = String::new();
    let p = &r.protocol;
    out.push_str(&format!(
        "protocol  {:?}, {} seed(s) from {}, {:?} lr {}, batch {}\n",
        p.name, p.seeds, p.seed, p.optimizer, p.lr, p.batch
    ));
    out.push_str(&format!("data      {}\nmodel     {}\n", r.data, r.model));
    for n in &r.notes {
        out.push_str(&format!("note      {n}\n"));
    }
    out.push_str(&format!(
        "\n{:<16} {:>10} {:>10}  {:<6} {}\n",
        "loss", "score", "accuracy", "engine", "failure"
    ));
    out.push_str(&row(&r.candidate));
    for b in &r.baselines {
        out.push_str(&row(b));
    }
    if !r.candidate.curve.is_empty() {
        let pts: Vec<String> = r
            .candidate
            .curve
            .iter()
            .map(|c| format!("{}:{:.3}", c.step, c.accuracy))
            .collect();
        out.push_str(&format!("\ncurve     {}\n", pts.join(" ")));
    }
    if let Some(ce) = r.baselines.iter().find(|b| b.name == "cross-entropy")
        && r.score.is_finite()
        && ce.score.is_finite()
    {
        out.push_str(&format!("vs cross-entropy  {:+.4}\n", r.score - ce.score));
    }
    out.push_str(&format!("seconds   {:.2}\n", r.seconds));
    out
}
