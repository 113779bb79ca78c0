//! `/api/subscriptions`: department subscriptions — which insight about customers goes
//! to which department, by webhook or e-mail digest.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};
use unavoce_core::subscription::SubscriptionConfig;
use unavoce_engagement::SubscriptionDefinitionError;
use unavoce_projections::catalog::Status;

use super::lifecycle::{self, change_error};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/subscriptions`: every subscription, with where it was defined.
#[utoipa::path(
    get,
    path = "/subscriptions",
    operation_id = "list_subscriptions",
    tag = "subscriptions",
    responses((status = 200, description = "Every subscription.", body = doc::SubscriptionList))
)]
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let subscriptions: Vec<Value> = state
        .platform
        .insights
        .list()
        .into_iter()
        .map(|e| {
            let mut value = json!(e.item.config);
            value["origin"] = json!(e.origin);
            value["version"] = json!(e.version);
            value["status"] = json!(e.status);
            value
        })
        .collect();
    Json(json!({"subscriptions": subscriptions}))
}

/// `POST /api/subscriptions`: defines a subscription, checked at once (its expression,
/// trigger and destinations).
#[utoipa::path(
    post,
    path = "/subscriptions",
    operation_id = "create_subscription",
    tag = "subscriptions",
    request_body = doc::SubscriptionDefinition,
    responses(
        (status = 201, description = "Defined.", body = doc::Named),
        (status = 400, response = openapi::BadRequest),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let config: SubscriptionConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("the subscription is not valid: {e}"),
        )
    })?;
    let name = config.name.clone();
    state
        .platform
        .insights
        .define(config, lifecycle::edit(&caller))
        .await
        .map_err(|e| match e {
            SubscriptionDefinitionError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "exists", e.to_string())
            }
            SubscriptionDefinitionError::Store(e) => e.into(),
            other => ApiError::bad_request("invalid_subscription", other.to_string()),
        })?;
    Ok((StatusCode::CREATED, Json(json!({"name": name}))))
}

/// A subscription's name.
const NAME_OF: fn(&SubscriptionConfig) -> &str = |c| &c.name;

/// `PUT /api/subscriptions/{name}`: a new version of a subscription defined through the API, checked as
/// a new one is (its destinations too); in force from the next event on. With `?dry_run=true`, what would change,
/// nothing stored.
#[utoipa::path(
    put,
    path = "/subscriptions/{name}",
    operation_id = "revise_subscription",
    tag = "subscriptions",
    params(
        ("name" = String, Path, description = "The subscription's name"),
        ("dry_run" = Option<bool>, Query, description = "Tell what would change, change nothing"),
    ),
    request_body = doc::SubscriptionDefinition,
    responses(
        (status = 200, description = "The version in force, and what changed.", body = doc::Revised),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn revise(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let config = lifecycle::read_revision(&body, &name, NAME_OF, "subscription")?;
    let insights = &state.platform.insights;
    if lifecycle::dry_run(&params) {
        let changes = insights
            .check_revision(&config)
            .map_err(|e| change_error(e, "invalid_subscription"))?;
        return Ok(Json(
            json!({"dry_run": true, "name": name, "changes": changes}),
        ));
    }
    let revision = insights
        .revise(config, lifecycle::edit(&caller))
        .await
        .map_err(|e| change_error(e, "invalid_subscription"))?;
    Ok(lifecycle::revised(&name, &revision))
}

/// `POST /api/subscriptions/{name}/pause`: it raises nothing until resumed.
#[utoipa::path(
    post,
    path = "/subscriptions/{name}/pause",
    operation_id = "pause_subscription",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 200, description = "Paused.", body = doc::StatusChanged),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &caller, &name, Status::Paused).await
}

/// `POST /api/subscriptions/{name}/resume`: a paused subscription raises insights again, from the next event on.
#[utoipa::path(
    post,
    path = "/subscriptions/{name}/resume",
    operation_id = "resume_subscription",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 200, description = "Active again.", body = doc::StatusChanged),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &caller, &name, Status::Active).await
}

/// `DELETE /api/subscriptions/{name}`: retires the subscription: it raises nothing again, and no longer changes (its
/// history is kept).
#[utoipa::path(
    delete,
    path = "/subscriptions/{name}",
    operation_id = "retire_subscription",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 200, description = "Retired.", body = doc::StatusChanged),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn retire(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &caller, &name, Status::Retired).await
}

async fn set_status(
    state: &AppState,
    caller: &Caller,
    name: &str,
    status: Status,
) -> Result<Json<Value>, ApiError> {
    let was = state
        .platform
        .insights
        .set_status(name, status, lifecycle::edit(caller))
        .await
        .map_err(|e| change_error(e, "invalid_subscription"))?;
    Ok(lifecycle::status_changed(name, was, status))
}

/// `GET /api/subscriptions/{name}/versions`: every version of a subscription defined through
/// the API, with who made it, when and what changed, and its changes of status.
#[utoipa::path(
    get,
    path = "/subscriptions/{name}/versions",
    operation_id = "list_subscription_versions",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 200, description = "Its history.", body = doc::DefinitionHistory),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let insights = &state.platform.insights;
    let origin = insights.get(&name).map(|e| e.origin);
    lifecycle::versions(&name, origin, insights.versions(&name))
}
