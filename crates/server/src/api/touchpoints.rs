//! The touchpoint registry: `GET/POST /api/touchpoints`, `GET/PUT/DELETE /api/touchpoints/{id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use unavoce_core::Touchpoint;
use unavoce_projections::{Origin, RegistryError};

use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

fn entry((touchpoint, origin): (Touchpoint, Origin)) -> Value {
    let mut value = serde_json::to_value(&touchpoint).unwrap_or_default();
    value["presence"] = json!(touchpoint.presence());
    value["defined_in"] = json!(origin);
    value
}

/// Every registered touchpoint.
#[utoipa::path(
    get,
    path = "/touchpoints",
    operation_id = "list_touchpoints",
    tag = "touchpoints",
    responses((status = 200, description = "Every registered touchpoint.", body = doc::TouchpointList))
)]
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let touchpoints: Vec<Value> = state
        .platform
        .touchpoints
        .list()
        .into_iter()
        .map(entry)
        .collect();
    Json(json!({ "touchpoints": touchpoints }))
}

/// One touchpoint.
#[utoipa::path(
    get,
    path = "/touchpoints/{id}",
    operation_id = "show_touchpoint",
    tag = "touchpoints",
    params(("id" = String, Path, description = "The touchpoint's id")),
    responses(
        (status = 200, description = "The touchpoint.", body = doc::TouchpointEntry),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .platform
        .touchpoints
        .get(&id)
        .map(|t| Json(entry(t)))
        .ok_or_else(|| ApiError::not_found(format!("touchpoint {id:?} does not exist")))
}

/// Registers a touchpoint.
#[utoipa::path(
    post,
    path = "/touchpoints",
    operation_id = "create_touchpoint",
    tag = "touchpoints",
    request_body = doc::Touchpoint,
    responses(
        (status = 201, description = "Registered.", body = doc::TouchpointEntry),
        (status = 400, response = openapi::BadRequest),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let touchpoint = parse(&body)?;
    let created = state
        .platform
        .touchpoints
        .create(touchpoint)
        .await
        .map_err(registry_error)?;
    Ok((StatusCode::CREATED, Json(entry((created, Origin::Api)))))
}

/// Replaces a touchpoint (to rename it, change its needs, retire it, ...).
#[utoipa::path(
    put,
    path = "/touchpoints/{id}",
    operation_id = "update_touchpoint",
    tag = "touchpoints",
    params(("id" = String, Path, description = "The touchpoint's id")),
    request_body(content = doc::Touchpoint, description = "The whole touchpoint; its `id` must be the path's."),
    responses(
        (status = 200, description = "Replaced.", body = doc::TouchpointEntry),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let touchpoint = parse(&body)?;
    let updated = state
        .platform
        .touchpoints
        .update(&id, touchpoint)
        .await
        .map_err(registry_error)?;
    Ok(Json(entry((updated, Origin::Api))))
}

/// Removes a touchpoint; its events stay in the log.
#[utoipa::path(
    delete,
    path = "/touchpoints/{id}",
    operation_id = "delete_touchpoint",
    tag = "touchpoints",
    params(("id" = String, Path, description = "The touchpoint's id")),
    responses(
        (status = 204, description = "Removed; its events stay in the log."),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .platform
        .touchpoints
        .delete(&id)
        .await
        .map_err(registry_error)?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse(body: &[u8]) -> Result<Touchpoint, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_touchpoint",
            format!(
                "not a touchpoint: {e}; expected id, name, channel, department, needs, status, ..."
            ),
        )
    })
}

fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::Invalid(_) | RegistryError::IdMismatch { .. } => {
            ApiError::bad_request("invalid_touchpoint", e.to_string())
        }
        RegistryError::FromConfig(_) => {
            ApiError::new(StatusCode::CONFLICT, "defined_in_config", e.to_string())
        }
        RegistryError::Exists(_) => {
            ApiError::new(StatusCode::CONFLICT, "already_exists", e.to_string())
        }
        RegistryError::NotFound(_) => ApiError::not_found(e.to_string()),
        RegistryError::Store(e) => e.into(),
    }
}
