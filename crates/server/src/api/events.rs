//! `GET /api/stats` and `GET /api/events`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};
use unavoce_store::{EventQuery, StoredEvent};

use super::parse_param;
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/stats`: counts of the log and the quarantine.
#[utoipa::path(
    get,
    path = "/stats",
    operation_id = "stats",
    tag = "events",
    responses((status = 200, description = "Counts.", body = doc::Stats))
)]
pub async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stats = state.platform.intake.log().stats().await?;
    state.platform.identity.catch_up().await?;
    let (profiles, unattributed, flagged, merges) = state.platform.identity.read(|graph| {
        (
            graph.profile_count(),
            graph.unattributed(),
            graph.flags().count(),
            graph
                .profiles_after(None)
                .map(|n| n.merges().len())
                .sum::<usize>(),
        )
    });
    let decisions: serde_json::Map<String, Value> = state
        .platform
        .decisions
        .decision_counts(unavoce_engagement::INSIGHT_PURPOSE)
        .await?
        .into_iter()
        .map(|(outcome, n)| (outcome, n.into()))
        .collect();
    let mut sent = 0;
    for count in state
        .platform
        .delivery
        .platform_outbox()
        .outbox_counts()
        .await?
    {
        if count.status == unavoce_store::OutboxStatus::Sent
            && !unavoce_core::subscription::Destination::is_insight_channel(&count.channel)
        {
            sent += count.entries;
        }
    }
    Ok(Json(json!({
        "events": stats.events,
        "profiles": profiles,
        "events_without_identity": unattributed,
        "flagged_identifiers": flagged,
        "duplicates": stats.duplicates,
        "quarantined": stats.quarantined,
        "quarantined_total": stats.quarantined_total,
        "merges": merges,
        "decisions": decisions,
        "messages_sent": sent,
    })))
}

/// `GET /api/events?user_id=|anonymous_id=&limit=&cursor=`: stored events, oldest first.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "list_events",
    tag = "events",
    params(
        ("user_id" = Option<String>, Query, description = "Events with this user id"),
        ("anonymous_id" = Option<String>, Query, description = "Events with this anonymous id"),
        ("profile_id" = Option<String>, Query, description = "Every event of this profile, following merges (`cursor` is then a log position)"),
        ("cursor" = Option<i64>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "100 by default"),
    ),
    responses(
        (status = 200, description = "Stored events, oldest first.", body = doc::EventPage),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = super::limit_param(&params, 100, 1000)?;
    if let Some(profile) = params.get("profile_id") {
        return profile_events(&state, profile, &params, limit).await;
    }
    let query = EventQuery {
        user_id: params.get("user_id").cloned(),
        anonymous_id: params.get("anonymous_id").cloned(),
        after_seq: parse_param("cursor", params.get("cursor"))?,
        limit,
    };
    let page = state.platform.intake.log().events(query).await?;
    Ok(Json(json!({
        "events": page.events.into_iter().map(event_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    })))
}

/// The events of one profile (following merges), oldest first, paged by log position.
async fn profile_events(
    state: &AppState,
    profile: &str,
    params: &HashMap<String, String>,
    limit: usize,
) -> Result<Json<Value>, ApiError> {
    let after: i64 = parse_param("cursor", params.get("cursor"))?.unwrap_or(0);
    let (_, seqs) = crate::api::live_profile_with_events(state, profile).await?;
    let mut page: Vec<i64> = seqs
        .into_iter()
        .filter(|s| *s > after)
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next_cursor = if more {
        page.last().map(|s| s.to_string())
    } else {
        None
    };
    let events = state.platform.intake.log().events_at(page).await?;
    Ok(Json(json!({
        "events": events.into_iter().map(event_json).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

/// An event as the API shows it: the normalised message, with its log position and source.
pub fn event_json(stored: StoredEvent) -> Value {
    let mut message = stored.event.message;
    message.insert("seq".into(), stored.seq.into());
    message.insert("source".into(), stored.event.source.into());
    Value::Object(message)
}
