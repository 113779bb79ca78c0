//! Unavoce's HTTP edge.
//!
//! The only crate that knows HTTP and wire JSON: it turns requests into intake
//! submissions and store queries, and their results into responses. It holds no
//! domain logic of its own.

pub mod api;
mod assemble;
pub mod auth;
mod body;
mod callbacks;
mod dashboard;
pub mod error;
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
use unavoce_intake::Intake;

pub use assemble::{AssembleError, Blueprint, Running};
pub use auth::{Keys, WriteKey};
pub use error::ApiError;
pub use metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub intake: Intake,
    pub keys: Arc<Keys>,
    pub metrics: Arc<Metrics>,
    /// The identity graph, kept current from the log.
    pub identity: Arc<unavoce_projections::IdentityProjection>,
    /// The message catalog.
    pub messages: Arc<unavoce_engagement::Messages>,
    /// Journeys and their runs.
    pub journeys: Arc<unavoce_engagement::Journeys>,
    /// Department subscriptions: insights routed to departments.
    pub insights: Arc<unavoce_engagement::Insights>,
    /// Segments, kept current as events arrive.
    pub segments: Arc<unavoce_projections::Segments>,
    /// The registered touchpoints, from the config file and the API.
    pub touchpoints: Arc<unavoce_projections::TouchpointRegistry>,
    /// KPIs, journeys and the census.
    pub reports: Arc<unavoce_projections::Reports>,
    /// Messages through the policy gate.
    pub engagement: Arc<unavoce_engagement::Engagement>,
    /// The policy gate's decisions.
    pub decisions: Arc<dyn unavoce_store::DecisionLog>,
    /// The outbox worker, its providers and what comes back from them.
    pub delivery: Arc<unavoce_delivery::Dispatcher>,
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
        auth::require_admin,
    ));
    Router::new()
        .merge(tracking)
        .nest("/api", api)
        .route(
            "/unsubscribe/{profile}/{token}",
            get(unsubscribe::page).post(unsubscribe::confirm),
        )
        .route("/webhooks/twilio/status", post(callbacks::twilio_status))
        .route("/webhooks/twilio/inbound", post(callbacks::twilio_inbound))
        .route(
            "/webhooks/whatsapp",
            get(callbacks::whatsapp_verify).post(callbacks::whatsapp_notify),
        )
        .route("/t/open/{id}/{token}", get(callbacks::open_pixel))
        .route("/t/click/{id}/{token}/{target}", get(callbacks::click))
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
    if state.intake.log().is_ready() {
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
