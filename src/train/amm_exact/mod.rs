//! AMM-exact scoring: a loss scored as the Neural Component Pool's Python client (AMM,
//! Hivetensor/AutoML-Miner, `automl_client/components/loss/strategy.py`) scores it, with
//! torch's random streams reproduced bit for bit, so that ncpc's scores agree with AMM
//! miners' (see docs/evaluation.md, "AMM-exact").
//!
//! What one evaluate task does in AMM, and here:
//! - a fresh `LossStrategy` per task; for each function in task order, AMM first runs it once
//!   on two fixed probe tensors and looks the quantized output up in a process-wide score
//!   cache ([`ScoreCache`]); a hit returns the cached score without training;
//! - otherwise, at the task's first training, the model is made after
//!   `torch.manual_seed(42)` (784-64-ReLU-10, torch's `nn.Linear` init); later functions of
//!   the task start from the weights the previous one left: AMM's "reset" reloads a shallow
//!   copy of the state dict, which shares the live tensors;
//! - a fresh Adam (lr 1e-3) per function, 10 steps of 32 rows drawn with `torch.randint`
//!   from the global generator (which runs on through the task), early stop (3 steps
//!   without the loss improving on its best by 0.001, compared in Python floats) returns
//!   -inf, a NaN/inf loss returns -inf before its step, an error in training returns -inf;
//!   the score is the validation accuracy over the 200 held-out images;
//! - the client sends -inf and NaN as -99999, an exception out of the strategy (here: a
//!   function that does not compile or faults on the probe) as 0.0 with all criteria 0, and
//!   skips (sends nothing for) a function whose text does not deserialize.

pub mod activation;
pub mod cache;
pub mod data;
pub mod net;

pub use cache::ScoreCache;
pub use data::AmmData;

use crate::component::ComponentKind;
use crate::formats::CompileOptions;
use crate::jit::MathMode;
use crate::loss::{Backend, compile_for_inputs};
use crate::train::candidate::CandidateLoss;
use crate::train::torch_rng::TorchGenerator;
use data::{CLASSES, INPUT};
use net::{Adam, Forward, Net};
use std::sync::Arc;

/// The compat note of the AMM lowering for a loss op that raises in PyTorch.
const LOSS_OP_RAISED: &str = "PyTorch raises inside the loss op";

/// AMM's `LOW_FITNESS_VALUE`: what its client sends for -inf and NaN.
pub const LOW_FITNESS_VALUE: f64 = -99999.0;
/// Rows per training batch.
pub const BATCH: usize = 32;
/// Training steps per function.
pub const STEPS: usize = 10;
/// Steps without improvement that stop (and fail) training.
pub const PATIENCE: usize = 3;
/// The improvement that counts.
pub const MIN_IMPROVEMENT: f64 = 0.001;
/// Adam's learning rate.
pub const LR: f64 = 0.001;
/// The seed AMM's ModelFactory sets before building the model.
pub const MODEL_SEED: u64 = 42;

/// Errors of AMM-exact scoring (only setup can fail; a bad function is a score).
#[derive(Debug, thiserror::Error)]
pub enum AmmExactError {
    /// AMM's data could not be built.
    #[error("AMM-exact data: {0}")]
    Data(String),
}

/// How one function of a task came out, as AMM's client records it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Scored: `fitness` is what the strategy returned (accuracy, or -inf for a failed run);
    /// `cached` when the score cache answered without training.
    Scored {
        /// The strategy's return value.
        fitness: f64,
        /// Answered by the score cache.
        cached: bool,
        /// Why training failed, when it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
    },
    /// The strategy raised (AMM sends 0.0 with all criteria 0).
    Exception {
        /// What went wrong.
        error: String,
    },
    /// The text did not deserialize as AMM's genetic code; AMM sends no record.
    Skipped {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// The score AMM's client sends, `None` for a skipped function.
    pub fn wire_score(&self) -> Option<f64> {
        match self {
            Outcome::Scored { fitness, .. } => {
                Some(if fitness.is_nan() || *fitness == f64::NEG_INFINITY {
                    LOW_FITNESS_VALUE
                } else {
                    *fitness
                })
            }
            Outcome::Exception { .. } => Some(0.0),
            Outcome::Skipped { .. } => None,
        }
    }

    /// The criteria AMM's client sends with the score: `(accuracy, stability, efficiency)`.
    pub fn wire_criteria(&self) -> Option<(f64, f64, f64)> {
        match self {
            Outcome::Scored { .. } => Some((self.wire_score()?, 1.0, 1.0)),
            Outcome::Exception { .. } => Some((0.0, 0.0, 0.0)),
            Outcome::Skipped { .. } => None,
        }
    }
}

/// A function of an evaluate task as AMM's client takes it from the pool's JSON: a list goes
/// to the strategy as it is (unchecked: a malformed list fails inside the strategy, and AMM
/// sends 0.0), text must deserialize ([`amm_deserializes`]), anything else is skipped. The
/// genetic code as JSON text, or why AMM sends no record.
pub fn genetic_code(v: &serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => amm_deserializes(s).map(|()| s.clone()),
        serde_json::Value::Array(_) => Ok(v.to_string()),
        _ => Err("the function is neither a list nor text".into()),
    }
}

/// How AMM's client scores a function of an optimizer evaluate task: its
/// `OptimizerStrategy.evaluate` does not take the `stop_flag` argument the client passes, so
/// it raises before running and every function that reaches it is an exception (0.0 with
/// all criteria 0); a function that does not deserialize gets no record.
pub fn amm_optimizer_outcome(v: &serde_json::Value) -> Outcome {
    match genetic_code(v) {
        Ok(_) => Outcome::Exception {
            error: "AMM's optimizer strategy raises TypeError (evaluate() got an unexpected keyword argument 'stop_flag') before it runs".into(),
        },
        Err(reason) => Outcome::Skipped { reason },
    }
}

/// Whether `text` is genetic code AMM's `deserialize_genetic_code` accepts: a JSON list of
/// non-empty lists whose first element is a number. `Err` says why not.
pub fn amm_deserializes(text: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = v.as_array().ok_or("the genetic code is not a list")?;
    for (i, ins) in list.iter().enumerate() {
        let ins = ins
            .as_array()
            .ok_or_else(|| format!("instruction {i} is not a list"))?;
        match ins.first() {
            Some(serde_json::Value::Number(_)) | Some(serde_json::Value::Bool(_)) => {}
            _ => {
                return Err(format!(
                    "instruction {i} does not start with a numeric op code"
                ));
            }
        }
    }
    Ok(())
}

/// A scorer that behaves as one AMM miner process: the data (built once), the process-wide
/// score cache, and the per-task model state. Use one per miner; tasks go through
/// [`AmmExact::evaluate_task`] in the order the miner receives them.
#[derive(Debug)]
pub struct AmmExact {
    data: Arc<AmmData>,
    cache: ScoreCache,
    engine: Backend,
    /// The activation component's evaluator, made at the first activation task.
    activation: Option<activation::ActivationExact>,
}

/// The state of one evaluate task: the model, once made, and torch's global generator.
struct TaskState {
    model: Option<(Net, TorchGenerator)>,
}

impl AmmExact {
    /// A fresh miner (empty score cache) on AMM's data. `engine` computes the loss
    /// (the JIT, or the interpreter; both give the same bits).
    pub fn new(engine: Backend) -> Result<AmmExact, AmmExactError> {
        Ok(AmmExact {
            data: Arc::new(AmmData::load()?),
            cache: ScoreCache::new(),
            engine,
            activation: None,
        })
    }

    /// The data.
    pub fn data(&self) -> &AmmData {
        &self.data
    }

    /// Score the functions of one evaluate task, given as texts (files), in order (weights
    /// carry over).
    pub fn evaluate_task<S: AsRef<str>>(&mut self, texts: &[S]) -> Vec<Outcome> {
        let mut task = TaskState { model: None };
        texts
            .iter()
            .map(|t| match amm_deserializes(t.as_ref()) {
                Ok(()) => self.evaluate_one(&mut task, t.as_ref()),
                Err(reason) => Outcome::Skipped { reason },
            })
            .collect()
    }

    /// Score the functions of one evaluate task of component type `kind` as the pool sends
    /// them (JSON values), in order, as AMM's client scores that type.
    pub fn evaluate_component(
        &mut self,
        kind: ComponentKind,
        functions: &[serde_json::Value],
    ) -> Vec<Outcome> {
        match kind {
            ComponentKind::Loss => self.evaluate_values(functions),
            ComponentKind::Activation => self.activation().evaluate_values(functions),
            ComponentKind::Optimizer => functions.iter().map(amm_optimizer_outcome).collect(),
        }
    }

    /// The activation evaluator of this miner (one score cache for the process, as AMM's).
    pub fn activation(&mut self) -> &mut activation::ActivationExact {
        let (data, engine) = (self.data.clone(), self.engine);
        self.activation
            .get_or_insert_with(|| activation::ActivationExact::new(data, engine))
    }

    /// Score the functions of one evaluate task as the pool sends them (JSON values), in
    /// order: see [`genetic_code`].
    pub fn evaluate_values(&mut self, functions: &[serde_json::Value]) -> Vec<Outcome> {
        let mut task = TaskState { model: None };
        functions
            .iter()
            .map(|v| match genetic_code(v) {
                Ok(text) => self.evaluate_one(&mut task, &text),
                Err(reason) => Outcome::Skipped { reason },
            })
            .collect()
    }

    fn evaluate_one(&mut self, task: &mut TaskState, text: &str) -> Outcome {
        let func = match compile_for_inputs(text, &CompileOptions::default(), BATCH, CLASSES, true)
        {
            Ok(f) => f,
            Err(e) => {
                return Outcome::Exception {
                    error: format!("the function does not compile: {e}"),
                };
            }
        };
        // A loss op that raised inside AMM's interpreter leaves `torch.tensor(1.0,
        // requires_grad=True)` in its register; AMM's probe step then fails on `.numpy()` of a
        // tensor that requires grad. ncpc assumes that value reaches the result.
        if let Ok(c) = crate::formats::compile(text, &CompileOptions::default())
            && c.notes.iter().any(|n| n.contains(LOSS_OP_RAISED))
        {
            return Outcome::Exception {
                error: "a loss op raised inside AMM's interpreter; its default loss requires grad and AMM's probe step fails on it".into(),
            };
        }
        let key = match self.cache.key(&func) {
            Ok(k) => k,
            Err(error) => return Outcome::Exception { error },
        };
        if let Some(fitness) = key.and_then(|k| self.cache.get(&k)) {
            return Outcome::Scored {
                fitness,
                cached: true,
                failure: None,
            };
        }
        let (net, g) = task.model.get_or_insert_with(|| {
            let mut g = TorchGenerator::manual_seed(MODEL_SEED);
            let net = Net::init(&mut g, INPUT, CLASSES);
            (net, g)
        });
        let mut loss = CandidateLoss::new(func, self.engine, MathMode::Exact);
        let (fitness, failure) = match train(&self.data, net, g, &mut loss) {
            Ok(acc) => (acc, None),
            Err(why) => (f64::NEG_INFINITY, Some(why)),
        };
        if let Some(k) = key {
            self.cache.insert(k, fitness);
        }
        Outcome::Scored {
            fitness,
            cached: false,
            failure,
        }
    }
}

/// AMM's training loop on `net` (changed in place, as AMM's shared tensors are), drawing
/// batches from `g`; the validation accuracy, or why the run failed (AMM: -inf).
fn train(
    data: &AmmData,
    net: &mut Net,
    g: &mut TorchGenerator,
    loss: &mut CandidateLoss,
) -> Result<f64, String> {
    let n_train = (data.train_x.len() / INPUT) as i64;
    let mut adam = Adam::new(&net.params, LR);
    let mut best = f64::INFINITY;
    let mut stale = 0;
    let (mut bx, mut by) = (Vec::new(), Vec::new());
    let mut fw = Forward::default();
    let mut grad = Vec::new();
    for step in 1..=STEPS {
        bx.clear();
        by.clear();
        for _ in 0..BATCH {
            let i = g.randint(0, n_train) as usize;
            bx.extend_from_slice(&data.train_x[i * INPUT..(i + 1) * INPUT]);
            by.extend_from_slice(&data.train_y[i * CLASSES..(i + 1) * CLASSES]);
        }
        net.forward(&bx, &mut fw);
        let value = loss
            .loss_and_grad(&fw.out, &by, BATCH, CLASSES, &mut grad)
            .map_err(|e| format!("step {step}: {e}"))?;
        let grads = net.backward(&bx, &fw, &grad);
        adam.step(&mut net.params, &grads);
        let current = value as f64;
        if current < best - MIN_IMPROVEMENT {
            best = current;
            stale = 0;
        } else {
            stale += 1;
            if stale >= PATIENCE {
                return Err(format!("step {step}: early stop"));
            }
        }
    }
    net.forward(&data.val_x, &mut fw);
    let correct = fw
        .out
        .chunks_exact(CLASSES)
        .zip(&data.val_labels)
        .filter(|(row, label)| torch_argmax(row) == **label)
        .count();
    Ok(correct as f64 / data.val_len() as f64)
}

/// The index `torch.max(row, dim=1)` returns: the first maximum, or the first NaN.
pub fn torch_argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if v.is_nan() {
            return i;
        }
        if *v > row[best] {
            best = i;
        }
    }
    best
}
