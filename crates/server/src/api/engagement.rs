//! `POST /api/broadcasts` and `GET /api/decisions`: messages through the policy gate,
//! and the log of its decisions.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use unavoce_core::audience::Audience;
use unavoce_engagement::{Broadcast, FallbackAfterError};
use unavoce_store::DecisionQuery;

use super::parse_param;
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// The body of `POST /api/broadcasts`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    message: String,
    audience: String,
    purpose: String,
    #[serde(default = "auto")]
    channel: String,
    /// `now` (default) or `optimal`: each person's best hour of the next day.
    #[serde(default)]
    send_time: Option<String>,
    /// With channel `auto` only: how long each message is watched (`90s`, `30m`,
    /// `24h`, `2d`, `1w`). When it bounces or fails, or is not read (opened, clicked,
    /// answered) by then, the person's next ranked channel is tried through the policy
    /// gate, with its own decision (reason `fallback`) in the decision log.
    #[serde(default)]
    #[schema(example = "24h")]
    fallback_after: Option<String>,
    #[serde(default)]
    dry_run: bool,
    /// On a dry run, how many people's decisions to list (default 1,000; the totals
    /// always count everyone).
    #[serde(default = "listed")]
    list_limit: usize,
}

fn listed() -> usize {
    1_000
}

fn auto() -> String {
    "auto".into()
}

/// `POST /api/broadcasts`: one message to everyone in an audience, each through the
/// policy gate. With `dry_run`, answers the totals and the first `list_limit` people's
/// decisions, and records none. With channel `auto` and `fallback_after`, each message
/// that goes out is watched: bounced, failed or unread by then, the next channel is
/// tried (`GET /api/decisions?broadcast=` shows each person's chain in order).
#[utoipa::path(
    post,
    path = "/broadcasts",
    operation_id = "broadcast",
    tag = "engagement",
    request_body = BroadcastRequest,
    responses(
        (status = 201, description = "Decided and recorded; what goes out is in the outbox.", body = doc::BroadcastReport),
        (status = 200, description = "A dry run: nothing recorded.", body = doc::BroadcastReport),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn broadcast(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: BroadcastRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the broadcast is not valid: {e}"))
    })?;
    for (name, value) in [("message", &request.message), ("purpose", &request.purpose)] {
        if value.trim().is_empty() {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("`{name}` must not be empty"),
            ));
        }
    }
    let channel = if request.channel == "auto" || request.channel == "call_task" {
        request.channel.clone()
    } else {
        let kind: unavoce_core::ChannelKind = request.channel.parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_body",
                format!(
                    "`channel` {:?} is not a channel kind, \"call_task\" or \"auto\"",
                    request.channel
                ),
            )
        })?;
        kind.as_str().to_string()
    };
    let optimise_send_time = match request.send_time.as_deref() {
        None | Some("now") => false,
        Some("optimal") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("`send_time` must be \"now\" or \"optimal\"; got {other:?}"),
            ));
        }
    };
    let fallback_after = request
        .fallback_after
        .as_deref()
        .map(|text| unavoce_engagement::fallback_after(&channel, text))
        .transpose()
        .map_err(|e| {
            let code = match e {
                FallbackAfterError::NotAuto(_) => "fallback_needs_auto",
                FallbackAfterError::NotADuration(_) => "invalid_body",
            };
            ApiError::bad_request(code, e.to_string())
        })?;
    let audience = Audience::parse(&request.audience)
        .map_err(|e| ApiError::bad_request("invalid_audience", e.to_string()))?;
    let Some(message) = state.platform.messages.get(&request.message) else {
        return Err(ApiError::bad_request(
            "unknown_message",
            format!(
                "there is no message {:?}; define it first (POST /api/messages)",
                request.message
            ),
        ));
    };
    if message.status != unavoce_projections::catalog::Status::Active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "message_not_active",
            format!(
                "message {:?} is {}: it is not sent (resume it with POST /api/messages/{}/resume)",
                request.message,
                message.status.as_str(),
                request.message
            ),
        ));
    }
    let renders = message.message.channels();
    if channel != "auto" && !renders.contains(&channel.as_str()) {
        return Err(ApiError::bad_request(
            "no_rendering",
            format!(
                "message {:?} has no {channel} rendering; it has {}",
                request.message,
                renders.join(", ")
            ),
        ));
    }
    let report = state
        .platform
        .engagement
        .broadcast(
            &Broadcast {
                message: request.message,
                audience,
                purpose: request.purpose.trim().to_lowercase(),
                channel,
                optimise_send_time,
                fallback_after,
                dry_run: request.dry_run,
                list_limit: request.list_limit,
                renders,
            },
            Timestamp::now(),
        )
        .await?;
    let status = if report.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(serde_json::to_value(report).unwrap_or_default()),
    ))
}

/// `GET /api/decisions?profile_id=&broadcast=&limit=&cursor=`: decisions, oldest first.
#[utoipa::path(
    get,
    path = "/decisions",
    operation_id = "list_decisions",
    tag = "engagement",
    params(
        ("profile_id" = Option<String>, Query, description = "A person's decisions (with those of the profiles merged into theirs)"),
        ("broadcast" = Option<String>, Query, description = "One broadcast's decisions"),
        ("order" = Option<String>, Query, description = "`newest` for newest first; oldest first by default"),
        ("cursor" = Option<i64>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "100 by default"),
    ),
    responses(
        (status = 200, description = "Decisions with their reasons.", body = doc::DecisionPage),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn decisions(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = super::limit_param(&params, 100, 1000)?;
    // A profile's decisions include those taken for the profiles merged into it.
    let profile_ids = match params.get("profile_id") {
        Some(id) => {
            let node = super::live_profile(&state, id).await?;
            node.ids().collect()
        }
        None => Vec::new(),
    };
    let found = state
        .platform
        .decisions
        .decisions(DecisionQuery {
            profile_ids,
            broadcast: params.get("broadcast").cloned(),
            after_id: parse_param("cursor", params.get("cursor"))?,
            limit,
            newest_first: params.get("order").is_some_and(|o| o == "newest"),
            ..Default::default()
        })
        .await?;
    let next = (found.len() == limit)
        .then(|| found.last().map(|d| d.id.to_string()))
        .flatten();
    Ok(Json(json!({"decisions": found, "next_cursor": next})))
}
