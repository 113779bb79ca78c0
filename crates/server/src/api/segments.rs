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

/// `GET /api/segments`: every segment with its size.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.platform.identity.catch_up().await?;
    Ok(Json(json!({"segments": state.platform.segments.list()})))
}

/// `POST /api/segments`: defines a segment (`name`, `expression`, `description`). The
/// expression is checked at once; members enter as the segment is evaluated, within
/// moments for everyone.
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
