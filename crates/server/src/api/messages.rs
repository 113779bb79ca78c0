//! `/api/messages`: one message in every channel's style, checked when defined, and
//! previewed for a person.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};
use unavoce_core::message::MessageConfig;
use unavoce_engagement::{CatalogEntry, MessageDefinitionError};
use unavoce_projections::catalog::Status;

use super::lifecycle::{self, change_error};
use super::profile_id;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

fn entry_json(entry: &CatalogEntry) -> Value {
    let mut value = json!(entry.message.config);
    value["channels"] = json!(entry.message.channels());
    value["origin"] = json!(entry.origin);
    value["version"] = json!(entry.version);
    value["status"] = json!(entry.status);
    value
}

/// A message's name: its id.
const NAME_OF: fn(&MessageConfig) -> &str = |c| &c.id;

/// `GET /api/messages`: every message with its channels.
#[utoipa::path(
    get,
    path = "/messages",
    operation_id = "list_messages",
    tag = "messages",
    responses((status = 200, description = "Every message with its channels.", body = doc::MessageList))
)]
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let messages: Vec<Value> = state
        .platform
        .messages
        .list()
        .iter()
        .map(entry_json)
        .collect();
    Json(json!({"messages": messages}))
}

/// `POST /api/messages`: defines a message; its templates, variables and channel limits
/// are checked at once.
#[utoipa::path(
    post,
    path = "/messages",
    operation_id = "create_message",
    tag = "messages",
    request_body = doc::MessageDefinition,
    responses(
        (status = 201, description = "Defined.", body = doc::MessageEntry),
        (status = 400, response = openapi::BadRequest),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let config: MessageConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the message is not valid: {e}"))
    })?;
    let id = config.id.clone();
    state
        .platform
        .messages
        .define(config, lifecycle::edit(&caller))
        .await
        .map_err(|e| match e {
            MessageDefinitionError::Invalid(e) => {
                ApiError::bad_request("invalid_message", e.to_string())
            }
            MessageDefinitionError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "exists", e.to_string())
            }
            MessageDefinitionError::Store(e) => ApiError::from(e),
        })?;
    let entry = state.platform.messages.get(&id).map(|e| entry_json(&e));
    Ok((StatusCode::CREATED, Json(json!(entry))))
}

/// `GET /api/messages/{id}`: one message.
#[utoipa::path(
    get,
    path = "/messages/{id}",
    operation_id = "show_message",
    tag = "messages",
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The message.", body = doc::MessageEntry),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let entry = state
        .platform
        .messages
        .get(&id)
        .ok_or_else(|| no_such_message(&id))?;
    Ok(Json(entry_json(&entry)))
}

/// `GET /api/messages/{id}/preview?profile_id=&channel=`: the message rendered for that
/// person on one channel, or on each of its channels; a rendering the person's values
/// make impossible (too long for an SMS, say) says why.
#[utoipa::path(
    get,
    path = "/messages/{id}/preview",
    operation_id = "preview_message",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The message's id"),
        ("profile_id" = String, Query, description = "The person to render it for"),
        ("channel" = Option<String>, Query, description = "One channel; each of the message's channels by default"),
    ),
    responses(
        (status = 200, description = "The renderings.", body = doc::MessagePreview),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn preview(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let entry = state
        .platform
        .messages
        .get(&id)
        .ok_or_else(|| no_such_message(&id))?;
    let Some(profile) = params.get("profile_id") else {
        return Err(ApiError::bad_request(
            "missing_parameter",
            "`profile_id` names the person to preview the message for",
        ));
    };
    let profile = profile_id(profile)?;
    state.platform.identity.catch_up().await?;
    let profile = state
        .platform
        .identity
        .read(|g| g.profile(profile).map(|n| n.id))
        .ok_or_else(|| ApiError::not_found(format!("there is no profile {profile}")))?;
    let channels: Vec<&str> = match params.get("channel") {
        Some(channel) => vec![channel.as_str()],
        None => entry.message.channels(),
    };
    let renderings: Vec<Value> = state
        .platform
        .messages
        .preview(&entry.message, profile, &channels, jiff::Timestamp::now())
        .into_iter()
        .map(|(channel, rendered)| match rendered {
            Ok(rendering) => json!(rendering),
            Err(e) => json!({"channel": channel, "error": e.to_string()}),
        })
        .collect();
    Ok(Json(
        json!({"message": id, "profile_id": profile, "renderings": renderings}),
    ))
}

fn no_such_message(id: &str) -> ApiError {
    ApiError::not_found(format!("there is no message {id:?}"))
}

/// `PUT /api/messages/{id}`: a new version of a message defined through the API, checked as a
/// new one is; what is sent from now on is rendered from it. With `?dry_run=true`, what would change,
/// nothing stored.
#[utoipa::path(
    put,
    path = "/messages/{id}",
    operation_id = "revise_message",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The message's id"),
        ("dry_run" = Option<bool>, Query, description = "Tell what would change, change nothing"),
    ),
    request_body = doc::MessageDefinition,
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
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let config = lifecycle::read_revision(&body, &id, NAME_OF, "message")?;
    let messages = &state.platform.messages;
    if lifecycle::dry_run(&params) {
        let changes = messages
            .check_revision(&config)
            .map_err(|e| change_error(e, "invalid_message"))?;
        return Ok(Json(
            json!({"dry_run": true, "name": id, "changes": changes}),
        ));
    }
    let revision = messages
        .revise(config, lifecycle::edit(&caller))
        .await
        .map_err(|e| change_error(e, "invalid_message"))?;
    Ok(lifecycle::revised(&id, &revision))
}

/// `POST /api/messages/{id}/pause`: it is not sent (a journey step or broadcast that sends it is refused) until resumed.
#[utoipa::path(
    post,
    path = "/messages/{id}/pause",
    operation_id = "pause_message",
    tag = "messages",
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "Paused.", body = doc::StatusChanged),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &caller, &id, Status::Paused).await
}

/// `POST /api/messages/{id}/resume`: a paused message is sent again.
#[utoipa::path(
    post,
    path = "/messages/{id}/resume",
    operation_id = "resume_message",
    tag = "messages",
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "Active again.", body = doc::StatusChanged),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &caller, &id, Status::Active).await
}

/// `DELETE /api/messages/{id}`: retires the message: it is never sent again, and no longer changes (its history
/// is kept).
#[utoipa::path(
    delete,
    path = "/messages/{id}",
    operation_id = "retire_message",
    tag = "messages",
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "Retired.", body = doc::StatusChanged),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn retire(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &caller, &id, Status::Retired).await
}

async fn set_status(
    state: &AppState,
    caller: &Caller,
    id: &str,
    status: Status,
) -> Result<Json<Value>, ApiError> {
    let was = state
        .platform
        .messages
        .set_status(id, status, lifecycle::edit(caller))
        .await
        .map_err(|e| change_error(e, "invalid_message"))?;
    Ok(lifecycle::status_changed(id, was, status))
}

/// `GET /api/messages/{id}/versions`: every version of a message defined through
/// the API, with who made it, when and what changed, and its changes of status.
#[utoipa::path(
    get,
    path = "/messages/{id}/versions",
    operation_id = "list_message_versions",
    tag = "messages",
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "Its history.", body = doc::DefinitionHistory),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let messages = &state.platform.messages;
    let origin = messages.get(&id).map(|e| e.origin);
    lifecycle::versions(&id, origin, messages.versions(&id))
}
