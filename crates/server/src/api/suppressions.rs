//! Erasure and the suppression list (owners): `POST /api/profiles/{id}/erase`,
//! `GET /api/suppressions`, `DELETE /api/suppressions/{hash}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use unavoce_platform::erasure::{self, ErasureError};

use super::profile_id;
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `POST /api/profiles/{id}/erase`: erases the person (see
/// `unavoce_platform::erasure`); answers the receipt: what was removed, and the
/// suppression hashes now in force.
#[utoipa::path(
    post,
    path = "/profiles/{id}/erase",
    operation_id = "erase_profile",
    tag = "privacy",
    params(("id" = String, Path, description = "A profile id such as `p-42`")),
    responses(
        (status = 200, description = "The receipt.", body = doc::Erased),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn erase(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = profile_id(&id)?;
    let erased = erasure::erase(&state.platform, id)
        .await
        .map_err(|e| match e {
            ErasureError::NoSuchProfile(id) => {
                ApiError::not_found(format!("profile {id} does not exist"))
            }
            ErasureError::Store(e) => e.into(),
        })?;
    Ok(Json(serde_json::to_value(erased).unwrap_or_default()))
}

/// `GET /api/suppressions`: the keyed hashes of erased people's identifiers.
#[utoipa::path(
    get,
    path = "/suppressions",
    operation_id = "list_suppressions",
    tag = "privacy",
    responses((status = 200, description = "The suppression list.", body = doc::SuppressionList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let suppressions = state.platform.erasing.suppressions().await?;
    Ok(Json(json!({ "suppressions": suppressions })))
}

/// `DELETE /api/suppressions/{hash}`: lifts one; events carrying that identifier are
/// taken in again.
#[utoipa::path(
    delete,
    path = "/suppressions/{hash}",
    operation_id = "lift_suppression",
    tag = "privacy",
    params(("hash" = String, Path, description = "The suppression's hash")),
    responses(
        (status = 204, description = "Lifted."),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn lift(
    State(state): State<AppState>,
    Path(hash): Path<String>,
) -> Result<StatusCode, ApiError> {
    if erasure::lift(&state.platform, &hash).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no suppression {hash:?}")))
    }
}
