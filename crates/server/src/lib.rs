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
pub mod openapi;
mod security;
mod session;
mod tracking;
mod unsubscribe;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Json, Router, middleware};
use serde_json::json;
use unavoce_platform::Platform;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{Keys, WriteKey};
pub use body::read_body;
pub use error::ApiError;
pub use metrics::Metrics;
pub use session::Sessions;
pub use session::claims;
pub use tracking::{BatchBody, read_batch};

/// What every handler can reach: the platform, the keys and the metrics.
#[derive(Clone)]
pub struct AppState {
    pub platform: Platform,
    pub keys: Arc<Keys>,
    pub metrics: Arc<Metrics>,
    /// Dashboard sessions: cookie flags and sign-in attempts.
    pub sessions: Arc<Sessions>,
    /// What reads the configuration file again (`POST /api/config/reload`); `None`
    /// when there is no file to read.
    pub config: Option<Arc<dyn api::ConfigReload>>,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let api = api::routes().route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_key,
    ));
    let (routes, _documented) = routes(api).split_for_parts();
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track_requests,
        ))
        .layer(middleware::from_fn(security::tracking_cors))
        .layer(middleware::from_fn(security::keyless_body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::headers,
        ))
        // Bodies are read with their own limits (`body::read_body`); endpoints that need
        // no key get far less (`security::keyless_body_limit`).
        .layer(DefaultBodyLimit::max(api::IMPORT_BODY_LIMIT))
        .with_state(state)
}

/// Every route, with `api` under `/api/`. Each is registered with its documentation
/// (`routes!`), and only so: what is routed is what `/api/openapi.json` describes
/// (tests/openapi.rs checks both ways).
fn routes(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let mut tracking = OpenApiRouter::new()
        .routes(routes!(tracking::batch))
        .routes(routes!(tracking::import))
        .routes(routes!(tracking::identify))
        .routes(routes!(tracking::track))
        .routes(routes!(tracking::page))
        .routes(routes!(tracking::screen))
        .routes(routes!(tracking::group))
        .routes(routes!(tracking::alias))
        .routes(routes!(tracking::batch_short))
        .routes(routes!(tracking::identify_short))
        .routes(routes!(tracking::track_short))
        .routes(routes!(tracking::page_short))
        .routes(routes!(tracking::screen_short))
        .routes(routes!(tracking::group_short))
        .routes(routes!(tracking::alias_short));
    openapi::tracking(tracking.get_openapi_mut());
    let mut api = api;
    openapi::behind_api_key(api.get_openapi_mut());
    OpenApiRouter::with_openapi(openapi::base())
        .merge(tracking)
        .nest("/api", api)
        // Outside the nest: no key needed.
        .routes(routes!(openapi::json))
        .routes(routes!(unsubscribe::page, unsubscribe::confirm))
        .routes(routes!(callbacks::twilio_status))
        .routes(routes!(callbacks::twilio_inbound))
        .routes(routes!(
            callbacks::whatsapp_verify,
            callbacks::whatsapp_notify
        ))
        .routes(routes!(callbacks::open_pixel))
        .routes(routes!(callbacks::click))
        .routes(routes!(dashboard::index))
        .routes(routes!(dashboard::asset))
        .routes(routes!(session::sign_in))
        .routes(routes!(session::sign_out))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "Alive.", body = openapi::schemas::Health))
)]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the event log takes writes.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = openapi::schemas::Health),
        (status = 503, response = openapi::Unavailable),
    )
)]
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

/// `GET /metrics`: Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "The metrics.",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body = String
    ))
)]
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
