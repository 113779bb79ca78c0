//! The REST API under `/api/`: every route needs a key whose role its access rule
//! allows (`crate::access`).

mod audit;
mod config;
mod consents;
mod engagement;
mod events;
mod import;
pub mod journeys;
mod keys;
mod lifecycle;
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

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub use config::{ConfigReload, ConfigReloaded, ReloadRefused};
pub use import::IMPORT_BODY_LIMIT;
pub(crate) use profiles::profile_json;
pub use profiles::{live_profile, live_profile_with_events, profile_filter, profile_id};

/// The `/api/` routes, each registered with its documentation (`routes!`; see
/// `crate::openapi`). The key each needs is the router's layer (`auth::require_key`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(keys::me))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(config::reload))
        .routes(routes!(events::stats))
        .routes(routes!(events::list))
        .routes(routes!(quarantine::list))
        .routes(routes!(quarantine::show))
        .routes(routes!(quarantine::replay))
        .routes(routes!(import::import))
        .routes(routes!(touchpoints::list, touchpoints::create))
        .routes(routes!(
            touchpoints::show,
            touchpoints::update,
            touchpoints::delete
        ))
        .routes(routes!(profiles::list))
        .routes(routes!(profiles::lookup))
        .routes(routes!(profiles::show))
        .routes(routes!(profiles::unmerge))
        .routes(routes!(profiles::context))
        .routes(routes!(profiles::timeline))
        .routes(routes!(profiles::export))
        .routes(routes!(consents::note))
        .routes(routes!(suppressions::erase))
        .routes(routes!(suppressions::list))
        .routes(routes!(suppressions::lift))
        .routes(routes!(retention::show))
        .routes(routes!(retention::run))
        .routes(routes!(consents::list, consents::record))
        .routes(routes!(profiles::flagged))
        .routes(routes!(profiles::run_matching))
        .routes(routes!(profiles::review_queue))
        .routes(routes!(profiles::decide))
        .routes(routes!(reports::touchpoint_kpis))
        .routes(routes!(reports::channel_kpis))
        .routes(routes!(reports::paths))
        .routes(routes!(reports::funnel))
        .routes(routes!(reports::attribution))
        .routes(routes!(reports::census))
        .routes(routes!(reports::activity))
        .routes(routes!(profiles::search))
        .routes(routes!(engagement::broadcast))
        .routes(routes!(engagement::decisions))
        .routes(routes!(journeys::list, journeys::create))
        .routes(routes!(journeys::dry_run_proposed))
        .routes(routes!(journeys::show, journeys::revise, journeys::retire))
        .routes(routes!(journeys::pause))
        .routes(routes!(journeys::resume))
        .routes(routes!(journeys::versions))
        .routes(routes!(journeys::dry_run_defined))
        .routes(routes!(journeys::runs))
        .routes(routes!(messages::list, messages::create))
        .routes(routes!(messages::show, messages::revise, messages::retire))
        .routes(routes!(messages::pause))
        .routes(routes!(messages::resume))
        .routes(routes!(messages::versions))
        .routes(routes!(messages::preview))
        .routes(routes!(outbox::list))
        .routes(routes!(outbox::summary))
        .routes(routes!(outbox::show))
        .routes(routes!(outbox::requeue))
        .routes(routes!(subscriptions::list, subscriptions::create))
        .routes(routes!(subscriptions::revise, subscriptions::retire))
        .routes(routes!(subscriptions::pause))
        .routes(routes!(subscriptions::resume))
        .routes(routes!(subscriptions::versions))
        .routes(routes!(segments::list, segments::create))
        .routes(routes!(segments::show, segments::revise, segments::retire))
        .routes(routes!(segments::pause))
        .routes(routes!(segments::resume))
        .routes(routes!(segments::versions))
        .routes(routes!(segments::members))
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
