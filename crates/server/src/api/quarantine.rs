//! The quarantine: list, inspect, replay.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use unavoce_intake::IntakeError;
use unavoce_store::{QuarantineEntry, QuarantineQuery, QuarantineStatus};

use super::parse_param;
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/quarantine?status=pending|replayed&code=&limit=&cursor=`.
#[utoipa::path(
    get,
    path = "/quarantine",
    operation_id = "list_quarantine",
    tag = "quarantine",
    params(
        ("status" = Option<String>, Query, description = "`pending`, `replayed` or `all` (default)"),
        ("code" = Option<String>, Query, description = "Entries refused with this code"),
        ("cursor" = Option<i64>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "100 by default; kept within 1..=1000"),
    ),
    responses(
        (status = 200, description = "Quarantine entries.", body = doc::QuarantinePage),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let status = match params.get("status").map(String::as_str) {
        None | Some("all") => None,
        Some("pending") => Some(QuarantineStatus::Pending),
        Some("replayed") => Some(QuarantineStatus::Replayed),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("`status` is {other:?}; expected pending, replayed or all"),
            ));
        }
    };
    let limit = parse_param::<usize>("limit", params.get("limit"))?
        .unwrap_or(100)
        .clamp(1, 1000);
    let page = state
        .platform
        .intake
        .log()
        .quarantine(QuarantineQuery {
            status,
            code: params.get("code").cloned(),
            after_id: parse_param("cursor", params.get("cursor"))?,
            limit,
        })
        .await?;
    Ok(Json(json!({
        "entries": page.entries.into_iter().map(entry_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    })))
}

/// `GET /api/quarantine/{id}`.
#[utoipa::path(
    get,
    path = "/quarantine/{id}",
    operation_id = "show_quarantine_entry",
    tag = "quarantine",
    params(("id" = i64, Path, description = "The entry's id")),
    responses(
        (status = 200, description = "The entry.", body = doc::QuarantineEntry),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    match state.platform.intake.log().quarantine_entry(id).await? {
        Some(entry) => Ok(Json(entry_json(entry))),
        None => Err(ApiError::not_found(format!(
            "quarantine entry {id} does not exist"
        ))),
    }
}

/// `POST /api/quarantine/{id}/replay`, optionally with `{"message": {...}}`, the fixed
/// message; without it the stored message is validated again (e.g. after a config fix).
#[utoipa::path(
    post,
    path = "/quarantine/{id}/replay",
    operation_id = "replay_quarantine_entry",
    tag = "quarantine",
    params(("id" = i64, Path, description = "The entry's id")),
    request_body(content = Option<doc::ReplayRequest>, description = "Optional: the fixed message."),
    responses(
        (status = 200, description = "Stored (or found already stored).", body = doc::Replayed),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 422, response = openapi::Unprocessable),
    )
)]
pub async fn replay(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let fixed = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let request: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        })?;
        match request.get("message") {
            Some(Value::Object(message)) => Some(message.clone()),
            None | Some(Value::Null) => None,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    "`message` must be the fixed message, a JSON object",
                ));
            }
        }
    };
    match state
        .platform
        .intake
        .replay(id, fixed, Timestamp::now())
        .await
    {
        Ok(outcome) => Ok(Json(json!({"replayed": true, "event": outcome}))),
        Err(IntakeError::Store(e)) => Err(e.into()),
        Err(IntakeError::StillInvalid(rejection)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "still_invalid",
            format!("the message is still invalid: {}", rejection.message),
        )
        .with("reason_code", rejection.code.as_str())),
    }
}

fn entry_json(entry: QuarantineEntry) -> Value {
    let payload = match serde_json::from_str::<Value>(&entry.payload) {
        Ok(Value::Object(message)) => Value::Object(message),
        _ => Value::String(entry.payload),
    };
    let mut out = Map::new();
    out.insert("id".into(), entry.id.into());
    out.insert("received_at".into(), entry.received_at.to_string().into());
    out.insert("source".into(), entry.source.into());
    out.insert("code".into(), entry.code.into());
    out.insert("reason".into(), entry.reason.into());
    out.insert("message_id".into(), entry.message_id.into());
    out.insert("payload".into(), payload);
    out.insert("origin".into(), entry.origin);
    out.insert(
        "status".into(),
        serde_json::to_value(entry.status).unwrap_or(Value::Null),
    );
    out.insert(
        "replayed_at".into(),
        entry.replayed_at.map(|t| t.to_string()).into(),
    );
    out.insert("replayed_seq".into(), entry.replayed_seq.into());
    Value::Object(out)
}
