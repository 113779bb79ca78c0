//! `/api/messages`: one message in every channel's style, checked when defined, and
//! previewed for a person.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use unavoce_core::message::MessageConfig;
use unavoce_engagement::{CatalogEntry, MessageDefinitionError};

use super::profile_id;
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

fn entry_json(entry: &CatalogEntry) -> Value {
    let mut value = json!(entry.message.config);
    value["channels"] = json!(entry.message.channels());
    value["origin"] = json!(entry.origin);
    value
}

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
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let config: MessageConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the message is not valid: {e}"))
    })?;
    let id = config.id.clone();
    state
        .platform
        .messages
        .define(config)
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
