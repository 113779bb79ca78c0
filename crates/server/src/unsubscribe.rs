//! `/unsubscribe/{profile}/{token}`: the link in every e-mail. `GET` shows a page with
//! one button; `POST` (the button, or a mail client's one-click unsubscribe, RFC 8058)
//! withdraws the person's promotional consent for e-mail, as a `Consent Withdrawn` event
//! of theirs. The token is the link's signature: no key is needed, and no other
//! person's consent can be touched.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use serde_json::{Map, json};
use unavoce_core::platform_events::{self, UNSUBSCRIBE_SOURCE};
use unavoce_engagement::links;
use unavoce_projections::RecordError;

use crate::AppState;
use crate::error::ApiError;
use crate::openapi;

async fn person(
    state: &AppState,
    profile: &str,
    token: &str,
) -> Result<unavoce_core::identity::graph::ProfileNode, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_link",
            "this unsubscribe link is not valid",
        )
    };
    let id = crate::api::profile_id(profile).map_err(|_| invalid())?;
    if !state
        .platform
        .messages
        .links()
        .verify_unsubscribe(id, token)
    {
        return Err(invalid());
    }
    state.platform.identity.catch_up().await?;
    state
        .platform
        .identity
        .read(|g| g.profile(id).cloned())
        .ok_or_else(invalid)
}

/// `GET`: a page asking to confirm.
#[utoipa::path(
    get,
    path = links::UNSUBSCRIBE_ROUTE,
    operation_id = "unsubscribe_page",
    tag = "links",
    params(
        ("profile" = String, Path, description = "The person's profile id"),
        ("token" = String, Path, description = "The link's signature"),
    ),
    responses(
        (status = 200, description = "A page with one button.", content_type = "text/html", body = String),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn page(
    State(state): State<AppState>,
    Path((profile, token)): Path<(String, String)>,
) -> Result<Html<String>, ApiError> {
    person(&state, &profile, &token).await?;
    Ok(Html(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>\
         <p>Stop receiving offers by e-mail?</p>\
         <form method=post><button type=submit>Unsubscribe</button></form>"
            .to_string(),
    ))
}

/// `POST`: withdraws the promotional e-mail consent.
#[utoipa::path(
    post,
    path = links::UNSUBSCRIBE_ROUTE,
    operation_id = "unsubscribe",
    tag = "links",
    params(
        ("profile" = String, Path, description = "The person's profile id"),
        ("token" = String, Path, description = "The link's signature"),
    ),
    responses(
        (status = 200, description = "Withdrawn (a `Consent Withdrawn` event of the person's).", content_type = "text/html", body = String),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 500, response = openapi::InternalError),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    Path((profile, token)): Path<(String, String)>,
) -> Result<Html<String>, ApiError> {
    let node = person(&state, &profile, &token).await?;
    let withdrawal = platform_events::consent("promotional", Some("email"), false, Map::new());
    state
        .platform
        .recorder
        .record_about(
            UNSUBSCRIBE_SOURCE,
            node.id,
            withdrawal,
            json!({"endpoint": "/unsubscribe"}),
        )
        .await
        .map_err(|e| match e {
            RecordError::NoIdentity(_) => ApiError::new(
                StatusCode::CONFLICT,
                "no_event_identity",
                "this person has no identifier to record the withdrawal under",
            ),
            RecordError::Rejected(why) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "not_recorded",
                format!("the withdrawal could not be recorded: {why}"),
            ),
            RecordError::Store(e) => e.into(),
        })?;
    Ok(Html(
        "<!doctype html><meta charset=utf-8><title>Unsubscribed</title>\
         <p>Done: you will receive no more offers by e-mail.</p>"
            .to_string(),
    ))
}
