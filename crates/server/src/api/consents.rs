//! What an agent records about a person: consents — `GET /api/profiles/{id}/consents`
//! (current state and full history) and `POST` (a statement recorded as a consent
//! event in the log, like any other touchpoint's) — and case notes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use unavoce_core::identity::ProfileId;
use unavoce_core::platform_events::{self, API_SOURCE};
use unavoce_core::profile::{ConsentLine, fold_consents};
use unavoce_projections::RecordError;

use super::{live_profile, live_profile_with_events};
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// A consent statement.
#[derive(Deserialize, utoipa::ToSchema)]
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
#[utoipa::path(
    get,
    path = "/profiles/{id}/consents",
    operation_id = "list_consents",
    tag = "privacy",
    params(("id" = String, Path, description = "A profile id such as `p-42`; an id merged away resolves to the profile it was merged into")),
    responses(
        (status = 200, description = "The current consents and every statement.", body = doc::Consents),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (node, seqs) = live_profile_with_events(&state, &id).await?;
    let events = state.platform.intake.log().events_at(seqs).await?;
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
#[utoipa::path(
    post,
    path = "/profiles/{id}/consents",
    operation_id = "record_consent",
    tag = "privacy",
    params(("id" = String, Path, description = "A profile id such as `p-42`; an id merged away resolves to the profile it was merged into")),
    request_body = ConsentStatement,
    responses(
        (status = 201, description = "Recorded as a `Consent Given` or `Consent Withdrawn` event.", body = doc::ConsentRecorded),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
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
    record_for(
        &state,
        node.id,
        message,
        "/api/profiles/{id}/consents",
        "consent",
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"profile_id": node.id, "purpose": purpose, "channel": statement.channel,
            "granted": statement.granted}),
        ),
    ))
}

/// Records `message` about `profile` from the API; `what` names it in errors.
pub(super) async fn record_for(
    state: &AppState,
    profile: ProfileId,
    message: Map<String, Value>,
    endpoint: &str,
    what: &str,
) -> Result<(), ApiError> {
    state
        .platform
        .recorder
        .record_about(
            API_SOURCE,
            profile,
            message,
            json!({ "endpoint": endpoint }),
        )
        .await
        .map(|_| ())
        .map_err(|e| match e {
            RecordError::NoIdentity(_) => ApiError::new(
                StatusCode::CONFLICT,
                "no_event_identity",
                format!(
                    "profile {profile} has no user id or anonymous id to record the {what} under"
                ),
            ),
            RecordError::Rejected(why) => ApiError::bad_request(
                "invalid_body",
                format!("the {what} could not be recorded: {why}"),
            ),
            RecordError::Store(e) => e.into(),
        })
}

/// An agent's note on a case.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseNote {
    case_id: String,
    note: String,
}

/// `POST /api/profiles/{id}/notes` `{"case_id", "note"}`: a note on the person's case,
/// recorded as a `Case Updated` event (it shows on the context card's case).
#[utoipa::path(
    post,
    path = "/profiles/{id}/notes",
    operation_id = "add_case_note",
    tag = "profiles",
    params(("id" = String, Path, description = "A profile id such as `p-42`; an id merged away resolves to the profile it was merged into")),
    request_body = CaseNote,
    responses(
        (status = 201, description = "Recorded as a `Case Updated` event.", body = doc::NoteRecorded),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let note: CaseNote = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the case note is not valid: {e}"))
    })?;
    let (case_id, text) = (note.case_id.trim(), note.note.trim());
    if case_id.is_empty() || text.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "`case_id` and `note` must not be empty",
        ));
    }
    let node = live_profile(&state, &id).await?;
    let message = platform_events::case_note(case_id, text);
    record_for(
        &state,
        node.id,
        message,
        "/api/profiles/{id}/notes",
        "case note",
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"profile_id": node.id, "case_id": case_id, "note": text})),
    ))
}
