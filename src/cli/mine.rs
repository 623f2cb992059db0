//! `ncpc mine`: mine on a pool, or on an in-process pool when none is named (solo mining).

use super::CliError;
use super::key::{KeySource, default_key_file};
use super::protocol_args::ProtocolArgs;
use crate::evolve::engine::{EvolveConfig, Strategy};
use crate::identity::Identity;
use crate::mine::{CycleProgress, Miner, MinerConfig, summary};
use crate::pool::client::PoolClient;
use crate::pool::protocol::TaskType;
use crate::pool::server::DbLocation;
use crate::train::protocol::ProtocolName;
use clap::Args;
use std::time::Duration;

/// Arguments of `ncpc mine`.
#[derive(Args, Debug)]
pub struct MineArgs {
    /// The pool's URL (`--api-url` and `--pool_url` work too). Without it, ncpc starts a pool
    /// in this process and mines on it (solo mining).
    #[arg(long, alias = "api-url", alias = "pool_url")]
    pub pool_url: Option<String>,
    /// The first task type.
    #[arg(long, value_enum, default_value = "evolve")]
    pub task_type: TaskType,
    /// Alternate between evolve and evaluate tasks.
    #[arg(long)]
    pub alternate: bool,
    /// Cycles to run; 0 runs until stopped (Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub cycles: u64,
    /// Seconds between cycles.
    #[arg(long, default_value_t = 5.0)]
    pub delay: f64,
    /// Evolution: population size (AMM's default).
    #[arg(long, default_value_t = 200)]
    pub population: usize,
    /// Evolution: generations per evolve task (AMM's default).
    #[arg(long, default_value_t = 10)]
    pub generations: usize,
    /// Evolution: search strategy.
    #[arg(long, value_enum, default_value = "steady-state")]
    pub strategy: Strategy,
    /// The solo pool's database: a SQLite path or a Postgres URL, as `ncpc pool serve --db`
    /// takes (default: in memory, gone when mining stops).
    #[arg(long)]
    pub solo_db: Option<DbLocation>,
    /// The key.
    #[command(flatten)]
    pub key: KeySource,
    /// How evaluate tasks are scored: `amm-exact` as AMM's Python client scores them (torch's
    /// random streams, weights carried over within a task, AMM's score cache and failure
    /// encodings), so scores agree with AMM miners'; `ncpc`: each function on its own under
    /// `--protocol`. Default: amm-exact with `--pool-url`, ncpc on the solo pool (whose own
    /// scorer is ncpc's deterministic protocol).
    #[arg(long, value_enum)]
    pub scoring: Option<Scoring>,
    /// Serve the miner's page (address, balance, progress, history; pause/resume and settings,
    /// guarded by a token printed here) on ADDR (default 127.0.0.1 and a free port).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    pub ui: Option<std::net::SocketAddr>,
    /// The protocol that scores losses (AMM's by default, as the pool expects).
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

/// How `ncpc mine` scores evaluate tasks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scoring {
    /// As AMM's client: `--protocol amm-exact` over the task's functions in order.
    AmmExact,
    /// ncpc's own: each function scored on its own under `--protocol`.
    Ncpc,
}

/// The miner's identity: the key flags, else the default key file, else a new key written
/// there (0600) with its address printed.
fn identity(source: &KeySource) -> Result<Identity, CliError> {
    if let Some(id) = source.load()? {
        return Ok(id);
    }
    let path = default_key_file();
    if path.exists() {
        return Ok(Identity::from_seed_file(&path)?);
    }
    let id = Identity::generate(&path)?;
    eprintln!(
        "ncpc: made a new miner key {} (its mnemonic is in {}; keep it secret)",
        id.ss58(),
        path.display()
    );
    Ok(id)
}

/// Run `ncpc mine`.
pub fn run(a: MineArgs) -> Result<(), CliError> {
    if !(a.delay.is_finite() && a.delay >= 0.0) {
        return Err(anyhow::anyhow!("--delay must be a number of seconds, not {}", a.delay).into());
    }
    if a.population < 2 || a.generations == 0 {
        return Err(anyhow::anyhow!(
            "--population must be at least 2 and --generations at least 1"
        )
        .into());
    }
    let mut protocol = a.protocol.clone();
    // The pool's scores are AMM's unless the user asks for another protocol.
    if !std::env::args().any(|x| x == "--protocol" || x.starts_with("--protocol=")) {
        protocol.protocol = ProtocolName::Amm;
    }
    let prepared = protocol.resolve(|_| {})?;
    for n in &prepared.notes {
        eprintln!("ncpc: note: {n}");
    }
    let id = identity(&a.key)?;
    let solo;
    let url = match &a.pool_url {
        Some(u) => u.clone(),
        None => {
            let scorer_protocol = prepared.clone();
            let scorer =
                crate::pool::server::LocalScorer(std::sync::Arc::new(move |text: &str| {
                    scorer_protocol.score(text)
                }));
            solo = start_solo_pool(a.solo_db.clone(), scorer)?;
            eprintln!(
                "ncpc: no --pool-url: mining solo on an in-process pool at {}",
                solo.url()
            );
            solo.url().to_string()
        }
    };
    let client = PoolClient::new(&url, id)?;
    eprintln!("ncpc: miner {} on {url}", client.address());
    // A spinner on stderr while a cycle runs (hidden when stderr is not a terminal), with
    // the cycle's progress; one summary line per cycle on stdout.
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let cycle = std::sync::atomic::AtomicU64::new(0);
    let progress = |p: CycleProgress| {
        let n = cycle.load(std::sync::atomic::Ordering::Relaxed);
        bar.set_message(format!("cycle {n}: {}", p.describe()));
    };
    let scoring = a.scoring.unwrap_or(
        if a.pool_url.is_some() || a.protocol.protocol == ProtocolName::AmmExact {
            Scoring::AmmExact
        } else {
            Scoring::Ncpc
        },
    );
    let amm_exact = match scoring {
        Scoring::AmmExact => Some(std::sync::Mutex::new(
            crate::train::amm_exact::AmmExact::new(crate::loss::Backend::Jit)
                .map_err(anyhow::Error::from)?,
        )),
        Scoring::Ncpc => None,
    };
    eprintln!(
        "ncpc: evaluate tasks scored {}",
        match scoring {
            Scoring::AmmExact => "as AMM's client scores them (--scoring amm-exact)",
            Scoring::Ncpc => "by ncpc's protocol, each function on its own (--scoring ncpc)",
        }
    );
    let control = std::sync::Arc::new(crate::mine_control::MinerControl::new(
        crate::mine_control::Settings {
            task_type: a.task_type,
            alternate: a.alternate,
            delay: Duration::from_secs_f64(a.delay),
        },
    ));
    let page = match a.ui {
        None => None,
        Some(addr) => {
            let ui = crate::mine_ui::MinerUi::start(addr, control.clone(), &client.address(), &url)
                .map_err(|e| CliError {
                    code: 1,
                    err: anyhow::anyhow!(e),
                })?;
            eprintln!("ncpc: miner page at {}#token={}", ui.url, ui.token);
            Some(ui)
        }
    };
    let progress = |p: CycleProgress| {
        progress(p.clone());
        if let Some(ui) = &page {
            ui.progress(&p);
        }
    };
    let miner = Miner {
        amm_exact: amm_exact.as_ref(),
        control: page.as_ref().map(|_| &*control),
        progress: &progress,
        client: &client,
        prepared: &prepared,
        config: MinerConfig {
            task_type: a.task_type,
            alternate: a.alternate,
            cycles: a.cycles,
            delay: Duration::from_secs_f64(a.delay),
            retries: 3,
            evolve: {
                let (tournament, crossover_rate) = a.strategy.default_tournament_and_crossover();
                EvolveConfig {
                    strategy: a.strategy,
                    population: a.population,
                    generations: a.generations,
                    tournament,
                    crossover_rate,
                    ..EvolveConfig::default()
                }
            },
        },
    };
    let stop = super::stop::install("the current task");
    miner.register().map_err(|e| {
        anyhow::anyhow!(
            "cannot register with the pool: {e}\n  is the pool at {url} running and reachable?"
        )
    })?;
    bar.enable_steady_tick(Duration::from_millis(120));
    let result = miner.run(
        &stop,
        &mut |n, t| {
            if let Some(ui) = &page {
                ui.cycle_started(n, t);
            }
            cycle.store(n, std::sync::atomic::Ordering::Relaxed);
            bar.reset_elapsed();
            bar.set_message(match t {
                TaskType::Evolve => format!("cycle {n}: evolving"),
                TaskType::Evaluate => format!("cycle {n}: evaluating"),
            })
        },
        &mut |n, outcome, secs| {
            let line = summary(n, outcome, secs);
            if let Some(ui) = &page {
                ui.cycle_finished(n, outcome, secs, &line);
                if let Ok(b) = client.balance()
                    && let Some(b) = b["balance"].as_f64()
                {
                    ui.balance(b);
                }
            }
            bar.suspend(|| println!("{line}"))
        },
        &mut |e| {
            if let Some(ui) = &page {
                ui.error(&e.to_string());
            }
            bar.suspend(|| eprintln!("ncpc: warning: {e}; retrying"))
        },
    );
    bar.finish_and_clear();
    match result {
        Ok(n) => {
            if let Ok(b) = client.balance() {
                eprintln!("ncpc: {n} cycle(s) done; balance {} Alpha", b["balance"]);
            }
            Ok(())
        }
        Err(e) => Err(CliError {
            code: 1,
            err: anyhow::anyhow!("mining stopped: {e}"),
        }),
    }
}

/// Start the in-process pool for solo mining, on a free loopback port. The pool confirms
/// each new function itself with `scorer` (this miner's protocol, deterministic): with one
/// miner, no three distinct evaluators exist, and a pool that never confirms would pay
/// nothing (docs/pool.md, "Solo pools").
fn start_solo_pool(
    db: Option<DbLocation>,
    scorer: crate::pool::server::LocalScorer,
) -> Result<crate::pool::server::RunningPool, CliError> {
    let config = crate::pool::server::ServerConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        db: db.unwrap_or(DbLocation::Memory),
        // Only this miner uses it: no rate limit worth the name.
        rate_burst: 10_000,
        rate_per_second: 10_000.0,
        local_scorer: Some(scorer),
        ..crate::pool::server::ServerConfig::default()
    };
    crate::pool::server::spawn_local(config).map_err(|e| CliError {
        code: 1,
        err: e.context("cannot start the in-process pool"),
    })
}
