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
    /// More genome files: with `--protocol amm-exact`, all the files are scored in order as
    /// one AMM evaluate task (weights carry over from each to the next, as in a fresh AMM
    /// miner's first task). Other protocols take one file.
    pub more: Vec<PathBuf>,
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
    /// What the genomes are: loss, activation or optimizer (AMM's component types; other
    /// than loss only with --protocol amm-exact, which scores them as AMM's client does).
    #[arg(long, default_value = "loss")]
    pub component: crate::component::ComponentKind,
    /// How the genome is read.
    #[command(flatten)]
    pub read: ReadArgs,
}

/// Run `ncpc eval`.
pub fn run(a: EvalArgs) -> Result<(), CliError> {
    if a.protocol.protocol == ProtocolName::AmmExact {
        return run_amm_exact(&a);
    }
    if a.component != crate::component::ComponentKind::Loss {
        return Err(anyhow::anyhow!(
            "--component {} is scored only by --protocol amm-exact (AMM's {} strategy)",
            a.component,
            a.component
        )
        .into());
    }
    if !a.more.is_empty() {
        return Err(anyhow::anyhow!(
            "{} genome files given; only --protocol amm-exact scores several files (as one evaluate task)",
            a.more.len() + 1
        )
        .into());
    }
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

/// One function of an amm-exact task as `--json` prints it.
#[derive(serde::Serialize)]
struct AmmExactEntry {
    /// The file.
    file: String,
    /// The score AMM's client would submit (`null`: AMM submits nothing for it).
    score: Option<f64>,
    /// The criteria it would submit with it.
    criteria: Option<AmmCriteria>,
    /// How it came out.
    #[serde(flatten)]
    outcome: crate::train::amm_exact::Outcome,
}

#[derive(serde::Serialize)]
struct AmmCriteria {
    accuracy: f64,
    stability: f64,
    efficiency: f64,
}

/// `ncpc eval --protocol amm-exact A.json B.json ...`: the files as one AMM evaluate task.
fn run_amm_exact(a: &EvalArgs) -> Result<(), CliError> {
    use crate::train::amm_exact::{AmmExact, Outcome};
    let paths: Vec<&PathBuf> = std::iter::once(&a.genome).chain(&a.more).collect();
    let texts = paths
        .iter()
        .map(|p| read_source(p))
        .collect::<Result<Vec<_>, _>>()?;
    let engine = match a.protocol.backend {
        super::protocol_args::EvalBackend::Interp => crate::loss::Backend::Interp,
        _ => crate::loss::Backend::Jit,
    };
    let mut scorer = AmmExact::new(engine).map_err(anyhow::Error::from)?;
    let t0 = std::time::Instant::now();
    let outcomes = if a.component == crate::component::ComponentKind::Loss {
        scorer.evaluate_task(&texts)
    } else {
        let values: Vec<serde_json::Value> = texts
            .iter()
            .map(|t| serde_json::Value::String(t.clone()))
            .collect();
        scorer.evaluate_component(a.component, &values)
    };
    let entries: Vec<AmmExactEntry> = paths
        .iter()
        .zip(outcomes)
        .map(|(p, o)| AmmExactEntry {
            file: p.display().to_string(),
            score: o.wire_score(),
            criteria: o
                .wire_criteria()
                .map(|(accuracy, stability, efficiency)| AmmCriteria {
                    accuracy,
                    stability,
                    efficiency,
                }),
            outcome: o,
        })
        .collect();
    if a.json {
        let text = serde_json::to_string_pretty(&entries).map_err(anyhow::Error::from)?;
        return write_output(None, &format!("{text}\n"));
    }
    let mut out = format!(
        "protocol  AmmExact: one AMM evaluate task of {} functions, in order, weights carried over\n\n",
        a.component
    );
    out.push_str(&format!("{:<32} {:>10}  {}\n", "file", "score", "outcome"));
    for e in &entries {
        let what = match &e.outcome {
            Outcome::Scored {
                fitness,
                cached,
                failure,
            } => {
                let mut w = format!("fitness {}", fmt_num(*fitness));
                if *cached {
                    w.push_str(", from AMM's score cache");
                }
                if let Some(f) = failure {
                    w.push_str(&format!(" ({f})"));
                }
                w
            }
            Outcome::Exception { error } => format!("exception, sent as 0.0: {error}"),
            Outcome::Skipped { reason } => format!("skipped, AMM sends nothing: {reason}"),
        };
        let score = e.score.map_or_else(|| "-".to_string(), fmt_num);
        out.push_str(&format!("{:<32} {:>10}  {}\n", e.file, score, what));
    }
    out.push_str(&format!("seconds   {:.2}\n", t0.elapsed().as_secs_f64()));
    write_output(None, &out)
}
