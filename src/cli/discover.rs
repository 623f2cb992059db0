//! `ncpc discover`: search, tune, check transfer, with one time budget (docs/discovery.md).

use super::CliError;
use super::evolve_config::parse_duration;
use super::protocol_args::ProtocolArgs;
use crate::evolve::discover::{DiscoverConfig, Discovery, discover};
use crate::evolve::engine::EvolveConfig;
use crate::evolve::genome::GenomeFormat;
use crate::evolve::run_dir::RunDir;
use crate::train::data::{DatasetName, data_root};
use crate::train::protocol::{Protocol, ProtocolName};
use crate::train::run::{EvalOptions, Prepared};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `ncpc discover`.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// The whole budget: search, constant tuning and the transfer check (e.g. 1h, 20m).
    #[arg(long, default_value = "1h")]
    pub time: String,
    /// The share of the budget for the search.
    #[arg(long, default_value_t = 0.6)]
    pub search_share: f64,
    /// The genome format searched.
    #[arg(long, value_enum, default_value = "amm")]
    pub format: GenomeFormat,
    /// Start from MSE instead of random genomes.
    #[arg(long)]
    pub from_mse: bool,
    /// Population of the search.
    #[arg(long, default_value_t = 100)]
    pub population: usize,
    /// Random seed of the search.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Distinct structures tuned and checked on the held-out protocol.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// The higher fidelity of the second stage: the search's best distinct structures
    /// (`--rescore` of them) train again with this many times the proxy's steps and training
    /// samples; the best `--top` are tuned there (1: no second stage, tune on the proxy).
    #[arg(long, default_value_t = 8.0)]
    pub fidelity: f64,
    /// Distinct structures re-scored at the higher fidelity.
    #[arg(long, default_value_t = 15)]
    pub rescore: usize,
    /// Which genetic operators the search uses: the format's own, the IR's (constants as
    /// leaves, type-correct edits written back to the format), or both, half and half.
    #[arg(long, value_enum, default_value = "both")]
    pub operators: crate::evolve::engine::Operators,
    /// CMA-ES scores per structure for its constants (AMM programs).
    #[arg(long, default_value_t = 40)]
    pub tune_evaluations: usize,
    /// The held-out protocol the winner is chosen on.
    #[arg(long, value_enum, default_value = "haz")]
    pub transfer: ProtocolName,
    /// Its dataset (default: the protocol's own).
    #[arg(long, value_enum)]
    pub transfer_dataset: Option<DatasetName>,
    /// Its seeds (fresh: they start after the proxy's).
    #[arg(long, default_value_t = 5)]
    pub transfer_seeds: usize,
    /// Its training steps (default: the protocol's).
    #[arg(long)]
    pub transfer_steps: Option<usize>,
    /// Where the evidence and the winner go.
    #[arg(long)]
    pub out: PathBuf,
    /// The search's proxy protocol.
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

/// Run `ncpc discover`.
pub fn run(a: DiscoverArgs) -> Result<(), CliError> {
    let time = parse_duration(&a.time).context("--time")?;
    if !(0.05..=0.95).contains(&a.search_share)
        || a.population < 2
        || a.transfer_seeds == 0
        || !(1.0..=1000.0).contains(&a.fidelity)
    {
        return Err(anyhow::anyhow!(
            "--search-share must lie in [0.05, 0.95], --population be at least 2, --transfer-seeds at least 1 and --fidelity in [1, 1000]"
        )
        .into());
    }
    let dir = RunDir::create(&a.out)?;
    let proxy = a.protocol.resolve(|_| {})?;
    let transfer = held_out(
        &HeldOut {
            name: a.transfer,
            dataset: a.transfer_dataset,
            seeds: a.transfer_seeds,
            steps: a.transfer_steps,
        },
        &proxy.protocol,
        a.protocol.data_dir.as_deref(),
    )?;
    let mid = if a.fidelity > 1.0 {
        let same_data = || Prepared {
            protocol: proxy.protocol.at_fidelity(a.fidelity, false),
            data: proxy.data.clone(),
            notes: proxy.notes.clone(),
            opts: proxy.opts,
        };
        if a.protocol.idx_dir.is_some() || a.protocol.csv.is_some() {
            // The user's own data has no split to scale: the same data, trained longer.
            Some(same_data())
        } else {
            let root = data_root(a.protocol.data_dir.as_deref());
            let named = a.protocol.dataset.is_some();
            let p = proxy.protocol.at_fidelity(a.fidelity, true);
            match Prepared::load(p, &root, named, proxy.opts) {
                Ok(m) => Some(m),
                Err(e) => {
                    eprintln!(
                        "ncpc: the higher fidelity trains longer on the proxy's samples ({e})"
                    );
                    Some(same_data())
                }
            }
        }
    } else {
        None
    };
    let cfg = DiscoverConfig {
        evolve: EvolveConfig {
            format: a.format,
            population: a.population,
            seed: a.seed,
            max_len: a.format.default_size_limit(),
            operators: a.operators,
            ..EvolveConfig::default()
        },
        rescore: a.rescore,
        random: !a.from_mse,
        time,
        search_share: a.search_share,
        top: a.top,
        tune_evaluations: a.tune_evaluations,
    };
    let stop = super::stop::install("this step");
    let found = discover(&cfg, &proxy, mid.as_ref(), &transfer, &stop, &mut |line| {
        eprintln!("ncpc: {line}")
    });
    write(&dir, &found)?;
    print!("{}", summary(&found));
    Ok(())
}

/// A held-out protocol as the flags name it.
pub(super) struct HeldOut {
    pub name: ProtocolName,
    pub dataset: Option<DatasetName>,
    pub seeds: usize,
    pub steps: Option<usize>,
}

/// The held-out protocol ready to score: its preset with the given seeds (fresh: after the
/// proxy's), steps and dataset.
pub(super) fn held_out(
    h: &HeldOut,
    proxy: &Protocol,
    data_dir: Option<&std::path::Path>,
) -> Result<Prepared, CliError> {
    let mut p = Protocol::preset(h.name);
    p.seeds = h.seeds.max(1);
    p.seed = proxy.seed + proxy.seeds as u64 + 1000;
    if let Some(s) = h.steps {
        p.steps = Some(s);
    }
    if let Some(d) = h.dataset {
        p.dataset = d;
    }
    let root = data_root(data_dir);
    let prepared = Prepared::load(p, &root, h.dataset.is_some(), EvalOptions::default())
        .map_err(|e| anyhow::anyhow!("the held-out protocol's data: {e}"))?;
    for n in &prepared.notes {
        eprintln!("ncpc: held-out protocol: {n}");
    }
    Ok(prepared)
}

fn write(dir: &RunDir, d: &Discovery) -> Result<(), CliError> {
    dir.write_json("discover.json", d)?;
    if let Some(w) = d.winner.map(|i| &d.candidates[i]) {
        dir.write_text("winner.json", &format!("{}\n", w.genome))?;
        let f = crate::loss::compile_for_inputs(
            &w.genome,
            &crate::formats::CompileOptions::default(),
            32,
            10,
            true,
        )
        .map_err(anyhow::Error::from)?;
        if let Ok(py) = crate::explain::pytorch_module(&f, "DiscoveredLoss") {
            dir.write_text("winner.py", &py)?;
        }
        if let Ok(text) = crate::explain::formula(&f, crate::explain::Style::Plain) {
            dir.write_text("winner.txt", &text)?;
        }
    }
    Ok(())
}

fn summary(d: &Discovery) -> String {
    let mut out = format!(
        "{} candidates on {} in {:.0} s; {}tuning {:.0} s; held-out check on {} in {:.0} s\n",
        d.evaluations,
        d.proxy,
        d.seconds[0],
        d.fidelity
            .as_ref()
            .map_or(String::new(), |f| format!("re-scored at {f}; ")),
        d.seconds[1],
        d.transfer,
        d.seconds[2]
    );
    for b in &d.baselines {
        out += &format!("baseline {:<14} {:.4} ± {:.4}\n", b.name, b.mean, b.std);
    }
    for (k, c) in d.candidates.iter().enumerate() {
        out += &format!(
            "{} {:.4} ± {:.4} (proxy {:.4}{})  {}\n",
            if Some(k) == d.winner {
                "winner   "
            } else {
                "candidate"
            },
            c.transfer_mean,
            c.transfer_std,
            c.proxy_fitness,
            if c.fidelity_fitness.is_nan() {
                String::new()
            } else {
                format!(", fidelity {:.4}", c.fidelity_fitness)
            },
            c.genome
        );
    }
    out += &format!(
        "beats cross-entropy by more than the larger standard deviation: {}\n",
        if d.beats_cross_entropy { "yes" } else { "no" }
    );
    out
}
