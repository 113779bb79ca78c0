//! The consent ledger of a profile: `GET /api/profiles/{id}/consents` (current state
//! and full history) and `POST` (a statement recorded as a consent event in the log,
//! like any other touchpoint's).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use unavoce_core::platform_events::{self, API_SOURCE};
use unavoce_core::profile::{ConsentLine, fold_consents};
use unavoce_projections::RecordError;

use super::live_profile;
use crate::AppState;
use crate::error::ApiError;

/// A consent statement.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentStatement {
    purpose: String,
    /// Every channel when absent.
    #[serde(default)]
    channel: Option<String>,
    granted: bool,
    /// Where it was said (a touchpoint); the API when absent.
    #[serde(default)]
    touchpoint: Option<String>,
}

/// `GET /api/profiles/{id}/consents`: the current consents and every statement ever made.
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = live_profile(&state, &id).await?;
    let events = state
        .platform
        .intake
        .log()
        .events_at(node.events.clone())
        .await?;
    let mut refs: Vec<&unavoce_core::Event> = events.iter().map(|e| &e.event).collect();
    refs.sort_by_key(|e| e.timestamp);
    let current = fold_consents(refs.iter().copied());
    // The history: each statement on its own, oldest first.
    let history: Vec<ConsentLine> = refs
        .iter()
        .flat_map(|e| fold_consents(std::iter::once(*e)))
        .collect();
    Ok(Json(json!({
        "profile_id": node.id,
        "current": current,
        "history": history,
    })))
}

/// `POST /api/profiles/{id}/consents`: records a consent given or withdrawn, as a
/// `Consent Given` / `Consent Withdrawn` event of that person.
pub async fn record(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let statement: ConsentStatement = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("the consent statement is not valid: {e}"),
        )
    })?;
    let purpose = statement.purpose.trim().to_lowercase();
    if purpose.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "`purpose` must not be empty",
        ));
    }
    let node = live_profile(&state, &id).await?;
    let mut message = platform_events::consent(
        &purpose,
        statement.channel.as_deref(),
        statement.granted,
        Map::new(),
    );
    if let Some(touchpoint) = &statement.touchpoint {
        message.insert("context".into(), json!({"touchpoint": touchpoint}));
    }
    state
        .platform
        .recorder
        .record_about(
            API_SOURCE,
            node.id,
            message,
            json!({"endpoint": "/api/profiles/{id}/consents"}),
        )
        .await
        .map_err(|e| match e {
            RecordError::NoIdentity(_) => ApiError::new(
                StatusCode::CONFLICT,
                "no_event_identity",
                format!(
                    "profile {} has no user id or anonymous id to record the consent under",
                    node.id
                ),
            ),
            RecordError::Rejected(why) => ApiError::bad_request(
                "invalid_body",
                format!("the consent could not be recorded: {why}"),
            ),
            RecordError::Store(e) => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"profile_id": node.id, "purpose": purpose, "channel": statement.channel,
            "granted": statement.granted}),
        ),
    ))
}
