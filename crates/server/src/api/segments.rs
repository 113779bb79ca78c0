//! `/api/segments`: audiences kept current as events arrive, their sizes and members.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use unavoce_core::identity::ProfileId;
use unavoce_projections::{SegmentDefinition, SegmentError};

use super::limit_param;
use crate::AppState;
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
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let definition: SegmentDefinition = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the segment is not valid: {e}"))
    })?;
    let name = definition.name.clone();
    state
        .platform
        .segments
        .define(definition)
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

fn no_such_segment(name: &str) -> ApiError {
    ApiError::not_found(format!("there is no segment {name:?}"))
}
