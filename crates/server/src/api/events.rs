//! `GET /api/stats` and `GET /api/events`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};
use unavoce_store::{EventQuery, StoredEvent};

use super::parse_param;
use crate::AppState;
use crate::error::ApiError;

/// `GET /api/stats`: counts of the log and the quarantine.
pub async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stats = state.intake.log().stats().await?;
    Ok(Json(json!({
        "events": stats.events,
        "duplicates": stats.duplicates,
        "quarantined": stats.quarantined,
        "quarantined_total": stats.quarantined_total,
    })))
}

/// `GET /api/events?user_id=|anonymous_id=&limit=&cursor=`: stored events, oldest first.
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    if params.contains_key("profile_id") {
        return Err(ApiError::bad_request(
            "unsupported_filter",
            "filtering by profile_id needs identity resolution, which this build does not have yet; filter by user_id or anonymous_id",
        ));
    }
    let limit = parse_param::<usize>("limit", params.get("limit"))?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "`limit` must be between 1 and 1000",
        ));
    }
    let query = EventQuery {
        user_id: params.get("user_id").cloned(),
        anonymous_id: params.get("anonymous_id").cloned(),
        after_seq: parse_param("cursor", params.get("cursor"))?,
        limit,
    };
    let page = state.intake.log().events(query).await?;
    Ok(Json(json!({
        "events": page.events.into_iter().map(event_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    })))
}

/// An event as the API shows it: the normalised message, with its log position and source.
pub fn event_json(stored: StoredEvent) -> Value {
    let mut message = stored.event.message;
    message.insert("seq".into(), stored.seq.into());
    message.insert("source".into(), stored.event.source.into());
    Value::Object(message)
}
