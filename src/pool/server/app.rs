//! The router: every endpoint under [`API_PREFIX`], with the body-size limit as a layer.

use super::handlers;
use super::state::AppState;
use crate::pool::protocol::API_PREFIX;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;

/// The application, separate from any socket so it can be driven in-process.
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.config.body_limit;
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
        .with_state(state)
}
