//! `ncpc validate`: a validator round over miners' submissions (docs/validator.md).

use super::CliError;
use super::protocol_args::ProtocolArgs;
use crate::train::protocol::{Protocol, ProtocolName};
use crate::validate::round::{RoundConfig, RoundOutcome, RoundResult, run_round};
use crate::validate::scorer::Scorer;
use crate::validate::signature::SignatureMode;
use crate::validate::sink::{DryRunSink, FileSink, RoundInfo, WeightSink, WeightsDoc};
use crate::validate::state::RoundState;
use crate::validate::submissions::SubmissionSet;
use clap::{ArgGroup, Args};
use std::path::PathBuf;

/// Arguments of `ncpc validate`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["submissions", "pool"])))]
#[command(mut_arg("protocol", |a| a.default_value("daml")))]
pub struct ValidateArgs {
    /// A directory of submission files: JSON objects with `hotkey`, `block` (or
    /// `timestamp`) and the genome as `expression` (DAML) or `genome` (any format).
    #[arg(long, value_name = "DIR")]
    pub submissions: Option<PathBuf>,
    /// An ncpc pool: its miners' functions are the submissions (seeds are not).
    #[arg(long, value_name = "URL")]
    pub pool: Option<String>,
    /// How originals are scored (default: `daml`, DAML's composite).
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// Hotkeys that get a weight (DAML: 50).
    #[arg(long, default_value_t = 50)]
    pub top_k: usize,
    /// Weight of the best hotkey over the k-th (DAML: 5).
    #[arg(long, default_value_t = 5.0)]
    pub ratio: f64,
    /// Which keys find duplicates: `outputs` (IR hash and loss/gradient values, as DAML's
    /// signature) or `gradient` (also scaled and shifted copies).
    #[arg(long, value_enum, default_value = "gradient")]
    pub signature: SignatureMode,
    /// The round's directory: its state (for resuming) and `weights.json`.
    #[arg(long, value_name = "DIR", default_value = "validator-round")]
    pub out: PathBuf,
    /// Worker threads (default: one per core). The weights do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Train at most N originals in this run, then stop; run again to continue the round.
    #[arg(long, value_name = "N")]
    pub stop_after: Option<usize>,
    /// Set no weights: print what would be set and write no `weights.json`.
    #[arg(long)]
    pub dry_run: bool,
}

/// Run `ncpc validate`.
pub fn run(a: ValidateArgs) -> Result<(), CliError> {
    if a.top_k == 0 {
        return Err(anyhow::anyhow!("--top-k must be at least 1").into());
    }
    if !(a.ratio.is_finite() && a.ratio > 0.0) {
        return Err(anyhow::anyhow!("--ratio must be a positive number, not {}", a.ratio).into());
    }
    if a.threads == Some(0) {
        return Err(anyhow::anyhow!("--threads must be at least 1").into());
    }
    let set = read_submissions(&a)?;
    let scorer = scorer(&a.protocol)?;
    let state = RoundState::open(&a.out)?;
    let config = RoundConfig {
        top_k: a.top_k,
        ratio: a.ratio,
        signature: a.signature,
        threads: a.threads,
        stop_after: a.stop_after,
    };
    for s in &set.skipped {
        eprintln!("ncpc: skipped {}: {}", s.file, s.reason);
    }
    if state.ignored() > 0 {
        eprintln!(
            "ncpc: {}: {} line(s) that do not parse were ignored",
            state.path().display(),
            state.ignored()
        );
    }
    let t0 = std::time::Instant::now();
    let stop = super::stop::install("the originals being trained");
    let bar = progress();
    let outcome = run_round(&set, &scorer, &config, &state, &stop, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let result = match outcome.map_err(|e| CliError {
        code: 1,
        err: e.into(),
    })? {
        RoundOutcome::Complete(r) => r,
        RoundOutcome::Stopped { stats, remaining } => {
            println!(
                "round stopped: {} original(s) trained, {} reused, {remaining} still to train; run the same command again to continue (state in {})",
                stats.trained,
                stats.reused,
                state.path().display()
            );
            return Ok(());
        }
    };
    let info = RoundInfo {
        inputs_sha256: set.digest(),
        scoring: scorer.describe(),
        signature: a.signature,
        top_k: a.top_k,
        ratio: a.ratio,
        submissions: result.stats.submissions,
        originals: result.stats.originals,
        duplicates: result.stats.duplicates,
        no_signature: result.stats.no_signature,
        skipped: result.stats.skipped,
    };
    let doc = WeightsDoc::new(info, &result, &set.skipped);
    let said = if a.dry_run {
        DryRunSink::default().set_weights(&doc)
    } else {
        FileSink::new(&a.out).set_weights(&doc)
    }
    .map_err(|e| CliError {
        code: 1,
        err: e.into(),
    })?;
    print!("{}", table(&result, &scorer));
    println!("seconds   {:.2}", t0.elapsed().as_secs_f64());
    println!("{said}");
    Ok(())
}

/// The submissions of the round, from the directory or the pool.
fn read_submissions(a: &ValidateArgs) -> Result<SubmissionSet, CliError> {
    match (&a.submissions, &a.pool) {
        (Some(dir), _) => Ok(crate::validate::submissions::read_dir(dir)?),
        (None, Some(url)) => crate::validate::pool_source::read_pool(url).map_err(|e| CliError {
            code: 1,
            err: e.into(),
        }),
        (None, None) => Err(anyhow::anyhow!("give --submissions DIR or --pool URL").into()),
    }
}

/// The scorer the protocol flags ask for (baselines are never trained for their own sake).
fn scorer(p: &ProtocolArgs) -> Result<Scorer, CliError> {
    let adjust = |p: &mut Protocol| p.baselines = false;
    if p.protocol == ProtocolName::Daml {
        let (runs, notes) = p.composite_runs(adjust)?;
        for n in notes {
            eprintln!("ncpc: note: {n}");
        }
        if runs.is_empty() {
            return Err(anyhow::anyhow!("no dataset of the daml composite is present").into());
        }
        return Ok(Scorer::composite(runs));
    }
    Ok(Scorer::single(p.resolve(adjust)?))
}

fn progress() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} training originals [{bar:30}] {pos}/{len}, {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The report: the round's settings and counts, then one row per hotkey, highest weight
/// first.
fn table(r: &RoundResult, scorer: &Scorer) -> String {
    let mut out = String::new();
    for (k, line) in scorer.describe().iter().enumerate() {
        out.push_str(&format!(
            "{}{line}\n",
            if k == 0 { "scoring   " } else { "          " }
        ));
    }
    for n in scorer.notes() {
        out.push_str(&format!("note      {n}\n"));
    }
    let s = r.stats;
    out.push_str(&format!(
        "round     {} submissions ({} skipped): {} originals ({} trained, {} from the round state), {} duplicates, {} without a signature\n\n",
        s.submissions, s.skipped, s.originals, s.trained, s.reused, s.duplicates, s.no_signature
    ));
    let width = r
        .hotkeys
        .iter()
        .map(|h| h.hotkey.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 48);
    out.push_str(&format!(
        "{:<width$} {:>10} {:>8}  {:<24} {}\n",
        "hotkey", "weight", "score", "submission", "status"
    ));
    let mut rows: Vec<_> = r.hotkeys.iter().collect();
    rows.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then(b.score.total_cmp(&a.score))
            .then(a.hotkey.cmp(&b.hotkey))
    });
    for h in rows {
        let status = match (&h.duplicate_of, &h.failure) {
            (Some(o), _) => format!("duplicate of {o}"),
            (None, Some(f)) => format!("failed: {f}"),
            (None, None) => "original".into(),
        };
        out.push_str(&format!(
            "{:<width$} {:>10.6} {:>8.4}  {:<24} {}\n",
            h.hotkey, h.weight, h.score, h.submission, status
        ));
    }
    out
}
