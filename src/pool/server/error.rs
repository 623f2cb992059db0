//! One error type for every handler. It maps to a status code and a FastAPI-style body
//! `{"detail": "..."}`, which the AMM client reads (it looks for "already has active task" in a
//! 400's detail). Internal causes are logged and never sent to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What a request can fail with, each variant carrying the message sent as `detail`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request makes no sense in the miner's current state (e.g. it already has an
    /// active task).
    #[error("{0}")]
    BadRequest(String),
    /// 401: the auth fields do not verify (bad message, clock skew, bad signature).
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the signer is not the miner named in the path, or the miner is not registered.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such miner, task or resource.
    #[error("{0}")]
    NotFound(String),
    /// 409: a replayed request, or a submission for a task that is no longer active.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 422: the body is not the JSON expected, or a genome does not pass the pool's AMM check.
    #[error("{0}")]
    Unprocessable(String),
    /// 429: too many requests from this key (or the server's replay memory is full).
    #[error("{0}")]
    TooManyRequests(String),
    /// 503: the database aborted a transaction that conflicted with a concurrent one (another
    /// replica's); the server runs it again a few times before answering this.
    #[error("a conflicting transaction: {0:#}")]
    Retry(anyhow::Error),
    /// 500: a bug or a storage failure; the cause is logged, the client sees a generic message.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    /// The status code the error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Retry(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        super::store::values::DbError::Sqlite(e).into()
    }
}

impl From<postgres::Error> for ApiError {
    fn from(e: postgres::Error) -> Self {
        super::store::values::DbError::Postgres(e).into()
    }
}

impl From<super::store::values::DbError> for ApiError {
    fn from(e: super::store::values::DbError) -> Self {
        if e.is_retryable() {
            ApiError::Retry(anyhow::Error::new(e))
        } else {
            ApiError::Internal(anyhow::Error::new(e).context("the pool database"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match self {
            ApiError::Internal(e) => {
                tracing::error!("internal error: {e:#}");
                "internal server error".to_string()
            }
            ApiError::Retry(e) => {
                tracing::warn!("gave up on a conflicting transaction: {e:#}");
                "the pool is busy; try again".to_string()
            }
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::Unprocessable(m)
            | ApiError::TooManyRequests(m) => m,
        };
        (status, Json(serde_json::json!({ "detail": detail }))).into_response()
    }
}
