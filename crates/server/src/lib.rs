//! Unavoce's HTTP edge.
//!
//! The only crate that knows HTTP and wire JSON: it turns requests into intake
//! submissions and store queries, and their results into responses. It holds no
//! domain logic of its own.

pub mod access;
pub mod api;
pub mod auth;
mod body;
mod callbacks;
mod dashboard;
pub mod error;
pub mod export;
pub mod metrics;
mod session;
mod tracking;
mod unsubscribe;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde_json::json;
use unavoce_core::EventType;
use unavoce_delivery::{twilio, whatsapp};
use unavoce_engagement::links;
use unavoce_platform::Platform;

pub use auth::{Keys, WriteKey};
pub use error::ApiError;
pub use metrics::Metrics;

/// What every handler can reach: the platform, the keys and the metrics.
#[derive(Clone)]
pub struct AppState {
    pub platform: Platform,
    pub keys: Arc<Keys>,
    pub metrics: Arc<Metrics>,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let mut tracking = Router::new()
        .route("/v1/batch", post(tracking::batch))
        .route("/v1/import", post(tracking::batch));
    for event_type in EventType::ALL {
        tracking = tracking.route(
            &format!("/v1/{event_type}"),
            post(move |state, headers, body| tracking::single(state, event_type, headers, body)),
        );
    }
    let api = api::routes().route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_key,
    ));
    Router::new()
        .merge(tracking)
        .nest("/api", api)
        .route(
            links::UNSUBSCRIBE_ROUTE,
            get(unsubscribe::page).post(unsubscribe::confirm),
        )
        .route(twilio::STATUS_ROUTE, post(callbacks::twilio_status))
        .route(twilio::INBOUND_ROUTE, post(callbacks::twilio_inbound))
        .route(
            whatsapp::WEBHOOK_ROUTE,
            get(callbacks::whatsapp_verify).post(callbacks::whatsapp_notify),
        )
        .route(links::OPEN_ROUTE, get(callbacks::open_pixel))
        .route(links::CLICK_ROUTE, get(callbacks::click))
        .route("/", get(dashboard::index))
        .route("/assets/{name}", get(dashboard::asset))
        .route("/session", post(session::sign_in))
        .route("/session/end", post(session::sign_out))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track_requests,
        ))
        // Bodies are read with their own limits (`body::read_body`).
        .layer(DefaultBodyLimit::max(api::IMPORT_BODY_LIMIT))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.platform.intake.log().is_ready() {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError {
            retry_after_secs: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the event log's write queue is full or the log is shutting down",
            )
        })
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that HTTP method",
    )
}
