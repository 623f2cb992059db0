//! A blocking HTTP client for the Neural Component Pool API, speaking exactly what the AMM
//! Python client speaks (see [`super::protocol`]), so it works with existing pools. Every POST
//! also carries the stronger signed headers ([`super::headers`]), which ncpc's pool checks.

use super::headers::SignedHeaders;
use super::protocol::{
    API_PREFIX, Auth, Evaluation, EvaluationSubmission, EvolutionMetadata, EvolutionSubmission,
    ParentRef, TaskBatch, TaskRequest, TaskType,
};
use crate::identity::Identity;
use serde::Serialize;
use std::io::Read;
use std::time::Duration;

/// The most bytes read from one pool answer.
const MAX_RESPONSE: u64 = 64 << 20;

/// What can go wrong talking to a pool. Every variant names the URL.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get an answer (connection refused, timeout, TLS, ...).
    #[error("{url}: {msg}")]
    Transport {
        /// The URL.
        url: String,
        /// What happened.
        msg: String,
    },
    /// The pool answered with an error status.
    #[error("{url}: the pool answered {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The pool says this miner already has an active task (AMM answers with `reset_active`).
    #[error("{url}: the miner already has an active task")]
    ActiveTask {
        /// The URL.
        url: String,
    },
    /// The answer is not the JSON expected.
    #[error("{url}: unexpected answer ({msg}): {body}")]
    Decode {
        /// The URL.
        url: String,
        /// The decoding error.
        msg: String,
        /// The start of the answer's body.
        body: String,
    },
}

impl ClientError {
    /// Whether trying again later may help (transport failures and server-side errors).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Status { status, .. } => *status >= 500 || *status == 429,
            ClientError::ActiveTask { .. } | ClientError::Decode { .. } => false,
        }
    }
}

/// The first 300 characters of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// A pool client signing every request with one identity.
pub struct PoolClient {
    api: String,
    http: reqwest::blocking::Client,
    identity: Identity,
    clock: fn() -> i64,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl PoolClient {
    /// A client for the pool at `pool_url` (e.g. `http://127.0.0.1:8000`; a trailing
    /// `/api/v1` is accepted too).
    pub fn new(pool_url: &str, identity: Identity) -> Result<PoolClient, ClientError> {
        let base = pool_url.trim_end_matches('/');
        let base = base.strip_suffix(API_PREFIX).unwrap_or(base);
        let api = format!("{base}{API_PREFIX}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| ClientError::Transport {
                url: api.clone(),
                msg: e.to_string(),
            })?;
        Ok(PoolClient {
            api,
            http,
            identity,
            clock: unix_now,
        })
    }

    /// Use `clock` (unix seconds) for auth timestamps instead of the system clock.
    pub fn with_clock(mut self, clock: fn() -> i64) -> PoolClient {
        self.clock = clock;
        self
    }

    /// The miner's SS58 address.
    pub fn address(&self) -> String {
        self.identity.ss58()
    }

    /// Fresh auth fields.
    pub fn auth(&self) -> Auth {
        Auth::sign(&self.identity, (self.clock)())
    }

    fn send(
        &self,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}{path}", self.api);
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: url.clone(),
            msg: e.to_string(),
        };
        let request = match body {
            Some(b) => {
                let json = serde_json::to_vec(b).map_err(|e| ClientError::Decode {
                    url: url.clone(),
                    msg: format!("encoding the request: {e}"),
                    body: String::new(),
                })?;
                // The stronger scheme's headers ride along; pools that do not know them
                // ignore them and read the AMM auth fields in the body.
                let path = reqwest::Url::parse(&url)
                    .map(|u| u.path().to_string())
                    .map_err(|e| ClientError::Transport {
                        url: url.clone(),
                        msg: format!("not a URL: {e}"),
                    })?;
                let signed =
                    SignedHeaders::sign(&self.identity, "POST", &path, &json, (self.clock)());
                let mut request = self
                    .http
                    .post(&url)
                    .header("content-type", "application/json");
                for (name, value) in signed.pairs() {
                    request = request.header(name, value);
                }
                request.body(json)
            }
            None => {
                // Signed headers on a GET too: an ncpc pool then shows this miner's own
                // active batch id, which it hides from everyone else.
                let mut request = self.http.get(&url);
                if let Ok(u) = reqwest::Url::parse(&url) {
                    let signed =
                        SignedHeaders::sign(&self.identity, "GET", u.path(), b"", (self.clock)());
                    for (name, value) in signed.pairs() {
                        request = request.header(name, value);
                    }
                }
                request
            }
        };
        let resp = request.send().map_err(transport)?;
        let status = resp.status().as_u16();
        let mut bytes = Vec::new();
        resp.take(MAX_RESPONSE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ClientError::Transport {
                url: url.clone(),
                msg: format!("reading the answer: {e}"),
            })?;
        if bytes.len() as u64 > MAX_RESPONSE {
            return Err(ClientError::Transport {
                url,
                msg: format!("the answer is larger than {} MiB", MAX_RESPONSE >> 20),
            });
        }
        if !(200..300).contains(&status) {
            let body = snippet(&bytes);
            if status == 400 && body.to_ascii_lowercase().contains("active task") {
                return Err(ClientError::ActiveTask { url });
            }
            return Err(ClientError::Status { url, status, body });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url,
            msg: e.to_string(),
            body: snippet(&bytes),
        })
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        v: serde_json::Value,
    ) -> Result<T, ClientError> {
        let body = snippet(v.to_string().as_bytes());
        serde_json::from_value(v).map_err(|e| ClientError::Decode {
            url: format!("{}{path}", self.api),
            msg: e.to_string(),
            body,
        })
    }

    /// `POST /miners/register`. Registering again is not an error.
    pub fn register(&self) -> Result<serde_json::Value, ClientError> {
        match self.send("/miners/register", Some(&self.auth())) {
            Err(ClientError::Status { body, .. })
                if body.to_ascii_lowercase().contains("already registered") =>
            {
                Ok(serde_json::json!({ "already_registered": true }))
            }
            other => other,
        }
    }

    /// `GET /miners/{ss58}`.
    pub fn miner_info(&self) -> Result<serde_json::Value, ClientError> {
        self.send(&format!("/miners/{}", self.address()), None::<&()>)
    }

    /// `GET /miners/{ss58}/balance`.
    pub fn balance(&self) -> Result<serde_json::Value, ClientError> {
        self.send(&format!("/miners/{}/balance", self.address()), None::<&()>)
    }

    /// `POST /tasks/{ss58}/reset_active`.
    pub fn reset_active(&self) -> Result<serde_json::Value, ClientError> {
        let path = format!("/tasks/{}/reset_active", self.address());
        self.send(&path, Some(&self.auth()))
    }

    /// `POST /tasks/{ss58}/request`: a batch of functions to evolve from or to evaluate.
    pub fn request_task(&self, task_type: TaskType) -> Result<TaskBatch, ClientError> {
        let path = format!("/tasks/{}/request", self.address());
        let body = TaskRequest {
            auth: self.auth(),
            task_type,
        };
        let v = self.send(&path, Some(&body))?;
        self.decode(&path, v)
    }

    /// `POST /tasks/{ss58}/{batch_id}/submit_evolution`.
    pub fn submit_evolution(
        &self,
        batch_id: &str,
        evolved_function: String,
        parent_functions: Vec<ParentRef>,
        metadata: EvolutionMetadata,
    ) -> Result<serde_json::Value, ClientError> {
        let path = format!("/tasks/{}/{batch_id}/submit_evolution", self.address());
        let body = EvolutionSubmission {
            auth: self.auth(),
            evolved_function,
            parent_functions,
            metadata,
        };
        self.send(&path, Some(&body))
    }

    /// `POST /tasks/{ss58}/{batch_id}/submit_evaluation`.
    pub fn submit_evaluation(
        &self,
        batch_id: &str,
        evaluations: Vec<Evaluation>,
    ) -> Result<serde_json::Value, ClientError> {
        let path = format!("/tasks/{}/{batch_id}/submit_evaluation", self.address());
        let body = EvaluationSubmission {
            auth: self.auth(),
            batch_id: batch_id.to_string(),
            evaluations,
        };
        self.send(&path, Some(&body))
    }
}

/// Run `op` up to `attempts` times while it fails with a transient error, sleeping `delay`
/// before the first retry and doubling it after each (AMM: 3 attempts, doubling delay).
pub fn with_retries<T>(
    attempts: u32,
    mut delay: Duration,
    mut op: impl FnMut() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match op() {
            Err(e) if e.is_transient() && tries < attempts.max(1) => {
                eprintln!("ncpc: {e}; retrying in {delay:?}");
                std::thread::sleep(delay);
                delay = delay.saturating_mul(2);
            }
            result => return result,
        }
    }
}
