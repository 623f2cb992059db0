//! `ncpc eval`: score a genome by training networks with it under a protocol.

use super::CliError;
use super::compile::ReadArgs;
use super::input::{read_source, stem, write_output};
use super::protocol_args::ProtocolArgs;
use crate::train::composite::{CompositeReport, evaluate_composite, run_label};
use crate::train::protocol::{Protocol, ProtocolName};
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
    let adjust = |p: &mut Protocol| {
        if let Some(s) = a.seed {
            p.seed = s;
        }
        if a.no_baselines {
            p.baselines = false;
        }
    };
    if a.protocol.protocol == ProtocolName::Daml {
        return run_composite(&a, text, adjust);
    }
    let setup = a.protocol.resolve(adjust)?;
    let (p, data, notes, opts) = (setup.protocol, setup.data, setup.notes, setup.opts);
    let genome = genome_of(&a, text);
    let bar = progress(&genome.name, runs_of(&p));
    let report = evaluate(&genome, &p, &data, opts, notes, &|| bar.inc(1));
    bar.finish_and_clear();
    print(a.json, &report?, table)
}

/// The genome to evaluate: the file's text, named after the file, read as `--format` says.
fn genome_of(a: &EvalArgs, text: String) -> Genome {
    Genome {
        name: stem(&a.genome),
        text,
        opts: a.read.options(&a.genome),
    }
}

/// The report on stdout: pretty JSON with `--json`, else the table.
fn print<R: serde::Serialize>(
    json: bool,
    report: &R,
    table: fn(&R) -> String,
) -> Result<(), CliError> {
    if json {
        let text = serde_json::to_string_pretty(report).map_err(anyhow::Error::from)?;
        write_output(None, &format!("{text}\n"))
    } else {
        write_output(None, &table(report))
    }
}

/// Training runs one evaluation under `p` makes (its seeds, times three with baselines).
fn runs_of(p: &Protocol) -> usize {
    p.seeds
        * if p.baselines || p.score_needs_baseline() {
            3
        } else {
            1
        }
}

/// The progress bar on stderr.
fn progress(name: &str, runs: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(runs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} runs, {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("eval {name}"));
    bar
}

/// `ncpc eval --protocol daml`: the composite over every run this machine can make.
fn run_composite(
    a: &EvalArgs,
    text: String,
    adjust: impl FnOnce(&mut Protocol),
) -> Result<(), CliError> {
    let (runs, notes) = a.protocol.composite_runs(adjust)?;
    let genome = genome_of(a, text);
    let bar = progress(
        &genome.name,
        runs.iter().map(|r| runs_of(&r.protocol)).sum(),
    );
    let report = evaluate_composite(&genome, &runs, notes, &|| bar.inc(1));
    bar.finish_and_clear();
    print(a.json, &report?, composite_table)
}

/// The human-readable composite report: one row per loss, one accuracy column per run.
fn composite_table(r: &CompositeReport) -> String {
    let mut out = String::from(
        "protocol  Daml: 0.7 mean(accuracy) + 0.3 (1 - std/mean) over the runs below\n",
    );
    for (k, run) in r.runs.iter().enumerate() {
        out.push_str(&format!("run {}     {}\n", k + 1, run_label(run)));
        for n in &run.notes {
            out.push_str(&format!("          note: {n}\n"));
        }
    }
    for n in &r.notes {
        out.push_str(&format!("note      {n}\n"));
    }
    let heads: Vec<String> = (1..=r.runs.len()).map(|k| format!("run {k}")).collect();
    out.push_str(&format!(
        "\n{:<16} {:>10} {}  {}\n",
        "loss",
        "score",
        heads
            .iter()
            .map(|h| format!("{h:>8}"))
            .collect::<Vec<_>>()
            .join(" "),
        "failure"
    ));
    for s in std::iter::once(&r.candidate).chain(&r.baselines) {
        let accs: Vec<String> = s
            .run_accuracies
            .iter()
            .map(|x| format!("{:>8}", fmt_num(*x)))
            .collect();
        out.push_str(&format!(
            "{:<16} {:>10} {}  {}\n",
            s.name,
            fmt_num(s.score),
            accs.join(" "),
            s.failure.as_deref().unwrap_or("")
        ));
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
