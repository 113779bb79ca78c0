//! The REST API under `/api/`: every route needs a key whose role its access rule
//! allows (`crate::access`).

mod audit;
mod consents;
mod engagement;
mod events;
mod import;
pub mod journeys;
mod keys;
mod messages;
mod outbox;
mod profiles;
mod quarantine;
mod reports;
mod retention;
mod segments;
mod subscriptions;
mod suppressions;
mod touchpoints;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::AppState;

pub use import::IMPORT_BODY_LIMIT;
pub(crate) use profiles::profile_json;
pub use profiles::{live_profile, profile_filter, profile_id};

/// The `/api/` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(keys::me))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{name}", delete(keys::revoke))
        .route("/audit", get(audit::list))
        .route("/stats", get(events::stats))
        .route("/events", get(events::list))
        .route("/quarantine", get(quarantine::list))
        .route("/quarantine/{id}", get(quarantine::show))
        .route("/quarantine/{id}/replay", post(quarantine::replay))
        .route("/import", post(import::import))
        .route(
            "/touchpoints",
            get(touchpoints::list).post(touchpoints::create),
        )
        .route(
            "/touchpoints/{id}",
            get(touchpoints::show)
                .put(touchpoints::update)
                .delete(touchpoints::delete),
        )
        .route("/profiles", get(profiles::list))
        .route("/profiles/lookup", get(profiles::lookup))
        .route("/profiles/{id}", get(profiles::show))
        .route("/profiles/{id}/unmerge", post(profiles::unmerge))
        .route("/profiles/{id}/context", get(profiles::context))
        .route("/profiles/{id}/timeline", get(profiles::timeline))
        .route("/profiles/{id}/export", get(profiles::export))
        .route("/profiles/{id}/notes", post(consents::note))
        .route("/profiles/{id}/erase", post(suppressions::erase))
        .route("/suppressions", get(suppressions::list))
        .route("/suppressions/{hash}", delete(suppressions::lift))
        .route("/retention", get(retention::show))
        .route("/retention/run", post(retention::run))
        .route(
            "/profiles/{id}/consents",
            get(consents::list).post(consents::record),
        )
        .route("/identity/flagged", get(profiles::flagged))
        .route("/identity/matching", post(profiles::run_matching))
        .route("/identity/review", get(profiles::review_queue))
        .route("/identity/review/{id}/{decision}", post(profiles::decide))
        .route("/kpis/touchpoints", get(reports::touchpoint_kpis))
        .route("/kpis/channels", get(reports::channel_kpis))
        .route(
            &format!("/journeys/{}", journeys::PATHS),
            get(reports::paths),
        )
        .route(
            &format!("/journeys/{}", journeys::FUNNEL),
            get(reports::funnel),
        )
        .route(
            &format!("/journeys/{}", journeys::ATTRIBUTION),
            get(reports::attribution),
        )
        .route("/census", get(reports::census))
        .route("/activity", get(reports::activity))
        .route("/profiles/search", get(profiles::search))
        .route("/broadcasts", post(engagement::broadcast))
        .route("/decisions", get(engagement::decisions))
        .route("/journeys", get(journeys::list).post(journeys::create))
        .route(
            &format!("/journeys/{}", journeys::DRY_RUN),
            post(journeys::dry_run_proposed),
        )
        .route("/journeys/{name}", get(journeys::show))
        .route("/journeys/{name}/dry-run", post(journeys::dry_run_defined))
        .route("/journeys/{name}/runs", get(journeys::runs))
        .route("/messages", get(messages::list).post(messages::create))
        .route("/messages/{id}", get(messages::show))
        .route("/messages/{id}/preview", get(messages::preview))
        .route("/outbox", get(outbox::list))
        .route("/outbox/summary", get(outbox::summary))
        .route("/outbox/{id}", get(outbox::show))
        .route("/outbox/{id}/requeue", post(outbox::requeue))
        .route(
            "/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route("/segments", get(segments::list).post(segments::create))
        .route("/segments/{name}", get(segments::show))
        .route("/segments/{name}/members", get(segments::members))
}

/// The `limit` query parameter: `default` when absent, an error outside 1..=`max`.
fn limit_param(
    params: &std::collections::HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, crate::error::ApiError> {
    count_param(params, "limit", default, 1..=max)
}

/// A count query parameter: `default` when absent, an error outside `range`.
fn count_param(
    params: &std::collections::HashMap<String, String>,
    name: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, crate::error::ApiError> {
    let value = parse_param::<usize>(name, params.get(name))?.unwrap_or(default);
    if !range.contains(&value) {
        return Err(crate::error::ApiError::bad_request(
            "invalid_parameter",
            format!(
                "`{name}` must be between {} and {}",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(value)
}

/// Parses an optional numeric query parameter with a precise error.
fn parse_param<T: std::str::FromStr>(
    name: &str,
    value: Option<&String>,
) -> Result<Option<T>, crate::error::ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                crate::error::ApiError::bad_request(
                    "invalid_parameter",
                    format!("query parameter `{name}` has the invalid value {v:?}"),
                )
            })
        })
        .transpose()
}
