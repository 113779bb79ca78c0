//! `GET /api/audit`: who changed what and who read whose data (owners only).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use jiff::Timestamp;
use serde_json::{Value, json};
use unavoce_store::AuditQuery;

use super::{limit_param, parse_param};
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/audit?actor=&profile_id=&action=&from=&to=&cursor=&limit=`: records,
/// newest first; `next_cursor` continues. `action` is a prefix (`POST`, `GET
/// /api/profiles/{id}`); `from` and `to` are RFC 3339 times.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "audit",
    tag = "audit",
    params(
        ("actor" = Option<String>, Query, description = "A key's name"),
        ("profile_id" = Option<String>, Query, description = "The person concerned"),
        ("action" = Option<String>, Query, description = "A prefix of the action (`POST`, `GET /api/profiles/{id}`)"),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339"),
        ("to" = Option<String>, Query, format = DateTime, description = "RFC 3339"),
        ("cursor" = Option<i64>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "100 by default"),
    ),
    responses(
        (status = 200, description = "Audit records, newest first.", body = doc::AuditPage),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit_param(&params, 100, 1_000)?;
    let time = |name: &str| -> Result<Option<Timestamp>, ApiError> {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!("`{name}` must be an RFC 3339 time; got {v:?}"),
                    )
                })
            })
            .transpose()
    };
    let text = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
    let query = AuditQuery {
        actor: text("actor"),
        profile_id: text("profile_id"),
        action: text("action"),
        from: time("from")?,
        to: time("to")?,
        before: parse_param::<i64>("cursor", params.get("cursor"))?,
        limit,
    };
    let records = state.platform.governance.audit_records(query).await?;
    let next_cursor = (records.len() == limit)
        .then(|| records.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(
        json!({"records": records, "next_cursor": next_cursor}),
    ))
}
