//! The miner's local web page (`ncpc mine --ui [ADDR]`): the miner's address (never its
//! secret), the pool, the balance over time, the running cycle's progress and the history of
//! cycles, with controls (pause and resume, task type, alternate, delay) that need a random
//! token printed on the terminal, so another local user cannot drive the miner; and
//! Prometheus metrics at `/metrics`. The page is `ui/miner/index.html` (src/ui.rs).

use crate::mine::{CycleOutcome, CycleProgress};
pub use crate::mine_control::{MinerControl, Settings};
use crate::pool::protocol::TaskType;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn task_name(t: TaskType) -> &'static str {
    match t {
        TaskType::Evolve => "evolve",
        TaskType::Evaluate => "evaluate",
    }
}

/// What the page shows, kept up to date by the mining loop's hooks.
#[derive(Debug, Default)]
struct View {
    address: String,
    pool_url: String,
    progress: Option<Value>,
    cycle: u64,
    cycle_task: Option<TaskType>,
    cycle_started: Option<Instant>,
    balance: Vec<(f64, f64)>,
    cycles: Vec<Value>,
}

/// The miner's metrics.
struct Metrics {
    registry: Registry,
    cycles: IntCounterVec,
    candidates: IntCounter,
    evaluations: IntCounter,
    errors: IntCounter,
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let cycles = IntCounterVec::new(
            Opts::new("ncpc_miner_cycles_total", "Cycles finished, by outcome."),
            &["outcome"],
        )
        .expect("a valid metric");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("a valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        registry
            .register(Box::new(cycles.clone()))
            .expect("registered once");
        Metrics {
            candidates: counter(
                "ncpc_miner_candidates_total",
                "Candidate functions scored by evolve tasks.",
            ),
            evaluations: counter(
                "ncpc_miner_evaluations_total",
                "Function scores submitted by evaluate tasks.",
            ),
            errors: counter(
                "ncpc_miner_errors_total",
                "Failed pool calls or cycles (each retried).",
            ),
            cycles,
            registry,
        }
    }
}

/// The page's shared state.
struct Shared {
    control: Arc<MinerControl>,
    view: Mutex<View>,
    metrics: Metrics,
    token: String,
}

/// A running miner page.
pub struct MinerUi {
    shared: Arc<Shared>,
    /// The page's address (`http://HOST:PORT/`).
    pub url: String,
    /// The token that the controls need (in the URL's fragment on the terminal).
    pub token: String,
}

/// Why the page could not start.
#[derive(Debug, thiserror::Error)]
#[error("the miner page cannot listen on {addr}: {source}")]
pub struct UiError {
    addr: SocketAddr,
    source: std::io::Error,
}

impl MinerUi {
    /// Serve the page on `addr` (port 0: a free one) in a thread of its own.
    pub fn start(
        addr: SocketAddr,
        control: Arc<MinerControl>,
        address: &str,
        pool_url: &str,
    ) -> Result<MinerUi, UiError> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| UiError { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| UiError { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| UiError { addr, source })?;
        let token: String = (0..16)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let shared = Arc::new(Shared {
            control,
            view: Mutex::new(View {
                address: address.to_string(),
                pool_url: pool_url.to_string(),
                ..View::default()
            }),
            metrics: Metrics::new(),
            token: token.clone(),
        });
        let app = Router::new()
            .route("/", get(|| async { crate::ui::serve("miner/index.html") }))
            .route(
                "/ui/{*path}",
                get(
                    |axum::extract::Path(p): axum::extract::Path<String>| async move {
                        crate::ui::serve(&p)
                    },
                ),
            )
            .route("/api/state", get(state))
            .route("/api/control", post(control_request))
            .route("/metrics", get(metrics))
            .with_state(shared.clone());
        std::thread::Builder::new()
            .name("ncpc-miner-ui".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(l) = tokio::net::TcpListener::from_std(listener) {
                        let _ = axum::serve(l, app).await;
                    }
                });
            })
            .map_err(|source| UiError { addr, source })?;
        Ok(MinerUi {
            shared,
            url: format!("http://{local}/"),
            token,
        })
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.shared.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A cycle begins.
    pub fn cycle_started(&self, n: u64, t: TaskType) {
        let mut v = self.view();
        v.cycle = n;
        v.cycle_task = Some(t);
        v.cycle_started = Some(Instant::now());
        v.progress = Some(json!({
            "cycle": n, "task_type": task_name(t), "line": format!("{} task requested", task_name(t)),
            "generation": null, "generations": null, "best": null, "candidates_per_s": null,
        }));
    }

    /// The running cycle's progress.
    pub fn progress(&self, p: &CycleProgress) {
        let mut v = self.view();
        let secs = v.cycle_started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let task = v.cycle_task.map_or("evolve", task_name);
        let n = v.cycle;
        v.progress = Some(match p {
            CycleProgress::Evolving {
                generation,
                generations,
                best,
                evaluations,
            } => json!({
                "cycle": n, "task_type": task, "line": p.describe(),
                "generation": generation, "generations": generations,
                "best": best.is_finite().then_some(*best),
                "candidates_per_s": (secs > 0.0).then(|| *evaluations as f64 / secs),
            }),
            CycleProgress::Evaluating { .. } => json!({
                "cycle": n, "task_type": task, "line": p.describe(),
                "generation": null, "generations": null, "best": null, "candidates_per_s": null,
            }),
        });
    }

    /// A cycle ended with `outcome` after `seconds`; `line` is its summary.
    pub fn cycle_finished(&self, n: u64, outcome: &CycleOutcome, seconds: f64, line: &str) {
        let m = &self.shared.metrics;
        let (name, fitness) = match outcome {
            CycleOutcome::Evolved {
                fitness,
                evaluations,
                ..
            } => {
                m.candidates.inc_by(*evaluations);
                ("evolved", Some(*fitness))
            }
            CycleOutcome::Evaluated { scores, .. } => {
                m.evaluations.inc_by(scores.len() as u64);
                ("evaluated", None)
            }
            CycleOutcome::NotSubmitted { evaluations, .. } => {
                m.candidates.inc_by(*evaluations);
                ("not_submitted", None)
            }
            CycleOutcome::Released { .. } => ("released", None),
            CycleOutcome::Abandoned { .. } => ("abandoned", None),
        };
        m.cycles.with_label_values(&[name]).inc();
        let mut v = self.view();
        let task = v.cycle_task.map_or("evolve", task_name);
        v.progress = None;
        v.cycles.push(json!({
            "n": n, "task_type": task, "outcome": name, "line": line, "seconds": seconds,
            "fitness": fitness.filter(|f| f.is_finite()), "finished_at": now(),
        }));
        let excess = v.cycles.len().saturating_sub(1000);
        v.cycles.drain(..excess);
    }

    /// A pool call or cycle failed (and is retried).
    pub fn error(&self, what: &str) {
        self.shared.metrics.errors.inc();
        let mut v = self.view();
        let n = v.cycle;
        let task = v.cycle_task.map_or("evolve", task_name);
        v.cycles.push(json!({
            "n": n, "task_type": task, "outcome": "error", "line": what, "seconds": 0.0,
            "fitness": null, "finished_at": now(),
        }));
    }

    /// The balance the pool reported.
    pub fn balance(&self, b: f64) {
        let mut v = self.view();
        v.balance.push((now(), b));
        let excess = v.balance.len().saturating_sub(10_000);
        v.balance.drain(..excess);
    }
}

fn state_json(s: &Shared) -> Value {
    let v = s.view.lock().unwrap_or_else(|e| e.into_inner());
    let settings = s.control.settings();
    json!({
        "address": v.address,
        "pool_url": v.pool_url,
        "paused": s.control.is_paused(),
        "settings": {
            "task_type": task_name(settings.task_type),
            "alternate": settings.alternate,
            "delay": settings.delay.as_secs_f64(),
        },
        "progress": v.progress,
        "balance": v.balance.iter().map(|(t, b)| json!([t, b])).collect::<Vec<_>>(),
        "cycles": v.cycles,
    })
}

async fn state(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(state_json(&s))
}

fn refuse(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({ "detail": detail }))).into_response()
}

/// Equal strings in time that does not depend on where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A control request's body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlRequest {
    action: String,
    task_type: Option<String>,
    alternate: Option<bool>,
    delay: Option<f64>,
}

async fn control_request(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same_token(given.trim(), &s.token) {
        return refuse(
            StatusCode::FORBIDDEN,
            "wrong or missing token: use the page address printed on the miner's terminal",
        );
    }
    let req: ControlRequest = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a control request: {e}"),
            );
        }
    };
    match req.action.as_str() {
        "pause" => s.control.set_paused(true),
        "resume" => s.control.set_paused(false),
        "set" => {
            let task_type = match req.task_type.as_deref() {
                None => None,
                Some("evolve") => Some(TaskType::Evolve),
                Some("evaluate") => Some(TaskType::Evaluate),
                Some(other) => {
                    return refuse(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &format!("task_type {other:?} is neither evolve nor evaluate"),
                    );
                }
            };
            let delay = match req.delay {
                None => None,
                Some(d) if d.is_finite() && (0.0..=86_400.0).contains(&d) => {
                    Some(Duration::from_secs_f64(d))
                }
                Some(d) => {
                    return refuse(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &format!("delay {d} is not a number of seconds between 0 and 86400"),
                    );
                }
            };
            s.control.update(task_type, req.alternate, delay);
        }
        other => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("unknown action {other:?} (pause, resume or set)"),
            );
        }
    }
    Json(state_json(&s)).into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&s.metrics.registry.gather(), &mut buf);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], buf).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abcd", "abcd"));
        assert!(!same_token("abcd", "abce"));
        assert!(!same_token("abc", "abcd"));
        assert!(!same_token("", "abcd"));
    }

    #[test]
    fn a_new_task_type_is_taken_once() {
        let c = MinerControl::new(Settings {
            task_type: TaskType::Evolve,
            alternate: true,
            delay: Duration::from_secs(5),
        });
        c.update(Some(TaskType::Evaluate), Some(false), None);
        assert_eq!(c.take_task_type(), Some(TaskType::Evaluate));
        assert_eq!(c.take_task_type(), None);
        assert!(!c.settings().alternate);
        assert_eq!(c.settings().delay, Duration::from_secs(5));
    }
}
