//! `/api/segments`: audiences kept current as events arrive, their sizes and members.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use jiff::Timestamp;
use serde_json::{Value, json};
use unavoce_core::identity::ProfileId;
use unavoce_projections::catalog::Status;
use unavoce_projections::{SegmentDefinition, SegmentError};

use super::lifecycle::{self, change_error};
use super::limit_param;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/segments`: every segment with its size.
#[utoipa::path(
    get,
    path = "/segments",
    operation_id = "list_segments",
    tag = "segments",
    responses((status = 200, description = "Every segment with its size.", body = doc::SegmentList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.platform.identity.catch_up().await?;
    Ok(Json(json!({"segments": state.platform.segments.list()})))
}

/// `POST /api/segments`: defines a segment (`name`, `expression`, `description`). The
/// expression is checked at once; members enter as the segment is evaluated, within
/// moments for everyone.
#[utoipa::path(
    post,
    path = "/segments",
    operation_id = "create_segment",
    tag = "segments",
    request_body = doc::SegmentDefinition,
    responses(
        (status = 201, description = "Defined; members enter as it is evaluated.", body = doc::SegmentInfo),
        (status = 400, response = openapi::BadRequest),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let definition: SegmentDefinition = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the segment is not valid: {e}"))
    })?;
    let name = definition.name.clone();
    state
        .platform
        .segments
        .define(definition, lifecycle::edit(&caller))
        .await
        .map_err(|e| match e {
            SegmentError::BadName(_) => ApiError::bad_request("invalid_name", e.to_string()),
            SegmentError::BadExpression { .. } => {
                ApiError::bad_request("invalid_expression", e.to_string())
            }
            SegmentError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
            SegmentError::Store(e) => ApiError::from(e),
        })?;
    let info = state.platform.segments.get(&name);
    Ok((StatusCode::CREATED, Json(json!(info))))
}

/// `GET /api/segments/{name}`: one segment with its size.
#[utoipa::path(
    get,
    path = "/segments/{name}",
    operation_id = "show_segment",
    tag = "segments",
    params(("name" = String, Path, description = "The segment's name")),
    responses(
        (status = 200, description = "The segment with its size.", body = doc::SegmentInfo),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.platform.identity.catch_up().await?;
    let info = state
        .platform
        .segments
        .get(&name)
        .ok_or_else(|| no_such_segment(&name))?;
    Ok(Json(json!(info)))
}

/// `GET /api/segments/{name}/members?limit=&cursor=`: the people in a segment, in
/// profile order; `next_cursor` continues.
#[utoipa::path(
    get,
    path = "/segments/{name}/members",
    operation_id = "list_segment_members",
    tag = "segments",
    params(
        ("name" = String, Path, description = "The segment's name"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page (a profile id)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "100 by default"),
    ),
    responses(
        (status = 200, description = "Members in profile order.", body = doc::SegmentMembers),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    state.platform.identity.catch_up().await?;
    if state.platform.segments.get(&name).is_none() {
        return Err(no_such_segment(&name));
    }
    let limit = limit_param(&params, 100, 10_000)?;
    let after = match params.get("cursor") {
        Some(cursor) => Some(cursor.parse::<ProfileId>().map_err(|()| {
            ApiError::bad_request("invalid_parameter", "`cursor` is not a profile id")
        })?),
        None => None,
    };
    let members = state.platform.segments.members(&name, after, limit);
    let next_cursor = (members.len() == limit)
        .then(|| members.last().map(ToString::to_string))
        .flatten();
    Ok(Json(json!({
        "segment": name,
        "members": members.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

/// `PUT /api/segments/{name}`: a new version of a segment defined through the API,
/// checked as a new one is; everyone is evaluated again under it. With
/// `?dry_run=true`, who would enter and leave, nothing stored.
#[utoipa::path(
    put,
    path = "/segments/{name}",
    operation_id = "revise_segment",
    tag = "segments",
    params(
        ("name" = String, Path, description = "The segment's name"),
        ("dry_run" = Option<bool>, Query, description = "Tell what would change, change nothing"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "On a dry run, how many of those entering and leaving to list (20 by default)"),
    ),
    request_body = doc::SegmentDefinition,
    responses(
        (status = 200, description = "The version in force, and what changed (on a dry run, who would enter and leave).", body = doc::Revised),
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
    let definition: SegmentDefinition =
        lifecycle::read_revision(&body, &name, |d: &SegmentDefinition| &d.name, "segment")?;
    let segments = &state.platform.segments;
    if lifecycle::dry_run(&params) {
        let limit = limit_param(&params, 20, 1_000)?;
        state.platform.identity.catch_up().await?;
        let changes = segments
            .check_revision(&definition)
            .map_err(|e| change_error(e, "invalid_expression"))?;
        let preview = segments
            .preview(&definition, Timestamp::now(), limit)
            .map_err(|e| change_error(e, "invalid_expression"))?;
        let mut answer = json!(preview);
        answer["dry_run"] = json!(true);
        answer["name"] = json!(name);
        answer["changes"] = json!(changes);
        return Ok(Json(answer));
    }
    let revision = segments
        .revise(definition, lifecycle::edit(&caller))
        .await
        .map_err(|e| change_error(e, "invalid_expression"))?;
    Ok(lifecycle::revised(&name, &revision))
}

/// `POST /api/segments/{name}/pause`: membership is held as it is (nobody enters or
/// leaves) until resumed.
#[utoipa::path(
    post,
    path = "/segments/{name}/pause",
    operation_id = "pause_segment",
    tag = "segments",
    params(("name" = String, Path, description = "The segment's name")),
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

/// `POST /api/segments/{name}/resume`: a paused segment is evaluated again.
#[utoipa::path(
    post,
    path = "/segments/{name}/resume",
    operation_id = "resume_segment",
    tag = "segments",
    params(("name" = String, Path, description = "The segment's name")),
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

/// `DELETE /api/segments/{name}`: retires the segment: everyone leaves it, nobody
/// enters again, and it no longer changes (its history is kept).
#[utoipa::path(
    delete,
    path = "/segments/{name}",
    operation_id = "retire_segment",
    tag = "segments",
    params(("name" = String, Path, description = "The segment's name")),
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
        .segments
        .set_status(name, status, lifecycle::edit(caller))
        .await
        .map_err(|e| change_error(e, "invalid_expression"))?;
    Ok(lifecycle::status_changed(name, was, status))
}

/// `GET /api/segments/{name}/versions`: every version of a segment defined through the
/// API, with who made it, when and what changed, and its changes of status.
#[utoipa::path(
    get,
    path = "/segments/{name}/versions",
    operation_id = "list_segment_versions",
    tag = "segments",
    params(("name" = String, Path, description = "The segment's name")),
    responses(
        (status = 200, description = "Its history.", body = doc::DefinitionHistory),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let segments = &state.platform.segments;
    let origin = segments.get(&name).map(|info| info.origin);
    lifecycle::versions(&name, origin, segments.versions(&name))
}

fn no_such_segment(name: &str) -> ApiError {
    ApiError::not_found(format!("there is no segment {name:?}"))
}
