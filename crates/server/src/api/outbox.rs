//! `/api/outbox`: messages on their way, sent, given up (dead letters, which can be
//! requeued) or cancelled, and each provider lane's pace and counts.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};
use unavoce_store::{OutboxQuery, OutboxStatus};

use super::{limit_param, parse_param, profile_filter};
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/outbox?status=&channel=&broadcast=&profile=&after=&limit=`: entries,
/// oldest first.
#[utoipa::path(
    get,
    path = "/outbox",
    operation_id = "list_outbox",
    tag = "outbox",
    params(
        ("status" = Option<String>, Query, description = "`pending`, `sending`, `sent`, `dead` or `cancelled`"),
        ("channel" = Option<String>, Query),
        ("broadcast" = Option<String>, Query),
        ("profile" = Option<String>, Query, description = "A profile id"),
        ("after" = Option<i64>, Query, description = "`next_after` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "100 by default"),
    ),
    responses(
        (status = 200, description = "Entries, oldest first.", body = doc::OutboxPage),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit_param(&params, 100, 1_000)?;
    let after_id = parse_param::<i64>("after", params.get("after"))?;
    let status = params
        .get("status")
        .map(|s| {
            OutboxStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("`status` is {s:?}; expected {}", statuses()),
                )
            })
        })
        .transpose()?;
    let profile_ids = match params.get("profile").map(|p| profile_filter(p)) {
        None => Vec::new(),
        Some(Some(profile)) => vec![profile],
        // Text no profile id is stored as: no entry is for it.
        Some(None) => return Ok(Json(json!({"entries": [], "next_after": null}))),
    };
    let query = OutboxQuery {
        status,
        channel: params.get("channel").cloned(),
        broadcast: params.get("broadcast").cloned(),
        profile_ids,
        after_id,
        limit,
    };
    let entries = state
        .platform
        .delivery
        .platform_outbox()
        .outbox(query)
        .await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({"entries": entries, "next_after": next})))
}

/// The outbox statuses, for a message: `pending, sending, sent, dead or cancelled`.
fn statuses() -> String {
    let [rest @ .., last] = OutboxStatus::ALL.map(OutboxStatus::as_str);
    format!("{} or {last}", rest.join(", "))
}

/// `GET /api/outbox/summary`: entries by channel and status, and the provider lanes.
#[utoipa::path(
    get,
    path = "/outbox/summary",
    operation_id = "outbox_summary",
    tag = "outbox",
    responses((status = 200, description = "Entries by channel and status, and the provider lanes.", body = doc::OutboxSummary))
)]
pub async fn summary(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let counts = state
        .platform
        .delivery
        .platform_outbox()
        .outbox_counts()
        .await?;
    Ok(Json(
        json!({"counts": counts, "lanes": state.platform.delivery.lanes()}),
    ))
}

/// `GET /api/outbox/{id}`: one entry.
#[utoipa::path(
    get,
    path = "/outbox/{id}",
    operation_id = "show_outbox_entry",
    tag = "outbox",
    params(("id" = i64, Path, description = "The entry's id")),
    responses(
        (status = 200, description = "The entry.", body = doc::OutboxEntry),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let entry = state
        .platform
        .delivery
        .platform_outbox()
        .outbox_entry(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no outbox entry {id}")))?;
    Ok(Json(json!(entry)))
}

/// `POST /api/outbox/{id}/requeue`: a dead letter back in line, due now.
#[utoipa::path(
    post,
    path = "/outbox/{id}/requeue",
    operation_id = "requeue_outbox_entry",
    tag = "outbox",
    params(("id" = i64, Path, description = "The entry's id")),
    responses(
        (status = 200, description = "Back in line, due now.", body = doc::Requeued),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn requeue(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let outbox = state.platform.delivery.platform_outbox();
    if outbox.requeue(id, Timestamp::now()).await? {
        return Ok(Json(json!({"id": id, "status": OutboxStatus::Pending})));
    }
    match outbox.outbox_entry(id).await? {
        None => Err(ApiError::not_found(format!("no outbox entry {id}"))),
        Some(entry) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_dead",
            format!(
                "entry {id} is {}; only dead letters can be requeued",
                entry.status
            ),
        )),
    }
}
