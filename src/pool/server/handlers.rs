//! The API's handlers: miners (register, info, balance), tasks (request, reset, submit), and
//! the read-only leaderboard and OpenAPI document. Each parses its body itself so that every
//! refusal, a too-large or malformed body included, answers `{"detail": ...}`.

use super::consensus::check_score;
use super::error::ApiError;
use super::state::{AppState, RawRequest, now_ms};
use super::store::{Duplicate, NewEvaluation, TaskRow};
use crate::pool::headers::SignedHeaders;
use crate::pool::protocol::{
    Auth, EvaluationSubmission, EvolutionSubmission, TaskRequest, TaskType,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

/// The shared state as handlers receive it.
pub type Shared = State<Arc<AppState>>;

/// The hand-maintained OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../../docs/pool-openapi.json");

/// A signed call as it arrives: method, full path, headers, and the body read under the size
/// limit (413 beyond it).
pub struct Call {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Call {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let method = req.method().clone();
        let path = req
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| req.uri().path(), |u| u.0.path())
            .to_string();
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("the request body is larger than the pool accepts".into())
            } else {
                ApiError::BadRequest(r.body_text())
            }
        })?;
        Ok(Call {
            method,
            path,
            headers,
            body,
        })
    }
}

impl Call {
    /// The body as `T` (422 when it is not).
    fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::Unprocessable(format!("the request body is not valid: {e}")))
    }

    /// What authentication reads.
    fn raw(&self) -> RawRequest<'_> {
        RawRequest {
            method: self.method.as_str(),
            path: &self.path,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// A function id as clients send it: a number, or a number in a string.
fn function_id(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn not_registered(address: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "miner {address} is not registered; POST /api/v1/miners/register first"
    ))
}

pub(super) fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// `POST /miners/register`: registering again answers 200 with `already_registered: true`.
pub async fn register(State(s): Shared, call: Call) -> Result<Json<Value>, ApiError> {
    let auth: Auth = call.json()?;
    let signed = s.authenticate(&auth.public_address, &auth, "register", &call.raw())?;
    let address = signed.miner.clone();
    let now = now_ms();
    let (already, at) = s
        .db_signed(&signed, move |st| st.register(&address, now))
        .await?;
    Ok(Json(json!({
        "public_address": signed.miner,
        "status": "registered",
        "already_registered": already,
        "registered_at": seconds(at),
    })))
}

/// Whether a GET carries signed headers (over `GET`, its path and an empty body) by `miner`.
fn signed_by(s: &AppState, miner: &str, uri: &OriginalUri, headers: &HeaderMap) -> bool {
    let Ok(Some(h)) = SignedHeaders::read(|name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }) else {
        return false;
    };
    s.miner_key(&h.address).is_ok_and(|k| k == miner)
        && h.verify(
            "GET",
            uri.0.path(),
            b"",
            now_ms() / 1000,
            s.config.max_skew_seconds,
        )
        .is_ok()
}

/// `GET /miners/{ss58}`. The active task's batch id is shown only to the miner itself
/// (signed headers on the GET): anyone else could use it to target the task.
pub async fn miner_info(
    State(s): Shared,
    Path(address): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let address = s.miner_key(&address)?;
    let owner = signed_by(&s, &address, &uri, &headers);
    let a = address.clone();
    let now = now_ms();
    let (miner, task) = s
        .db(move |st| Ok((st.miner(&a)?, st.active_task(&a, now)?)))
        .await?;
    let Some(m) = miner else {
        return Err(ApiError::NotFound(format!(
            "miner {address} is not registered"
        )));
    };
    let active = task.map(|t| {
        let mut v = json!({
            "task_type": t.task_type,
            "lease_expires_at": seconds(t.lease_until_ms),
        });
        if owner {
            v["batch_id"] = json!(t.batch_id);
        }
        v
    });
    Ok(Json(json!({
        "public_address": address,
        "registered_at": seconds(m.registered_at_ms),
        "balance": m.balance,
        "functions_evolved": m.functions_evolved,
        "evaluations_submitted": m.evaluations_submitted,
        "active_task": active,
    })))
}

/// `GET /miners/{ss58}/balance`.
pub async fn balance(
    State(s): Shared,
    Path(address): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let address = s.miner_key(&address)?;
    let a = address.clone();
    let balance = s
        .db(move |st| {
            if !st.is_registered(&a)? {
                return Ok(None);
            }
            st.balance(&a).map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("miner {address} is not registered")))?;
    Ok(Json(json!({
        "public_address": address,
        "balance": balance,
        "token": "alpha",
    })))
}

/// `POST /tasks/{ss58}/reset_active`.
pub async fn reset_active(
    State(s): Shared,
    Path(address): Path<String>,
    call: Call,
) -> Result<Json<Value>, ApiError> {
    let auth: Auth = call.json()?;
    let signed = s.authenticate(&address, &auth, "reset_active", &call.raw())?;
    let a = signed.miner.clone();
    let reset = s.db_signed(&signed, move |st| st.reset_active(&a)).await?;
    Ok(Json(json!({ "status": "ok", "reset": reset })))
}

fn batch_json(t: &TaskRow) -> Result<Value, ApiError> {
    let functions = t
        .functions
        .iter()
        .map(|f| {
            let program: Value = serde_json::from_str(&f.program).map_err(|e| {
                ApiError::Internal(anyhow::anyhow!("stored function {}: {e}", f.id))
            })?;
            Ok(json!({ "id": f.id, "function": program }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(json!({
        "batch_id": t.batch_id,
        "task_type": t.task_type,
        "component_type": t.component_type,
        "functions": functions,
        "lease_expires_at": seconds(t.lease_until_ms),
    }))
}

/// `POST /tasks/{ss58}/request`.
pub async fn request_task(
    State(s): Shared,
    Path(address): Path<String>,
    call: Call,
) -> Result<Json<Value>, ApiError> {
    let req: TaskRequest = call.json()?;
    let signed = s.authenticate(&address, &req.auth, "request", &call.raw())?;
    let address = signed.miner.clone();
    let config = s.config.clone();
    let lease_ms = config.lease_ms(req.task_type);
    let a = address.clone();
    let now = now_ms();
    // Component types take turns; one with nothing to hand out passes to the next.
    let start = s
        .next_component
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let task = s
        .db_signed(&signed, move |st| {
            if !st.is_registered(&a)? {
                return Err(not_registered(&a));
            }
            let kinds = &config.component_types;
            let mut last = None;
            for k in 0..kinds.len() {
                let kind = kinds[(start + k) % kinds.len()];
                match st.issue_task(
                    &a,
                    req.task_type,
                    kind.name(),
                    config.evaluate_batch_size,
                    lease_ms,
                    now,
                ) {
                    Err(e @ ApiError::NotFound(_)) => last = Some(e),
                    other => return other,
                }
            }
            Err(last
                .unwrap_or_else(|| ApiError::NotFound("this pool serves no component type".into())))
        })
        .await?;
    tracing::info!(miner = %address, batch = %task.batch_id, "issued {:?} task", task.task_type);
    s.metrics
        .tasks_issued
        .with_label_values(&[match task.task_type {
            TaskType::Evolve => "evolve",
            TaskType::Evaluate => "evaluate",
        }])
        .inc();
    Ok(Json(batch_json(&task)?))
}

/// `POST /tasks/{ss58}/{batch_id}/submit_evolution`. In order: auth, the metadata's size
/// (413), the task (it must be this miner's live evolve task), and only then the genome check
/// of `genome::check_limited` (422 otherwise, nothing stored), so an unregistered key or a
/// dead task costs no compiling. A function the population already has (the same canonical
/// IR, or the same gradient direction on the probes) is accepted as a duplicate: not stored,
/// never paid. Nothing is paid at acceptance; with a local scorer (solo pools) the pool
/// scores a new function at once and its consensus (and rewards) follow in the answer.
pub async fn submit_evolution(
    State(s): Shared,
    Path((address, batch_id)): Path<(String, String)>,
    call: Call,
) -> Result<Json<Value>, ApiError> {
    let sub: EvolutionSubmission = call.json()?;
    let signed = s.authenticate(&address, &sub.auth, "submit_evolution", &call.raw())?;
    s.claim(&signed).await?;
    let address = signed.miner.clone();
    let metadata = serde_json::to_string(&sub.metadata)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("encoding metadata: {e}")))?;
    if metadata.len() > s.config.max_metadata_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "the metadata is {} bytes of JSON; the pool keeps at most {}",
            metadata.len(),
            s.config.max_metadata_bytes
        )));
    }
    let fitness = sub.metadata.fitness.0;
    let (a, b) = (address.clone(), batch_id.clone());
    let component_type = s
        .db(move |st| st.check_live_task(&a, &b, TaskType::Evolve, now_ms()))
        .await?;
    let kind = crate::component::ComponentKind::from_task(&component_type)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("task {batch_id}: {e}")))?;
    // Compiling is CPU work: do it off the async workers and outside the store's lock, and
    // at most a few at once, so no number of submissions can take every core.
    let _slot = tokio::time::timeout(super::state::GENOME_WAIT, s.genome_slots.acquire())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            ApiError::Retry(anyhow::anyhow!(
                "every genome-check slot stayed busy for {} s",
                super::state::GENOME_WAIT.as_secs()
            ))
        })?;
    let text = sub.evolved_function;
    let (mode, max) = (s.config.genome_check, s.config.max_instructions);
    let genome = tokio::task::spawn_blocking(move || {
        super::component_genome::check_component(&text, kind, mode, max)
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("the genome check failed: {e}")))?
    .map_err(|e| {
        ApiError::Unprocessable(format!(
            "evolved_function is not a usable AMM {kind} program: {e}"
        ))
    })?;
    let program = genome.program.clone();
    let (a, b) = (address.clone(), batch_id.clone());
    let (outcome, mut balance) = s
        .db(move |st| {
            let o = st.submit_evolution(&a, &b, &genome, fitness, &metadata, now_ms())?;
            Ok((o, st.balance(&a)?))
        })
        .await?;
    tracing::info!(miner = %address, batch = %batch_id, function = outcome.function_id,
        duplicate = outcome.duplicate.is_some(), "evolution accepted");
    s.metrics
        .evolutions
        .with_label_values(&[if outcome.duplicate.is_some() {
            "duplicate"
        } else {
            "new"
        }])
        .inc();
    let mut consensus = Value::Null;
    if let (Some(scorer), None, crate::component::ComponentKind::Loss) =
        (s.config.local_scorer.clone(), outcome.duplicate, kind)
    {
        let score = tokio::task::spawn_blocking(move || {
            crate::pool::protocol::wire_score((scorer.0)(&program))
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the pool's scorer failed: {e}")))?;
        let (id, a) = (outcome.function_id, address.clone());
        let (formed, now_balance) = s
            .db(move |st| Ok((st.confirm_locally(id, score, now_ms())?, st.balance(&a)?)))
            .await?;
        if let Some(c) = formed {
            consensus = json!(c.score);
            s.metrics.consensus_formed.inc();
        }
        balance = now_balance;
    }
    let (message, duplicate_of) = match outcome.duplicate {
        Some(how) => (
            format!(
                "a duplicate of function {} ({}): not stored, never paid",
                outcome.function_id,
                match how {
                    Duplicate::CanonicalIr => "the same optimized IR",
                    Duplicate::Fingerprint => "the same gradient direction on the probe inputs",
                }
            ),
            json!(outcome.function_id),
        ),
        None => (
            format!(
                "accepted as new function {}; it earns when its consensus score forms (see the pool's reward schedule)",
                outcome.function_id
            ),
            Value::Null,
        ),
    };
    Ok(Json(json!({
        "status": "accepted",
        "batch_id": batch_id,
        "function_id": outcome.function_id,
        "duplicate": outcome.duplicate.is_some(),
        "duplicate_of": duplicate_of,
        "credited": outcome.credited,
        "consensus": consensus,
        "balance": balance,
        "message": message,
    })))
}

/// `POST /tasks/{ss58}/{batch_id}/submit_evaluation`.
pub async fn submit_evaluation(
    State(s): Shared,
    Path((address, batch_id)): Path<(String, String)>,
    call: Call,
) -> Result<Json<Value>, ApiError> {
    let sub: EvaluationSubmission = call.json()?;
    let signed = s.authenticate(&address, &sub.auth, "submit_evaluation", &call.raw())?;
    s.claim(&signed).await?;
    let address = signed.miner.clone();
    if !sub.batch_id.is_empty() && sub.batch_id != batch_id {
        return Err(ApiError::Unprocessable(format!(
            "the body's batch_id {} is not the path's {batch_id}",
            sub.batch_id
        )));
    }
    let mut evaluations = Vec::with_capacity(sub.evaluations.len());
    for (i, e) in sub.evaluations.iter().enumerate() {
        let id = function_id(&e.function_id).ok_or_else(|| {
            ApiError::Unprocessable(format!("evaluations[{i}].function_id is not a function id"))
        })?;
        check_score(e.score)
            .map_err(|m| ApiError::Unprocessable(format!("evaluations[{i}].score: {m}")))?;
        let criteria = serde_json::to_string(&e.criteria)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("encoding criteria: {e}")))?;
        evaluations.push(NewEvaluation {
            function_id: id,
            score: e.score,
            criteria,
        });
    }
    let n = evaluations.len();
    let a = address.clone();
    let b = batch_id.clone();
    let formed = s
        .db(move |st| st.submit_evaluations(&a, &b, &evaluations, now_ms()))
        .await?;
    tracing::info!(miner = %address, batch = %batch_id, evaluations = n, "evaluations accepted");
    s.metrics.evaluations.inc_by(n as u64);
    s.metrics.consensus_formed.inc_by(formed.len() as u64);
    let consensus: Vec<Value> = formed
        .iter()
        .map(|c| json!({ "function_id": c.function_id, "score": c.score }))
        .collect();
    Ok(Json(json!({
        "status": "accepted",
        "batch_id": batch_id,
        "evaluations_stored": n,
        "consensus": consensus,
    })))
}

/// `GET /leaderboard`: the best functions by consensus score and the richest miners (cached
/// for `ServerConfig::leaderboard_cache`).
pub async fn leaderboard(State(s): Shared) -> Result<Json<Value>, ApiError> {
    if let Some(v) = s.cached_leaderboard() {
        return Ok(Json(v));
    }
    let (functions, miners) = s.db(|st| st.leaderboard(50)).await?;
    let functions: Vec<Value> = functions
        .into_iter()
        .map(|f| {
            json!({
                "function_id": f.id,
                "component_type": f.component_type,
                "score": f.score,
                "evolver": f.evolver,
                "name": f.name,
                "evaluations": f.evaluations,
                "created_at": seconds(f.created_at_ms),
            })
        })
        .collect();
    let miners: Vec<Value> = miners
        .into_iter()
        .map(|(a, b)| json!({ "public_address": a, "balance": b }))
        .collect();
    let v = json!({ "functions": functions, "miners": miners });
    s.cache_leaderboard(&v);
    Ok(Json(v))
}

/// Query of `GET /functions`.
#[derive(serde::Deserialize)]
pub struct Page {
    /// List functions with ids above this one (default 0).
    #[serde(default)]
    after: i64,
    /// At most this many (default and cap 500).
    limit: Option<i64>,
}

/// `GET /functions?after=ID&limit=N`: the population in id order, a page at a time (for
/// validators and dashboards): each function's program, evolver, parent, age, evaluation count
/// and consensus. `next_after` is the id to continue from (null at the end).
pub async fn functions(
    State(s): Shared,
    axum::extract::Query(page): axum::extract::Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(500).clamp(1, 500);
    let after = page.after;
    let rows = s.db(move |st| st.functions_page(after, limit)).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|f| f.id))
        .flatten();
    let functions: Vec<Value> = rows
        .into_iter()
        .map(|f| {
            let program: Value = serde_json::from_str(&f.program).unwrap_or(Value::Null);
            json!({
                "function_id": f.id,
                "component_type": f.component_type,
                "function": program,
                "evolver": f.evolver,
                "name": f.name,
                "parent_id": f.parent_id,
                "created_at": seconds(f.created_at_ms),
                "evaluations": f.evaluations,
                "consensus_score": f.consensus,
            })
        })
        .collect();
    Ok(Json(json!({ "functions": functions, "next_after": next })))
}

/// `GET /metrics`: Prometheus' text format; the ledger's total is read at each scrape.
pub async fn metrics(State(s): Shared) -> Result<impl IntoResponse, ApiError> {
    let total = s.db(|st| st.ledger_total()).await?;
    s.metrics.ledger_alpha.set(total);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    ))
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found".into())
}
