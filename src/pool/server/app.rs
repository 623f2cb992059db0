//! The router: every endpoint under [`API_PREFIX`], with the body-size limit, the request
//! timeout and the per-IP limit as layers.

use super::error::ApiError;
use super::handlers;
use super::listener::Peer;
use super::pages;
use super::state::AppState;
use crate::pool::protocol::API_PREFIX;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
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
        .route("/functions", get(handlers::functions))
        .route("/functions/{id}", get(pages::function_json))
        .route("/stats", get(pages::stats_json))
        .route("/miners", get(pages::miners_json))
        .route("/openapi.json", get(handlers::openapi));
    Router::new()
        .nest(API_PREFIX, api)
        .route("/metrics", get(handlers::metrics))
        .route("/", get(pages::index))
        .route("/miners", get(pages::miners_page))
        .route("/function/{id}", get(pages::function_page))
        .route("/ui/{*path}", get(pages::ui_file))
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), per_ip_limit))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        // A client that sends its body too slowly (or a stuck handler) gets 408 instead of
        // holding a connection and a task forever.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}

/// The per-IP limit: an unsigned request (every GET) and every registration takes a token
/// from its address's bucket (IPv6 by /64); another signed request passes while the bucket
/// has room and takes a token when it is refused (400, 401, 403, 404, 409, 413, 422), so
/// neither anonymous reads, nor new keys, nor failed requests can make the server work
/// without bound. Requests without a peer address (driven
/// in-process) are not limited.
async fn per_ip_limit(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(ip) = req.extensions().get::<Peer>().map(|p| p.0.ip()) else {
        return next.run(req).await;
    };
    // The pages' embedded files cost no database work: a page load fetches a dozen of them.
    if req.uri().path().starts_with("/ui/") {
        return next.run(req).await;
    }
    // Registration is signed, but each one is a durable row: it counts like an unsigned
    // request, so one address cannot register keys without bound.
    let signed =
        req.method() == axum::http::Method::POST && !req.uri().path().ends_with("/register");
    let admitted = if signed {
        s.ip_has_room(ip)
    } else {
        s.ip_allow(ip)
    };
    if !admitted {
        return ApiError::TooManyRequests(format!(
            "too many {} requests from {ip}; slow down",
            if signed { "failed" } else { "unsigned" }
        ))
        .into_response();
    }
    let resp = next.run(req).await;
    if signed
        && matches!(
            resp.status().as_u16(),
            400 | 401 | 403 | 404 | 409 | 413 | 422
        )
    {
        s.ip_allow(ip);
    }
    resp
}

/// Count every answer by endpoint (the route's pattern, so miners' addresses do not make
/// new series) and status, and time it.
async fn record(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let m = &s.metrics;
    m.requests
        .with_label_values(&[endpoint.as_str(), &status.to_string()])
        .inc();
    m.latency
        .with_label_values(&[endpoint.as_str()])
        .observe(start.elapsed().as_secs_f64());
    if status == 500 || status == 503 {
        m.db_errors.inc();
    }
    resp
}
