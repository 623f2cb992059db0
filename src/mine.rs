//! The mining loop: register, then each cycle reset the active task, request a task,
//! compute it (evolve from the task's parent, or evaluate its functions under the AMM
//! protocol), and submit, with retries and backoff, as the AMM client does.

use crate::component::ComponentKind;
use crate::evolve::amm_ops::{Code, from_program};
use crate::evolve::engine::{Engine, EvolveConfig, Init};
use crate::pool::client::{ClientError, PoolClient, with_retries};
use crate::pool::protocol::{
    Criteria, Evaluation, EvolutionMetadata, LOW_FITNESS_VALUE, ParentRef, TaskBatch, TaskFunction,
    TaskType,
};
use crate::train::run::Prepared;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod activation_evolve;
mod report;

pub use report::{CycleOutcome, CycleProgress, summary};

/// Errors of a mining cycle.
#[derive(Debug, thiserror::Error)]
pub enum MineError {
    /// Talking to the pool failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The pool has no task of this type for the miner now (it answered 404 to the request).
    #[error("the pool has no {0:?} task for this miner now")]
    NoTask(TaskType),
    /// The pool sent a task ncpc cannot work on.
    #[error("batch {batch}: {msg}")]
    BadTask {
        /// The batch id.
        batch: String,
        /// What is wrong.
        msg: String,
    },
    /// The miner could not set up what a task needs.
    #[error("{0}")]
    Setup(String),
}

/// How to mine.
#[derive(Clone, Debug)]
pub struct MinerConfig {
    /// The first cycle's task type.
    pub task_type: TaskType,
    /// Switch between evolve and evaluate after each cycle.
    pub alternate: bool,
    /// Cycles to run (0: until stopped).
    pub cycles: u64,
    /// Pause between cycles.
    pub delay: Duration,
    /// Attempts per pool call and per cycle.
    pub retries: u32,
    /// Evolution settings for evolve tasks (the seed is mixed with the batch id).
    pub evolve: EvolveConfig,
}

/// The component type of a task this miner takes, or why it gives the task back. Losses and
/// activations of either kind of task; optimizer evaluate tasks; activation and optimizer
/// evaluate tasks only when scoring as AMM does (the only scoring ncpc has for them).
fn taken_component(
    component_type: &str,
    task: TaskType,
    amm_exact: bool,
) -> Result<ComponentKind, String> {
    let kind = ComponentKind::from_task(component_type)?;
    match (kind, task) {
        (ComponentKind::Loss | ComponentKind::Activation, TaskType::Evolve) => Ok(kind),
        (ComponentKind::Loss, _) => Ok(kind),
        (_, TaskType::Evolve) => Err(format!(
            "{kind} evolve tasks are not taken (AMM scores every optimizer 0.0, so no evolved optimizer can beat its parents)"
        )),
        (_, TaskType::Evaluate) if !amm_exact => Err(format!(
            "{kind} evaluate tasks are scored only as AMM scores them: mine with --scoring amm-exact"
        )),
        (_, TaskType::Evaluate) => Ok(kind),
    }
}

fn batch_name(b: &TaskBatch) -> String {
    match &b.batch_id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A score as AMM sends it: -inf and NaN become [`LOW_FITNESS_VALUE`].
fn wire(x: f64) -> f64 {
    if x.is_finite() || x == f64::INFINITY {
        x
    } else {
        LOW_FITNESS_VALUE
    }
}

/// An evaluate task's records as AMM's client makes them, scored by `scorer` in task order
/// (weights carrying over): a function that does not deserialize gets no record (said on
/// stderr), an exception 0.0 with all criteria 0, -inf and NaN -99999.
fn amm_exact_evaluations(
    scorer: &std::sync::Mutex<crate::train::amm_exact::AmmExact>,
    batch: &TaskBatch,
    kind: ComponentKind,
) -> Vec<Evaluation> {
    let values: Vec<serde_json::Value> =
        batch.functions.iter().map(|f| f.function.clone()).collect();
    let outcomes = match scorer.lock() {
        Ok(mut s) => s.evaluate_component(kind, &values),
        Err(poisoned) => poisoned.into_inner().evaluate_component(kind, &values),
    };
    let mut out = Vec::new();
    for (f, o) in batch.functions.iter().zip(outcomes) {
        if let crate::train::amm_exact::Outcome::Skipped { reason } = &o {
            eprintln!(
                "ncpc: function {} is not AMM genetic code ({reason}); skipped, as AMM skips it",
                f.id
            );
        }
        if let (Some(score), Some((accuracy, stability, efficiency))) =
            (o.wire_score(), o.wire_criteria())
        {
            out.push(Evaluation {
                function_id: f.id.clone(),
                score,
                criteria: Criteria {
                    accuracy,
                    stability,
                    efficiency,
                },
            });
        }
    }
    out
}

/// A miner: a pool client, a protocol and settings.
pub struct Miner<'a> {
    /// The pool client.
    pub client: &'a PoolClient,
    /// The protocol evaluate tasks (and evolution fitness) use.
    pub prepared: &'a Prepared,
    /// Settings.
    pub config: MinerConfig,
    /// Hears how far each cycle has got (a progress bar; `&|_| {}` for none).
    pub progress: &'a (dyn Fn(CycleProgress) + Sync),
    /// Score evaluate tasks as AMM's client does (`--scoring amm-exact`): one scorer for the
    /// whole mining run, as one AMM miner process, tasks in the order they come. `None`:
    /// `prepared` scores each function on its own.
    pub amm_exact: Option<&'a std::sync::Mutex<crate::train::amm_exact::AmmExact>>,
    /// Pause, resume and settings changed while mining (`ncpc mine --ui`); `None`: the
    /// settings of `config` throughout.
    pub control: Option<&'a crate::mine_control::MinerControl>,
}

impl Miner<'_> {
    fn retry<T>(&self, op: impl FnMut() -> Result<T, ClientError>) -> Result<T, ClientError> {
        with_retries(self.config.retries.max(1), Duration::from_millis(500), op)
    }

    /// Register (again is fine).
    pub fn register(&self) -> Result<serde_json::Value, MineError> {
        Ok(self.retry(|| self.client.register())?)
    }

    /// Request a task; a pool that says the miner already has one gets reset_active first.
    fn request(&self, t: TaskType) -> Result<TaskBatch, MineError> {
        let _ = self.client.reset_active();
        let answer = match self.retry(|| self.client.request_task(t)) {
            Err(ClientError::ActiveTask { .. }) => {
                self.retry(|| self.client.reset_active())?;
                self.retry(|| self.client.request_task(t))
            }
            other => other,
        };
        match answer {
            Err(ClientError::Status { status: 404, .. }) => Err(MineError::NoTask(t)),
            other => Ok(other?),
        }
    }

    /// One cycle of `t`.
    pub fn cycle(&self, t: TaskType, stop: &AtomicBool) -> Result<CycleOutcome, MineError> {
        let batch = self.request(t)?;
        let name = batch_name(&batch);
        let kind = taken_component(&batch.component_type, t, self.amm_exact.is_some());
        if let Err(reason) = kind {
            // Not ours to do: give it back at once, for a miner that takes this type.
            let _ = self.client.reset_active();
            return Ok(CycleOutcome::Released {
                batch: name,
                reason,
            });
        }
        let outcome = match t {
            TaskType::Evolve => self.evolve(&batch, &name, kind.unwrap_or_default(), stop),
            TaskType::Evaluate => self.evaluate(&batch, &name, kind.unwrap_or_default(), stop),
        };
        if matches!(
            outcome,
            Ok(CycleOutcome::Abandoned { .. }) | Err(MineError::BadTask { .. })
        ) {
            // Give the task back rather than hold it until its lease runs out.
            let _ = self.client.reset_active();
        }
        outcome
    }

    fn evolve(
        &self,
        batch: &TaskBatch,
        name: &str,
        kind: ComponentKind,
        stop: &AtomicBool,
    ) -> Result<CycleOutcome, MineError> {
        let bad = |msg: String| MineError::BadTask {
            batch: name.to_string(),
            msg,
        };
        if batch.functions.is_empty() {
            return Err(bad("the pool sent no parent function".into()));
        }
        let mut programs = Vec::new();
        for f in &batch.functions {
            let program = f
                .program()
                .map_err(|e| bad(format!("parent {}: {e}", f.id)))?;
            programs.push((f, program));
        }
        // Different batches explore differently; the same batch is reproducible.
        let mut config = self.config.evolve.clone();
        config.seed ^= name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        config.format = crate::evolve::genome::GenomeFormat::Amm;
        // Score the parents first, as AMM's client does: the evolved function is submitted
        // only if it beats the best of them, and evolution starts from that best one.
        let search = match kind {
            ComponentKind::Activation => self.search_activation(&programs, &config, stop)?,
            _ => self.search_loss(&programs, &config, stop),
        };
        let Some(search) = search else {
            return Ok(CycleOutcome::Abandoned {
                batch: name.to_string(),
            });
        };
        let parent = programs[search.parent].0;
        if !(search.fitness.is_finite() && search.fitness > search.parent_score) {
            let reason = if search.fitness.is_finite() {
                format!(
                    "the best found ({:.4}) does not beat the best parent ({:.4})",
                    search.fitness, search.parent_score
                )
            } else {
                "every candidate failed".to_string()
            };
            // Give the task back at once rather than hold it until its lease ends.
            let _ = self.client.reset_active();
            return Ok(CycleOutcome::NotSubmitted {
                batch: name.to_string(),
                reason,
                evaluations: search.evaluations,
            });
        }
        let metadata = EvolutionMetadata {
            fitness: crate::pool::protocol::LenientF64(search.fitness),
            generations: search.generations,
            population_size: config.population as u64,
            parent_id: parent.id.clone(),
            genetic_code_length: serde_json::from_str::<Code>(&search.genome)
                .map_or(0, |c| c.len() as u64),
            total_evaluations: search.evaluations,
            generation_stats: search.stats,
            extra: [
                ("trained".to_string(), serde_json::json!(search.trained)),
                (
                    "completed".to_string(),
                    serde_json::json!(!stop.load(Ordering::Relaxed)),
                ),
                (
                    "miner".to_string(),
                    serde_json::json!(concat!("ncpc ", env!("CARGO_PKG_VERSION"))),
                ),
            ]
            .into_iter()
            .collect(),
        };
        let parents = vec![ParentRef {
            id: parent.id.clone(),
        }];
        let answer = self.retry(|| {
            self.client.submit_evolution(
                name,
                search.genome.clone(),
                parents.clone(),
                metadata.clone(),
            )
        })?;
        Ok(CycleOutcome::Evolved {
            batch: name.to_string(),
            fitness: search.fitness,
            evaluations: search.evaluations,
            trained: search.trained,
            answer,
        })
    }

    /// A loss evolve task: the parents scored by the miner's protocol, then the evolution
    /// engine from the best. `None` when stopped before anything was found.
    fn search_loss(
        &self,
        programs: &[(&TaskFunction, crate::formats::amm::Program)],
        config: &EvolveConfig,
        stop: &AtomicBool,
    ) -> Option<Searched> {
        let scores: Vec<f64> = programs
            .iter()
            .map(|(_, p)| self.prepared.score(&crate::formats::amm::to_json(p)))
            .collect();
        let best_at = best_index(&scores);
        let code = from_program(programs[best_at].1.clone());
        let mut engine = Engine::with_init(
            config.clone(),
            Init::From(crate::evolve::genome::Genome::Amm(code)),
        );
        let score =
            |items: &[(&str, crate::evolve::engine::Stage)]| self.prepared.score_batch(items);
        let generations = config.generations;
        engine.run(&score, stop, &mut |e| {
            (self.progress)(CycleProgress::Evolving {
                generation: e.generation,
                generations,
                best: e.best().map_or(f64::NEG_INFINITY, |b| b.fitness),
                evaluations: e.evaluations,
            })
        });
        if stop.load(Ordering::Relaxed) && engine.best().is_none() {
            return None;
        }
        let best = engine
            .best()
            .cloned()
            .unwrap_or_else(|| crate::evolve::engine::Famous {
                genome: engine.population[0].genome.to_text(),
                fitness: f64::NEG_INFINITY,
                found_at: 0,
            });
        Some(Searched {
            parent: best_at,
            parent_score: scores[best_at],
            genome: best.genome,
            fitness: best.fitness,
            evaluations: engine.evaluations,
            trained: engine.trained,
            generations: engine.generation as u64,
            stats: serde_json::to_value(&engine.stats).unwrap_or_default(),
        })
    }

    /// An activation evolve task: parents and candidates each scored as the first function
    /// of a fresh AMM activation task (mine/activation_evolve.rs).
    fn search_activation(
        &self,
        programs: &[(&TaskFunction, crate::formats::amm::Program)],
        config: &EvolveConfig,
        stop: &AtomicBool,
    ) -> Result<Option<Searched>, MineError> {
        let data = crate::train::amm_exact::AmmData::load()
            .map_err(|e| MineError::Setup(format!("AMM's activation data: {e}")))?;
        let mut ev = crate::train::amm_exact::activation::ActivationExact::new(
            std::sync::Arc::new(data),
            crate::loss::Backend::Jit,
        );
        let codes: Vec<Code> = programs
            .iter()
            .map(|(_, p)| from_program(p.clone()))
            .collect();
        let scores = activation_evolve::score_parents(&mut ev, &codes);
        let best_at = best_index(&scores);
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let parents: Vec<(Code, f64)> = codes.into_iter().zip(scores.iter().copied()).collect();
        let found = activation_evolve::search(
            &mut ev,
            &parents,
            config.population,
            config.generations,
            config.mutation_rate,
            config.seed,
            stop,
            self.progress,
        );
        Ok(Some(Searched {
            parent: best_at,
            parent_score: scores[best_at],
            genome: found.genome,
            fitness: found.fitness,
            evaluations: found.evaluations,
            trained: found.trained,
            generations: config.generations as u64,
            stats: serde_json::Value::Array(Vec::new()),
        }))
    }

    fn evaluate(
        &self,
        batch: &TaskBatch,
        name: &str,
        kind: ComponentKind,
        stop: &AtomicBool,
    ) -> Result<CycleOutcome, MineError> {
        let mut evaluations = Vec::new();
        let total = batch.functions.len();
        (self.progress)(CycleProgress::Evaluating { done: 0, total });
        if let Some(scorer) = self.amm_exact {
            if stop.load(Ordering::Relaxed) {
                return Ok(CycleOutcome::Abandoned {
                    batch: name.to_string(),
                });
            }
            evaluations = amm_exact_evaluations(scorer, batch, kind);
            (self.progress)(CycleProgress::Evaluating { done: total, total });
        }
        let per_function = if self.amm_exact.is_some() {
            &[][..]
        } else {
            &batch.functions[..]
        };
        for f in per_function {
            if stop.load(Ordering::Relaxed) {
                return Ok(CycleOutcome::Abandoned {
                    batch: name.to_string(),
                });
            }
            // A program that does not parse scores as failed, as AMM scores it.
            let score = match f.program() {
                Ok(p) => self.prepared.score(&crate::formats::amm::to_json(&p)),
                Err(_) => f64::NEG_INFINITY,
            };
            let s = wire(score);
            (self.progress)(CycleProgress::Evaluating {
                done: evaluations.len() + 1,
                total,
            });
            evaluations.push(Evaluation {
                function_id: f.id.clone(),
                score: s,
                criteria: Criteria {
                    accuracy: s,
                    stability: 1.0,
                    efficiency: 1.0,
                },
            });
        }
        let scores = evaluations.iter().map(|e| e.score).collect();
        let answer = self.retry(|| self.client.submit_evaluation(name, evaluations.clone()))?;
        Ok(CycleOutcome::Evaluated {
            batch: name.to_string(),
            scores,
            answer,
        })
    }

    /// Run cycles until `config.cycles` are done or `stop` is set. A failed cycle is retried
    /// (with a doubling pause) up to `retries` times before mining gives up with its error.
    /// `start` hears of each cycle (its number and task type) as it begins, `report` gets
    /// each finished cycle.
    pub fn run(
        &self,
        stop: &AtomicBool,
        start: &mut dyn FnMut(u64, TaskType),
        report: &mut dyn FnMut(u64, &CycleOutcome, f64),
        warn: &mut dyn FnMut(&MineError),
    ) -> Result<u64, MineError> {
        let mut t = self.config.task_type;
        let mut done = 0u64;
        let delay = || {
            self.control
                .map_or(self.config.delay, |c| c.settings().delay)
        };
        let alternate = || {
            self.control
                .map_or(self.config.alternate, |c| c.settings().alternate)
        };
        while (self.config.cycles == 0 || done < self.config.cycles)
            && !stop.load(Ordering::Relaxed)
        {
            if let Some(c) = self.control {
                // Paused: no new cycle starts until resumed (or stopped).
                c.wait_while_paused(stop);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(chosen) = c.take_task_type() {
                    t = chosen;
                }
            }
            let mut attempt = 0;
            let mut pause = delay().max(Duration::from_millis(200));
            let mut idle_since: Option<TaskType> = None;
            let outcome = loop {
                let t0 = Instant::now();
                start(done + 1, t);
                match self.cycle(t, stop) {
                    Ok(o) => break (o, t0.elapsed().as_secs_f64()),
                    // Nothing of this type to do: try the other type; when neither has work,
                    // wait and ask again (not a failure).
                    Err(MineError::NoTask(kind)) => {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(done);
                        }
                        if idle_since == Some(other(kind)) {
                            warn(&MineError::NoTask(kind));
                            sleep_unless(stop, delay().max(IDLE_WAIT));
                            idle_since = None;
                        } else {
                            idle_since = Some(kind);
                        }
                        t = other(kind);
                    }
                    Err(e) => {
                        attempt += 1;
                        if attempt >= self.config.retries.max(1) || stop.load(Ordering::Relaxed) {
                            return Err(e);
                        }
                        warn(&e);
                        sleep_unless(stop, pause);
                        pause *= 2;
                    }
                }
            };
            done += 1;
            report(done, &outcome.0, outcome.1);
            if matches!(outcome.0, CycleOutcome::Abandoned { .. }) {
                break;
            }
            if alternate() {
                t = other(t);
            }
            if self.config.cycles == 0 || done < self.config.cycles {
                sleep_unless(stop, delay());
            }
        }
        Ok(done)
    }
}

/// What an evolve task's search found.
struct Searched {
    /// The best parent (index into the task's functions) and its score.
    parent: usize,
    parent_score: f64,
    /// The best program found and its fitness.
    genome: String,
    fitness: f64,
    evaluations: u64,
    trained: u64,
    generations: u64,
    stats: serde_json::Value,
}

/// The index of the best score (the first of ties).
fn best_index(scores: &[f64]) -> usize {
    (0..scores.len())
        .max_by(|a, b| scores[*a].total_cmp(&scores[*b]).then(b.cmp(a)))
        .unwrap_or(0)
}

/// How long to wait when the pool has no task of either type.
const IDLE_WAIT: Duration = Duration::from_secs(2);

fn other(t: TaskType) -> TaskType {
    match t {
        TaskType::Evolve => TaskType::Evaluate,
        TaskType::Evaluate => TaskType::Evolve,
    }
}

/// Sleep, waking early when `stop` is set.
fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}
