//! `/api/me` and `/api/keys`: who is calling, and the named API keys (owners only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};
use unavoce_core::access::Role;
use unavoce_platform::keys::{KeyError, create_key};

use crate::AppState;
use crate::access::RULES;
use crate::auth::{ADMIN_KEY_NAME, Caller};
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/me`: the calling key's name and role, and the routes it may use (what the
/// dashboard shows).
#[utoipa::path(
    get,
    path = "/me",
    operation_id = "me",
    tag = "keys",
    responses((status = 200, description = "The calling key and what it may use.", body = doc::Me))
)]
pub async fn me(Extension(caller): Extension<Caller>) -> Json<Value> {
    let routes: Vec<String> = RULES
        .iter()
        .filter(|r| r.allows(caller.role))
        .map(|r| format!("{} {}", r.method, r.route))
        .collect();
    Json(json!({"name": caller.name, "role": caller.role,
        "people": match caller.role.person_view() {
            unavoce_core::access::PersonView::Full => "full",
            unavoce_core::access::PersonView::Masked => "masked",
            unavoce_core::access::PersonView::Hidden => "hidden",
        },
        "routes": routes}))
}

/// `GET /api/keys`: every key's name, role, creation and last use (never the key).
#[utoipa::path(
    get,
    path = "/keys",
    operation_id = "list_keys",
    tag = "keys",
    responses((status = 200, description = "Every named key.", body = doc::KeyList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let keys = state.platform.governance.keys().await?;
    Ok(Json(json!({ "keys": keys })))
}

/// `POST /api/keys` `{name, role}`: a new key, answered this once.
#[utoipa::path(
    post,
    path = "/keys",
    operation_id = "create_key",
    tag = "keys",
    request_body = doc::NewKey,
    responses(
        (status = 201, description = "The key, shown this once.", body = doc::CreatedKey),
        (status = 400, response = openapi::BadRequest),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    let role: Role = body
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .parse()
        .map_err(|e: unavoce_core::access::UnknownRole| {
            ApiError::bad_request("invalid_role", e.to_string())
        })?;
    let key = create_key(state.platform.governance.as_ref(), name, role)
        .await
        .map_err(|e| match e {
            KeyError::InvalidName(_) => ApiError::bad_request("invalid_name", e.to_string()),
            KeyError::Taken(_) => ApiError::new(StatusCode::CONFLICT, "name_taken", e.to_string()),
            KeyError::Store(e) => e.into(),
            KeyError::Random(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_randomness",
                e.to_string(),
            ),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": name, "role": role, "key": key,
            "note": "keep the key now: it is not kept and cannot be shown again"})),
    ))
}

/// `DELETE /api/keys/{name}`: revokes a key at once (its sessions end too).
#[utoipa::path(
    delete,
    path = "/keys/{name}",
    operation_id = "revoke_key",
    tag = "keys",
    params(("name" = String, Path, description = "The key's name")),
    responses(
        (status = 204, description = "Revoked; its sessions end too."),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if name == ADMIN_KEY_NAME {
        return Err(ApiError::bad_request(
            "admin_key",
            "the admin key comes from the data folder, `--admin-key` or UNAVOCE_ADMIN_KEY; change it there",
        ));
    }
    if state.platform.governance.revoke_key(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no key named {name:?}")))
    }
}
