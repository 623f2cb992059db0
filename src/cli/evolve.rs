//! `ncpc evolve`: search for better losses.

use super::CliError;
use super::evolve_config::{ConfigFile, parse_duration};
use super::input::{read_source, write_output};
use super::protocol_args::ProtocolArgs;
use crate::evolve::engine::{Engine, EvolveConfig, HurdleConfig, Init, Stage};
use crate::evolve::genome::{Genome, GenomeFormat};
use crate::evolve::run_dir::{CHECKPOINT, RunDir};
use crate::train::run::Prepared;
use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};

/// Arguments of `ncpc evolve`.
#[derive(Args, Debug)]
pub struct EvolveArgs {
    /// Genome format searched [default: the --from genome's, else amm].
    #[arg(long, value_enum)]
    pub format: Option<GenomeFormat>,
    /// Search strategy [default: steady-state].
    #[arg(long, value_enum)]
    pub strategy: Option<crate::evolve::engine::Strategy>,
    /// Population size [default: 50].
    #[arg(long)]
    pub population: Option<usize>,
    /// Generations (steady-state) or rounds (regularized); default 5, or no limit when
    /// --evaluations or --time is given (on --resume: the saved run's, or more).
    #[arg(long)]
    pub generations: Option<usize>,
    /// Stop after the generation in which this many candidates have been evaluated.
    #[arg(long)]
    pub evaluations: Option<u64>,
    /// Stop after the generation that runs past this much time, e.g. 90s, 30m, 2h.
    #[arg(long)]
    pub time: Option<String>,
    /// Tournament size [default: 10; 3 for generational].
    #[arg(long)]
    pub tournament: Option<usize>,
    /// Mutation probability: per instruction for AMM programs, per child for generational
    /// GP [default: 0.2].
    #[arg(long)]
    pub mutation_rate: Option<f64>,
    /// Probability that a child (a pair, in generational GP) comes from crossover
    /// [default: 0.7; 0.5 for generational].
    #[arg(long)]
    pub crossover_rate: Option<f64>,
    /// Size limit: instructions for AMM (default 20) and HAZ (default 32), tree height for
    /// DAML (default 90).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// The two-stage hurdle: a new candidate trains under the protocol's other seeds only if
    /// its first seed's score reaches this percentile of recent first-seed scores (0 turns it
    /// off). Default 50 for protocols scored as a mean over several seeds (standard), off for
    /// the others.
    #[arg(long)]
    pub hurdle_percentile: Option<f64>,
    /// Lexicographic parsimony pressure: in tournaments, of two members with the same
    /// fitness the smaller genome wins (bloat control; off by default, as in the public
    /// systems).
    #[arg(long)]
    pub parsimony: bool,
    /// Which genetic operators make children: the format's own (native, the default), edits
    /// of the typed IR written back to the format (ir: constants as leaves, type-correct
    /// insertions and swaps, subgraph crossover; AMM and DAML), or half and half (both).
    #[arg(long, value_enum)]
    pub operators: Option<crate::evolve::engine::Operators>,
    /// Children per round of regularized evolution [default: 16].
    #[arg(long)]
    pub round: Option<usize>,
    /// Seed of the search [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Settings from a TOML file (the keys are the flags' names, plus `max-len`,
    /// `hall-of-fame`, a `[hurdle]` table and a full `[protocol]` table, which replaces the
    /// --protocol preset); flags override it.
    /// `--out` writes the effective settings as config.toml, which this reads back.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print one JSON line per generation on stdout (generation, best, evaluations,
    /// evaluations per second, FEC hit rate, hurdle counts), then the result as one last
    /// JSON line (`"event": "result"`) instead of the table.
    #[arg(long)]
    pub events: bool,
    /// Start from this genome and mutants of it: a genome file, or a known loss by name
    /// (AMM: mse, mae, cross-entropy, bce, baikal; DAML: mse, bce, evolved-baseline; HAZ: mse,
    /// softmax-cross-entropy, sigmoid-bce) [default: mse].
    #[arg(long, conflicts_with = "random")]
    pub from: Option<PathBuf>,
    /// Start from random genomes instead of a seed genome (AMM and HAZ: 2 to 8
    /// instructions; DAML: half-and-half trees of height 1 to 3).
    #[arg(long)]
    pub random: bool,
    /// Write the effective config, hall of fame, statistics and best genome here, and a
    /// checkpoint after every generation and on Ctrl-C.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run saved in this directory (its protocol and settings; results go there
    /// unless --out says otherwise).
    #[arg(long, conflicts_with_all = ["from", "random"])]
    pub resume: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// The protocol that scores candidates.
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// After the search, re-score the best distinct programs (and cross-entropy and MSE) on
    /// this held-out protocol; result.json and the summary carry both figures.
    #[arg(long, value_enum)]
    pub transfer: Option<crate::train::protocol::ProtocolName>,
    /// The held-out protocol's seeds (fresh: after the search's).
    #[arg(long, default_value_t = 5)]
    pub transfer_seeds: usize,
    /// The held-out protocol's training steps (default: its own).
    #[arg(long)]
    pub transfer_steps: Option<usize>,
    /// Distinct programs of the hall of fame checked on the held-out protocol.
    #[arg(long, default_value_t = 3)]
    pub transfer_top: usize,
}

/// The outcome of a search, as written to `--out` and printed with `--json`.
#[derive(serde::Serialize)]
struct Outcome<'a> {
    config: &'a EvolveConfig,
    protocol: &'a crate::train::protocol::Protocol,
    best: Option<&'a crate::evolve::engine::Famous>,
    hall_of_fame: &'a [crate::evolve::engine::Famous],
    generation_stats: &'a [crate::evolve::engine::GenerationStats],
    evaluations: u64,
    trained: u64,
    fec: crate::evolve::fec::FecStats,
    fec_hit_rate: f64,
    hurdle: crate::evolve::engine::HurdleStats,
    seconds: f64,
    evaluations_per_second: f64,
    /// The held-out check (`--transfer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    transfer: Option<crate::evolve::discover::TransferCheck>,
}

/// The search's limits, from the flags over the config file.
struct Budget {
    time: Option<String>,
    deadline: Option<std::time::Duration>,
    evaluations: Option<u64>,
    generations: Option<usize>,
    population: usize,
    strategy: crate::evolve::engine::Strategy,
    tournament: usize,
    default_crossover: f64,
}

fn budget(a: &EvolveArgs, file: &ConfigFile) -> Result<Budget, CliError> {
    let time = a.time.clone().or_else(|| file.time.clone());
    let deadline = time
        .as_deref()
        .map(|t| parse_duration(t).context("--time"))
        .transpose()?;
    let evaluations = a.evaluations.or(file.evaluations);
    let generations = a.generations.or(file.generations);
    let population = a.population.or(file.population).unwrap_or(50);
    let strategy = a
        .strategy
        .or(file.strategy)
        .unwrap_or(EvolveConfig::default().strategy);
    let (default_tournament, default_crossover) = strategy.default_tournament_and_crossover();
    let tournament = a
        .tournament
        .or(file.tournament)
        .unwrap_or(default_tournament);
    if population < 2 || tournament == 0 || generations == Some(0) || evaluations == Some(0) {
        return Err(anyhow::anyhow!(
            "--population must be at least 2, --tournament, --generations and --evaluations at least 1"
        )
        .into());
    }
    for (name, v) in [
        ("--mutation-rate", a.mutation_rate.or(file.mutation_rate)),
        ("--crossover-rate", a.crossover_rate.or(file.crossover_rate)),
    ] {
        if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            return Err(anyhow::anyhow!("{name} must be between 0 and 1").into());
        }
    }
    Ok(Budget {
        time,
        deadline,
        evaluations,
        generations,
        population,
        strategy,
        tournament,
        default_crossover,
    })
}

/// The engine of a run saved in `dir`, with the budget's limits.
fn resumed(a: &EvolveArgs, dir: &RunDir, b: &Budget) -> Result<(Engine, Prepared), CliError> {
    let cp = dir.read_checkpoint()?;
    let protocol = dir.read_protocol()?;
    let setup = a.protocol.resolve(|p| *p = protocol.clone())?;
    // A budget without --generations lifts the saved run's generation limit.
    let generations = b
        .generations
        .or((b.evaluations.is_some() || b.deadline.is_some()).then_some(usize::MAX));
    let mut engine = Engine::resume(cp, generations)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.path().join(CHECKPOINT).display()))?;
    if b.evaluations.is_some() {
        engine.config.max_evaluations = b.evaluations;
    }
    Ok((engine, setup))
}

/// The genome `--from` names: a file, or a known loss of the searched format.
fn starting_genome(
    a: &EvolveArgs,
    file: &ConfigFile,
) -> Result<(GenomeFormat, Option<Genome>), CliError> {
    let known_name = a
        .from
        .as_deref()
        .filter(|p| !p.exists() && p.to_str().is_some_and(|s| !s.contains(['/', '.'])))
        .and_then(Path::to_str);
    let from_text = match known_name {
        Some(_) => None,
        None => a.from.as_deref().map(read_source).transpose()?,
    };
    let format = match (a.format.or(file.format), &from_text) {
        (Some(f), _) => f,
        (None, Some(text)) => GenomeFormat::detect(text)
            .with_context(|| format!("{}", a.from.as_deref().unwrap_or(Path::new("")).display()))?,
        (None, None) => GenomeFormat::Amm,
    };
    let seed = match (&a.from, &from_text) {
        (Some(_), None) => {
            let name = known_name.unwrap_or_default();
            Some(Genome::known(format, name).ok_or_else(|| {
                anyhow::anyhow!(
                    "--from {name}: no such file, nor a known {format:?} loss (known: {})",
                    Genome::known_names(format).join(", ")
                )
            })?)
        }
        (Some(p), Some(text)) => Some(
            Genome::from_text(format, text)
                .with_context(|| format!("{} (read as a {format:?} genome)", p.display()))?,
        ),
        _ => None,
    };
    Ok((format, seed))
}

/// A new engine from the flags and the config file.
fn fresh(a: &EvolveArgs, file: &ConfigFile, b: &Budget) -> Result<(Engine, Prepared), CliError> {
    let (format, seed) = starting_genome(a, file)?;
    let setup = a.protocol.resolve_from(file.protocol.clone(), |_| {})?;
    let d = EvolveConfig::default();
    let percentile = a
        .hurdle_percentile
        .or(file.hurdle.as_ref().and_then(|h| h.percentile));
    let config = EvolveConfig {
        strategy: b.strategy,
        population: b.population,
        tournament: b.tournament,
        crossover_rate: a
            .crossover_rate
            .or(file.crossover_rate)
            .unwrap_or(b.default_crossover),
        mutation_rate: a
            .mutation_rate
            .or(file.mutation_rate)
            .unwrap_or(d.mutation_rate),
        generations: b
            .generations
            .unwrap_or(if b.evaluations.is_some() || b.deadline.is_some() {
                usize::MAX
            } else {
                5
            }),
        round: a.round.or(file.round).unwrap_or(d.round),
        seed: a.seed.or(file.seed).unwrap_or(d.seed),
        max_len: a
            .max_len
            .or(file.max_len)
            .unwrap_or(format.default_size_limit())
            .clamp(format.min_size_limit(), format.max_size_limit()),
        format,
        hall_of_fame: file.hall_of_fame.unwrap_or(d.hall_of_fame).max(1),
        max_evaluations: b.evaluations,
        parsimony: a.parsimony || file.parsimony.unwrap_or(false),
        operators: a.operators.or(file.operators).unwrap_or_default(),
        hurdle: match percentile {
            Some(p) if p > 0.0 && setup.splits_by_seed() => Some(file.hurdle_config(p)),
            Some(_) => None,
            None => setup
                .splits_by_seed()
                .then(|| file.hurdle_config(HurdleConfig::default().percentile)),
        },
    };
    let init = match seed {
        _ if a.random => Init::Random,
        Some(genome) => Init::From(genome),
        None => Init::From(Genome::seed_mse(format)),
    };
    Ok((Engine::with_init(config, init), setup))
}

/// Run the search to its budget (or Ctrl-C), with a progress bar, `--events` lines and a
/// checkpoint in `dir` after every generation.
fn search(
    a: &EvolveArgs,
    engine: &mut Engine,
    setup: &Prepared,
    deadline: Option<std::time::Duration>,
    dir: Option<&RunDir>,
) -> Result<(), CliError> {
    let config = engine.config.clone();
    let t0 = std::time::Instant::now();
    let bar = indicatif::ProgressBar::new(if config.generations == usize::MAX {
        0
    } else {
        config.generations as u64
    });
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} gen {pos}/{len} [{bar:30}] {msg} {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let score = |items: &[(&str, Stage)]| setup.score_batch(items);
    let stop = super::stop::install("this generation, with a checkpoint");
    if let Some(limit) = deadline {
        // The time budget ends the run as Ctrl-C does: after the current generation.
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    let mut save_error = None;
    engine.run(&score, &stop, &mut |e| {
        let rate = e.evaluations as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(e.generation as u64);
        bar.set_message(format!(
            "best {:.4}, {rate:.1} eval/s, FEC hits {:.0}%",
            e.best().map_or(f64::NAN, |b| b.fitness),
            100.0 * e.fec.hit_rate()
        ));
        if a.events {
            let event = serde_json::json!({
                "event": "generation",
                "generation": e.generation,
                "best": e.best().map(|b| b.fitness),
                "evaluations": e.evaluations,
                "trained": e.trained,
                "evaluations_per_second": rate,
                "fec_hit_rate": e.fec.hit_rate(),
                "hurdle": e.hurdle,
                "seconds": t0.elapsed().as_secs_f64(),
            });
            bar.suspend(|| println!("{event}"));
        }
        if let Some(dir) = dir
            && let Err(err) = dir.save_checkpoint(&e.checkpoint())
        {
            save_error.get_or_insert(err);
        }
    });
    bar.finish_and_clear();
    match save_error {
        Some(err) => Err(err.into()),
        None => Ok(()),
    }
}

/// The results in `dir`: the last checkpoint, `result.json`, `report.html`, `best.json`.
fn write_results(
    dir: &RunDir,
    engine: &Engine,
    outcome: &Outcome,
    setup: &Prepared,
) -> Result<(), CliError> {
    dir.save_checkpoint(&engine.checkpoint())?;
    dir.write_json("result.json", outcome)?;
    let protocol_name = format!("{:?}", setup.protocol.name);
    let formula = |genome: &str| {
        crate::loss::compile_for_inputs(
            genome,
            &crate::formats::CompileOptions::default(),
            32,
            10,
            true,
        )
        .map_err(|e| e.to_string())
        .and_then(|f| {
            crate::explain::formula(&f, crate::explain::Style::Plain).map_err(|e| e.to_string())
        })
        .unwrap_or_else(|why| format!("(no formula: {why})"))
    };
    let report = crate::evolve::report::html(&crate::evolve::report::ReportInput {
        protocol: &protocol_name,
        stats: &engine.stats,
        hall_of_fame: &engine.hall_of_fame,
        evaluations: engine.evaluations,
        trained: engine.trained,
        fec: engine.fec.stats,
        hurdle: engine.config.hurdle.map(|_| engine.hurdle),
        seconds: outcome.seconds,
        formula: &formula,
        transfer: outcome.transfer.as_ref(),
        curves: &accuracy_curves(engine, setup),
    });
    dir.write_text("report.html", &report)?;
    if let Some(best) = engine.best() {
        dir.write_text("best.json", &format!("{}\n", best.genome))?;
    }
    Ok(())
}

/// The best genome's and the baselines' validation accuracy during training, under the
/// search's protocol with a curve point about every twentieth of the run (mean over seeds).
fn accuracy_curves(engine: &Engine, setup: &Prepared) -> Vec<(String, Vec<(f64, f64)>)> {
    let Some(best) = engine.best() else {
        return Vec::new();
    };
    let mut p = setup.protocol.clone();
    p.baselines = true;
    let steps = p.steps_for(setup.data.train_y.len());
    p.curve_every = (steps / 20).max(1);
    let g = crate::train::run::Genome {
        name: "best".into(),
        text: best.genome.clone(),
        opts: crate::formats::CompileOptions::default(),
    };
    let Ok(report) = crate::train::run::evaluate(
        &g,
        &p,
        &setup.data,
        crate::train::run::EvalOptions::default(),
        Vec::new(),
        &|| {},
    ) else {
        return Vec::new();
    };
    std::iter::once(&report.candidate)
        .chain(&report.baselines)
        .map(|s| {
            let pts = s
                .curve
                .iter()
                .map(|c| (c.step as f64, c.accuracy))
                .collect();
            (s.name.clone(), pts)
        })
        .collect()
}

/// The human-readable summary of a finished search.
fn summary_text(engine: &Engine, outcome: &Outcome, setup: &Prepared) -> String {
    let mut out = format!(
        "{} evaluations in {:.1} s ({:.1}/s), {} trained; FEC: {} by IR hash, {} by fingerprint, {} degenerate rejected\n",
        engine.evaluations,
        outcome.seconds,
        outcome.evaluations_per_second,
        engine.trained,
        engine.fec.stats.hash_hits,
        engine.fec.stats.fingerprint_hits,
        engine.fec.stats.degenerate
    );
    if let Some(h) = engine.config.hurdle {
        let n = setup.protocol.seeds;
        out += &format!(
            "hurdle (first seed at or above the {}th percentile): {} passed, {} stopped and {} failed after 1 of {n} seeds ({} seed runs saved)\n",
            h.percentile,
            engine.hurdle.passed,
            engine.hurdle.stopped,
            engine.hurdle.failed,
            (engine.hurdle.stopped + engine.hurdle.failed) * (n as u64 - 1)
        );
    }
    for s in &engine.stats {
        out += &format!(
            "gen {:>3}  best {:.4}  median {:.4}  mean {:.4}\n",
            s.generation, s.best, s.median, s.avg
        );
    }
    out += &format!("\nhall of fame ({:?} protocol):\n", setup.protocol.name);
    for f in &engine.hall_of_fame {
        out += &format!("{:.4}  {}\n", f.fitness, f.genome);
    }
    if let Some(t) = &outcome.transfer {
        out += &format!(
            "\nheld-out check ({} protocol, accuracy mean ± std over seeds):\n",
            t.protocol
        );
        for b in &t.baselines {
            out += &format!("baseline {:<14} {:.4} ± {:.4}\n", b.name, b.mean, b.std);
        }
        for c in &t.candidates {
            out += &format!(
                "{:.4} ± {:.4} (search {:.4})  {}\n",
                c.transfer_mean, c.transfer_std, c.proxy_fitness, c.genome
            );
        }
        out += &format!(
            "the best beats cross-entropy by more than the larger standard deviation: {}\n",
            if t.beats_cross_entropy { "yes" } else { "no" }
        );
    }
    out
}

/// Run `ncpc evolve`.
pub fn run(a: EvolveArgs) -> Result<(), CliError> {
    let file = match &a.config {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
    let b = budget(&a, &file)?;
    let dir = a
        .out
        .as_deref()
        .or(a.resume.as_deref())
        .map(RunDir::create)
        .transpose()?;
    let (mut engine, setup) = match &a.resume {
        Some(r) => resumed(&a, &RunDir::create(r)?, &b)?,
        None => fresh(&a, &file, &b)?,
    };
    if let Some(d) = &dir {
        d.save_protocol(&setup.protocol)?;
        let text =
            ConfigFile::effective(&engine.config, b.time.as_deref(), &setup.protocol).to_toml()?;
        d.write_text("config.toml", &text)?;
    }
    let t0 = std::time::Instant::now();
    search(&a, &mut engine, &setup, b.deadline, dir.as_ref())?;
    let seconds = t0.elapsed().as_secs_f64();
    let transfer = match a.transfer {
        None => None,
        Some(name) => {
            let prepared = super::discover::held_out(
                &super::discover::HeldOut {
                    name,
                    dataset: None,
                    seeds: a.transfer_seeds,
                    steps: a.transfer_steps,
                },
                &setup.protocol,
                a.protocol.data_dir.as_deref(),
            )?;
            let mut picked: Vec<crate::evolve::discover::Candidate> = Vec::new();
            for f in &engine.hall_of_fame {
                if picked.len() >= a.transfer_top.max(1) {
                    break;
                }
                if f.fitness.is_finite() && !picked.iter().any(|c| c.genome == f.genome) {
                    picked.push(crate::evolve::discover::candidate(
                        f.genome.clone(),
                        f.fitness,
                        None,
                    ));
                }
            }
            Some(crate::evolve::discover::transfer_check(
                picked,
                &prepared,
                &mut |line| eprintln!("ncpc: {line}"),
            ))
        }
    };
    let config = engine.config.clone();
    let outcome = Outcome {
        config: &config,
        protocol: &setup.protocol,
        best: engine.best(),
        hall_of_fame: &engine.hall_of_fame,
        generation_stats: &engine.stats,
        evaluations: engine.evaluations,
        trained: engine.trained,
        fec: engine.fec.stats,
        fec_hit_rate: engine.fec.hit_rate(),
        hurdle: engine.hurdle,
        seconds,
        evaluations_per_second: engine.evaluations as f64 / seconds.max(1e-9),
        transfer,
    };
    if let Some(d) = &dir {
        write_results(d, &engine, &outcome, &setup)?;
    }
    if a.events {
        // The stream stays one JSON object per line: the result is its last event.
        let mut event = serde_json::to_value(&outcome).map_err(anyhow::Error::from)?;
        if let Some(map) = event.as_object_mut() {
            map.insert("event".into(), serde_json::json!("result"));
        }
        return write_output(None, &format!("{event}\n"));
    }
    if a.json {
        let text = serde_json::to_string_pretty(&outcome).map_err(anyhow::Error::from)?;
        return write_output(None, &format!("{text}\n"));
    }
    write_output(None, &summary_text(&engine, &outcome, &setup))
}
