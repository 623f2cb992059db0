//! `ncpc evolve`: search for better losses.

use super::CliError;
use super::evolve_config::{ConfigFile, parse_duration};
use super::input::{read_source, write_output};
use super::protocol_args::ProtocolArgs;
use crate::evolve::engine::{Checkpoint, Engine, EvolveConfig, HurdleConfig, Init, Stage};
use crate::evolve::genome::{Genome, GenomeFormat};
use crate::train::protocol::Protocol;
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
}

/// The checkpoint file in an output directory.
const CHECKPOINT: &str = "checkpoint.json";
/// The effective protocol, saved beside the results.
const PROTOCOL: &str = "protocol.json";

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CliError> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {} (is this an `ncpc evolve --out` directory?)",
            path.display()
        )
    })?;
    Ok(serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid checkpoint", path.display()))?)
}

fn write_json(dir: &Path, name: &str, v: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(v).map_err(anyhow::Error::from)?;
    write_atomically(dir, name, &text)
}

fn write_atomically(dir: &Path, name: &str, text: &str) -> Result<(), CliError> {
    let path = dir.join(name);
    // Write then rename, so a reader never sees half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Run `ncpc evolve`.
pub fn run(a: EvolveArgs) -> Result<(), CliError> {
    let file = match &a.config {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
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
    let out_dir = a.out.clone().or_else(|| a.resume.clone());
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let (mut engine, setup) = match &a.resume {
        Some(dir) => {
            let cp: Checkpoint = read_json(&dir.join(CHECKPOINT))?;
            let protocol: Protocol = read_json(&dir.join(PROTOCOL))?;
            let setup = a.protocol.resolve(|p| *p = protocol.clone())?;
            // A budget without --generations lifts the saved run's generation limit.
            let generations =
                generations.or((evaluations.is_some() || deadline.is_some()).then_some(usize::MAX));
            let mut engine = Engine::resume(cp, generations)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(CHECKPOINT).display()))?;
            if evaluations.is_some() {
                engine.config.max_evaluations = evaluations;
            }
            (engine, setup)
        }
        None => {
            // A name that is not a file is a known loss of the searched format.
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
                (None, Some(text)) => GenomeFormat::detect(text).with_context(|| {
                    format!("{}", a.from.as_deref().unwrap_or(Path::new("")).display())
                })?,
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
                (Some(p), Some(text)) => {
                    Some(Genome::from_text(format, text).with_context(|| {
                        format!("{} (read as a {format:?} genome)", p.display())
                    })?)
                }
                _ => None,
            };
            let setup = a.protocol.resolve_from(file.protocol.clone(), |_| {})?;
            let d = EvolveConfig::default();
            let percentile = a
                .hurdle_percentile
                .or(file.hurdle.as_ref().and_then(|h| h.percentile));
            let config = EvolveConfig {
                strategy,
                population,
                tournament,
                crossover_rate: a
                    .crossover_rate
                    .or(file.crossover_rate)
                    .unwrap_or(default_crossover),
                mutation_rate: a
                    .mutation_rate
                    .or(file.mutation_rate)
                    .unwrap_or(d.mutation_rate),
                generations: generations.unwrap_or(
                    if evaluations.is_some() || deadline.is_some() {
                        usize::MAX
                    } else {
                        5
                    },
                ),
                round: a.round.or(file.round).unwrap_or(d.round),
                seed: a.seed.or(file.seed).unwrap_or(d.seed),
                max_len: a
                    .max_len
                    .or(file.max_len)
                    .unwrap_or(format.default_size_limit())
                    .clamp(format.min_size_limit(), format.max_size_limit()),
                format,
                hall_of_fame: file.hall_of_fame.unwrap_or(d.hall_of_fame).max(1),
                max_evaluations: evaluations,
                parsimony: a.parsimony || file.parsimony.unwrap_or(false),
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
            (Engine::with_init(config, init), setup)
        }
    };
    let config = engine.config.clone();
    if let Some(dir) = &out_dir {
        write_json(dir, PROTOCOL, &setup.protocol)?;
        let text = ConfigFile::effective(&config, time.as_deref(), &setup.protocol).to_toml()?;
        write_atomically(dir, "config.toml", &text)?;
    }
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
        bar.set_position(e.generation as u64);
        bar.set_message(format!(
            "best {:.4}, {:.1} eval/s, FEC hits {:.0}%",
            e.best().map_or(f64::NAN, |b| b.fitness),
            e.evaluations as f64 / t0.elapsed().as_secs_f64().max(1e-9),
            100.0 * e.fec.hit_rate()
        ));
        if a.events {
            let event = serde_json::json!({
                "event": "generation",
                "generation": e.generation,
                "best": e.best().map(|b| b.fitness),
                "evaluations": e.evaluations,
                "trained": e.trained,
                "evaluations_per_second": e.evaluations as f64 / t0.elapsed().as_secs_f64().max(1e-9),
                "fec_hit_rate": e.fec.hit_rate(),
                "hurdle": e.hurdle,
                "seconds": t0.elapsed().as_secs_f64(),
            });
            bar.suspend(|| println!("{event}"));
        }
        if let Some(dir) = &out_dir
            && let Err(err) = write_json(dir, CHECKPOINT, &e.checkpoint())
        {
            save_error.get_or_insert(err);
        }
    });
    bar.finish_and_clear();
    if let Some(err) = save_error {
        return Err(err);
    }
    let seconds = t0.elapsed().as_secs_f64();
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
    };
    if let Some(dir) = &out_dir {
        write_json(dir, CHECKPOINT, &engine.checkpoint())?;
        write_json(dir, "result.json", &outcome)?;
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
            hurdle: config.hurdle.map(|_| engine.hurdle),
            seconds,
            formula: &formula,
        });
        std::fs::write(dir.join("report.html"), report)
            .with_context(|| format!("cannot write {}", dir.join("report.html").display()))?;
        if let Some(best) = engine.best() {
            std::fs::write(dir.join("best.json"), format!("{}\n", best.genome))
                .with_context(|| format!("cannot write {}", dir.join("best.json").display()))?;
        }
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
    let mut out = format!(
        "{} evaluations in {seconds:.1} s ({:.1}/s), {} trained; FEC: {} by IR hash, {} by fingerprint, {} degenerate rejected\n",
        engine.evaluations,
        outcome.evaluations_per_second,
        engine.trained,
        engine.fec.stats.hash_hits,
        engine.fec.stats.fingerprint_hits,
        engine.fec.stats.degenerate
    );
    if let Some(h) = config.hurdle {
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
    write_output(None, &out)
}
