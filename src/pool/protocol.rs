//! The Neural Component Pool API as typed messages (serde), exactly as the AMM client speaks
//! it (`{pool_url}/api/v1`): auth fields, task requests and batches, evolution and evaluation
//! submissions, and the encodings of non-finite numbers (strings "NaN"/"Infinity"/"-Infinity"
//! in evolution metadata, -99999 for -inf scores).

use crate::identity::Identity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API prefix after the pool URL.
pub const API_PREFIX: &str = "/api/v1";

/// What AMM writes for a score of -inf.
pub const LOW_FITNESS_VALUE: f64 = -99999.0;

/// Errors of checking a request's authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `message` is not `auth:<unix seconds>`.
    #[error("the auth message must be `auth:<unix seconds>`")]
    BadMessage,
    /// The timestamp is too far from the server's clock.
    #[error("the auth timestamp is {0} s away from the server's clock")]
    Skew(i64),
    /// The signature does not verify for the address.
    #[error("the signature does not verify for this address")]
    BadSignature,
    /// The signed headers (see [`super::headers`]) are incomplete or malformed.
    #[error("{0}")]
    BadHeaders(String),
}

/// Check that `timestamp` lies at most `max_skew` seconds from `now` either way. The
/// difference is taken in 128 bits, so no timestamp (`i64::MIN`, `i64::MAX`, ...) overflows:
/// every one outside the window is refused.
pub fn check_skew(timestamp: i64, now: i64, max_skew: i64) -> Result<(), AuthError> {
    let skew = i128::from(timestamp) - i128::from(now);
    if skew.unsigned_abs() > u128::from(max_skew.unsigned_abs()) {
        let shown = i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX });
        return Err(AuthError::Skew(shown));
    }
    Ok(())
}

/// The auth fields every AMM request carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// SS58 address (format 42).
    pub public_address: String,
    /// `auth:<unix seconds>`.
    pub message: String,
    /// Hex sr25519 signature of `message`, without `0x`.
    pub signature: String,
}

impl Auth {
    /// Sign `auth:<now>` with `id`.
    pub fn sign(id: &Identity, now_unix: i64) -> Auth {
        let message = format!("auth:{now_unix}");
        Auth {
            public_address: id.ss58(),
            signature: id.sign_hex(message.as_bytes()),
            message,
        }
    }

    /// The timestamp in `message`.
    pub fn timestamp(&self) -> Result<i64, AuthError> {
        self.message
            .strip_prefix("auth:")
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(AuthError::BadMessage)
    }

    /// Check format, clock skew (at most `max_skew` seconds either way) and signature.
    pub fn verify(&self, now_unix: i64, max_skew: i64) -> Result<(), AuthError> {
        check_skew(self.timestamp()?, now_unix, max_skew)?;
        if Identity::verify(
            &self.public_address,
            self.message.as_bytes(),
            &self.signature,
        ) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

/// What a miner asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TaskType {
    /// Evolve new functions from parents.
    Evolve,
    /// Score functions.
    Evaluate,
}

/// `POST /tasks/{ss58}/request`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    /// Auth fields, at the top level of the body.
    #[serde(flatten)]
    pub auth: Auth,
    /// Which kind of task.
    pub task_type: TaskType,
}

/// A function in a task batch: an AMM program as a JSON list, or that list as a JSON string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskFunction {
    /// The pool's id for it (a string or a number).
    pub id: serde_json::Value,
    /// The program.
    pub function: serde_json::Value,
}

impl TaskFunction {
    /// The program, whichever way it was sent.
    pub fn program(&self) -> Result<crate::formats::amm::Program, crate::formats::FormatError> {
        let text = match &self.function {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        crate::formats::amm::parse_program(&text)
    }
}

/// The answer to a task request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskBatch {
    /// The batch (a UUID string; numbers are accepted).
    pub batch_id: serde_json::Value,
    /// `loss`, `loss_function`, ...
    #[serde(default = "default_component")]
    pub component_type: String,
    /// The functions to evolve from or to evaluate.
    pub functions: Vec<TaskFunction>,
    /// Anything else the pool sent.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn default_component() -> String {
    "loss".into()
}

/// A reference to a parent function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParentRef {
    /// Its id.
    pub id: serde_json::Value,
}

pub use crate::numbers::LenientF64;

/// Evolution metadata (AMM's fields; others are kept).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvolutionMetadata {
    /// Fitness of the evolved function.
    pub fitness: LenientF64,
    /// Generations run.
    pub generations: u64,
    /// Population size.
    pub population_size: u64,
    /// The parent it came from.
    pub parent_id: serde_json::Value,
    /// Instructions in the evolved program.
    pub genetic_code_length: u64,
    /// Candidate evaluations spent.
    pub total_evaluations: u64,
    /// Per-generation statistics, as the client reports them.
    #[serde(default)]
    pub generation_stats: serde_json::Value,
    /// Anything else.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `POST /tasks/{ss58}/{batch_id}/submit_evolution`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvolutionSubmission {
    /// Auth fields.
    #[serde(flatten)]
    pub auth: Auth,
    /// The evolved program as a JSON string.
    pub evolved_function: String,
    /// Its parents.
    pub parent_functions: Vec<ParentRef>,
    /// How it was evolved.
    pub metadata: EvolutionMetadata,
}

/// A score with -inf written as [`LOW_FITNESS_VALUE`], as AMM does.
pub fn wire_score(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        LOW_FITNESS_VALUE
    } else {
        x
    }
}

/// Evaluation criteria.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Criteria {
    /// Validation accuracy.
    pub accuracy: f64,
    /// Stability.
    pub stability: f64,
    /// Efficiency.
    pub efficiency: f64,
}

/// One function's evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The function's id.
    pub function_id: serde_json::Value,
    /// Its score (-inf as -99999).
    pub score: f64,
    /// Criteria.
    pub criteria: Criteria,
}

/// `POST /tasks/{ss58}/{batch_id}/submit_evaluation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSubmission {
    /// Auth fields.
    #[serde(flatten)]
    pub auth: Auth,
    /// The batch, as a string.
    pub batch_id: String,
    /// One per function.
    pub evaluations: Vec<Evaluation>,
}
