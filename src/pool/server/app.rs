//! The router: every endpoint under [`API_PREFIX`], with the body-size limit and the request
//! timeout as layers.

use super::handlers;
use super::state::AppState;
use crate::pool::protocol::API_PREFIX;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use std::sync::Arc;
use tower_http::timeout::TimeoutLayer;

/// The application, separate from any socket so it can be driven in-process.
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.config.body_limit;
    let timeout = state.config.request_timeout;
    let api = Router::new()
        .route("/miners/register", post(handlers::register))
        .route("/miners/{ss58}", get(handlers::miner_info))
        .route("/miners/{ss58}/balance", get(handlers::balance))
        .route("/tasks/{ss58}/request", post(handlers::request_task))
        .route("/tasks/{ss58}/reset_active", post(handlers::reset_active))
        .route(
            "/tasks/{ss58}/{batch_id}/submit_evolution",
            post(handlers::submit_evolution),
        )
        .route(
            "/tasks/{ss58}/{batch_id}/submit_evaluation",
            post(handlers::submit_evaluation),
        )
        .route("/leaderboard", get(handlers::leaderboard))
        .route("/openapi.json", get(handlers::openapi));
    Router::new()
        .nest(API_PREFIX, api)
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(limit))
        // A client that sends its body too slowly (or a stuck handler) gets 408 instead of
        // holding a connection and a task forever.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}
