//! Retention (owners): `GET /api/retention` (the rules and the last pass),
//! `POST /api/retention/run` (a pass now, e.g. after the rules changed).

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/retention`: the rules in force, whether any can expire an event, and the
/// last pass since start.
#[utoipa::path(
    get,
    path = "/retention",
    operation_id = "retention",
    tag = "privacy",
    responses((status = 200, description = "The rules and the last pass.", body = doc::Retention))
)]
pub async fn show(State(state): State<AppState>) -> Json<Value> {
    let retention = &state.platform.retention;
    Json(json!({
        "rules": retention.rules().config(),
        "active": retention.rules().is_active(),
        "check_every_hours": retention.rules().check_every().as_hours(),
        "last_pass": retention.last_pass(),
    }))
}

/// `POST /api/retention/run`: runs a pass now (after one under way, if any); answers
/// what it removed.
#[utoipa::path(
    post,
    path = "/retention/run",
    operation_id = "run_retention",
    tag = "privacy",
    responses(
        (status = 200, description = "What the pass did.", body = doc::RetentionRun),
        (status = 500, response = openapi::InternalError),
    )
)]
pub async fn run(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    // On a task of its own: a caller that stops waiting does not stop the pass half-way.
    let retention = state.platform.retention.clone();
    let pass = tokio::spawn(async move { retention.run_once(Timestamp::now()).await })
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "retention_failed",
                format!("the retention pass stopped: {e}"),
            )
        })??;
    Ok(Json(json!({ "pass": pass })))
}
