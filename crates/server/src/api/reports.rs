//! The read side's reports: `GET /api/kpis/touchpoints`, `/api/kpis/channels`,
//! `/api/journeys/paths`, `/api/journeys/funnel`, `/api/journeys/attribution` and
//! `/api/census`. Each takes `from` and `to` (RFC 3339 or `YYYY-MM-DD`, UTC),
//! `segment` (an audience expression: only its people count) and `format=json|csv`.

use std::collections::HashMap;
use unavoce_core::analytics::activity::Breakdown;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Serialize;
use unavoce_core::analytics::tabular::{
    CensusSection, Table, attribution_table, census_table, funnel_table, kpi_table, link_table,
};
use unavoce_core::analytics::{Period, parse_time};
use unavoce_core::audience::Audience;
use unavoce_projections::AudienceMembers;

use super::parse_param;
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

type Params = Query<HashMap<String, String>>;

/// `GET /api/kpis/touchpoints`: KPIs per touchpoint (and, under `channels`, per channel).
#[utoipa::path(
    get,
    path = "/kpis/touchpoints",
    operation_id = "touchpoint_kpis",
    tag = "reports",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("segment" = Option<String>, Query, description = "An audience expression: only its people count"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`"),
    ),
    responses(
        (status = 200, description = "KPIs per touchpoint (and per channel); as CSV, the touchpoints table.", content(
            (doc::KpiReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn touchpoint_kpis(
    State(state): State<AppState>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let scope = Scope::of(&state, &p).await?;
    let report = state
        .platform
        .reports
        .kpis(scope.period, scope.audience())
        .await?;
    Ok(scope.answer(&report, || kpi_table(&report.touchpoints)))
}

/// `GET /api/kpis/channels`: KPIs per channel.
#[utoipa::path(
    get,
    path = "/kpis/channels",
    operation_id = "channel_kpis",
    tag = "reports",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("segment" = Option<String>, Query, description = "An audience expression: only its people count"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`"),
    ),
    responses(
        (status = 200, description = "KPIs per channel.", content(
            (doc::ChannelKpis = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn channel_kpis(
    State(state): State<AppState>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let scope = Scope::of(&state, &p).await?;
    let report = state
        .platform
        .reports
        .kpis(scope.period, scope.audience())
        .await?;
    let body = serde_json::json!({
        "people": report.people,
        "interactions": report.interactions,
        "channels": report.channels,
    });
    Ok(scope.answer(&body, || kpi_table(&report.channels)))
}

/// `GET /api/journeys/paths?steps=&top=`: Sankey `nodes` and `links`, and the most
/// frequent whole paths.
#[utoipa::path(
    get,
    path = format!("/journeys/{}", super::journeys::PATHS),
    operation_id = "paths",
    tag = "reports",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("segment" = Option<String>, Query, description = "An audience expression: only its people count"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`"),
        ("steps" = Option<u32>, Query, minimum = 1, maximum = 10, description = "Touchpoints per path (4 by default; at most `MAX_PATH_STEPS`, 10)"),
        ("top" = Option<u32>, Query, description = "How many whole paths to list (20 by default)"),
    ),
    responses(
        (status = 200, description = "Sankey nodes and links, and the most taken paths; as CSV, the links.", content(
            (doc::PathReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn paths(State(state): State<AppState>, Query(p): Params) -> Result<Response, ApiError> {
    let steps = parse_param::<usize>("steps", p.get("steps"))?.unwrap_or(4);
    if !(1..=unavoce_projections::MAX_PATH_STEPS).contains(&steps) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!(
                "`steps` must be between 1 and {}",
                unavoce_projections::MAX_PATH_STEPS
            ),
        ));
    }
    let top = parse_param::<usize>("top", p.get("top"))?.unwrap_or(20);
    let scope = Scope::of(&state, &p).await?;
    let report = state
        .platform
        .reports
        .paths(scope.period, scope.audience(), steps, top)
        .await?;
    Ok(scope.answer(&report, || link_table(&report)))
}

/// `GET /api/journeys/funnel`: people at each stage, conversion and drop-off.
#[utoipa::path(
    get,
    path = format!("/journeys/{}", super::journeys::FUNNEL),
    operation_id = "funnel",
    tag = "reports",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("segment" = Option<String>, Query, description = "An audience expression: only its people count"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`"),
    ),
    responses(
        (status = 200, description = "People at each stage.", content(
            (doc::FunnelReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn funnel(State(state): State<AppState>, Query(p): Params) -> Result<Response, ApiError> {
    let scope = Scope::of(&state, &p).await?;
    let report = state
        .platform
        .reports
        .funnel(scope.period, scope.audience())
        .await?;
    Ok(scope.answer(&report, || funnel_table(&report)))
}

/// `GET /api/journeys/attribution`: conversions credited to touchpoints, four models.
#[utoipa::path(
    get,
    path = format!("/journeys/{}", super::journeys::ATTRIBUTION),
    operation_id = "attribution",
    tag = "reports",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("segment" = Option<String>, Query, description = "An audience expression: only its people count"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`"),
    ),
    responses(
        (status = 200, description = "Conversions credited to touchpoints.", content(
            (doc::AttributionReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn attribution(
    State(state): State<AppState>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let scope = Scope::of(&state, &p).await?;
    let report = state
        .platform
        .reports
        .attribution(scope.period, scope.audience())
        .await?;
    Ok(scope.answer(&report, || attribution_table(&report)))
}

/// `GET /api/census?format=csv&section=`: the channel census.
#[utoipa::path(
    get,
    path = "/census",
    operation_id = "census",
    tag = "reports",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("segment" = Option<String>, Query, description = "An audience expression: only its people count"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`"),
        ("section" = Option<String>, Query, description = "With `format=csv`: the table, `coverage`, `usage` (default), `unregistered` or `recommendations`"),
    ),
    responses(
        (status = 200, description = "The channel census; as CSV, the table of `section`.", content(
            (doc::Census = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn census(State(state): State<AppState>, Query(p): Params) -> Result<Response, ApiError> {
    let section: CensusSection = p
        .get("section")
        .map_or("usage", String::as_str)
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_parameter", e))?;
    let scope = Scope::of(&state, &p).await?;
    let report = state
        .platform
        .reports
        .census(scope.period, scope.audience())
        .await?;
    Ok(scope.answer(&report, || census_table(&report, section)))
}

/// `GET /api/activity?by=channel|touchpoint&from=&to=&segment=`: events per day.
#[utoipa::path(
    get,
    path = "/activity",
    operation_id = "activity",
    tag = "reports",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or `YYYY-MM-DD` (UTC)"),
        ("segment" = Option<String>, Query, description = "An audience expression: only its people count"),
        ("by" = Option<String>, Query, description = "`channel` (default) or `touchpoint`"),
    ),
    responses(
        (status = 200, description = "Events per day.", body = doc::ActivityReport),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn activity(
    State(state): State<AppState>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let by = match p.get("by").map(String::as_str) {
        None | Some("channel") => Breakdown::Channel,
        Some("touchpoint") => Breakdown::Touchpoint,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("`by` must be channel or touchpoint; got {other:?}"),
            ));
        }
    };
    let scope = Scope::of(&state, &p).await?;
    let report = state
        .platform
        .reports
        .activity(scope.period, scope.audience(), by)
        .await?;
    Ok(scope.json(&report))
}

/// What a report request narrows to: its period and audience, and how to answer.
struct Scope {
    period: Period,
    csv: bool,
    segment: Option<String>,
    audience: Option<AudienceMembers>,
}

impl Scope {
    async fn of(state: &AppState, p: &HashMap<String, String>) -> Result<Scope, ApiError> {
        let (period, csv) = (period(p)?, wants_csv(p)?);
        let segment = p.get("segment").filter(|s| !s.trim().is_empty()).cloned();
        let audience = match &segment {
            Some(text) => {
                let audience = Audience::parse(text)
                    .map_err(|e| ApiError::bad_request("invalid_segment", e.to_string()))?;
                Some(
                    state
                        .platform
                        .reports
                        .audience(&audience, Timestamp::now())
                        .await?,
                )
            }
            None => None,
        };
        Ok(Scope {
            period,
            csv,
            segment,
            audience,
        })
    }

    fn audience(&self) -> Option<&AudienceMembers> {
        self.audience.as_ref()
    }

    /// The report as CSV (its table) or as JSON.
    fn answer(&self, report: &impl Serialize, table: impl FnOnce() -> Table) -> Response {
        if self.csv {
            csv_response(&table())
        } else {
            self.json(report)
        }
    }

    /// The report's JSON with the period (`from`, `to`) and the audience it covers.
    fn json(&self, report: &impl Serialize) -> Response {
        let mut value = serde_json::to_value(report).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "from".into(),
                self.period.from.map(|t| t.to_string()).into(),
            );
            object.insert("to".into(), self.period.to.map(|t| t.to_string()).into());
            if let (Some(segment), Some(a)) = (&self.segment, &self.audience) {
                object.insert(
                    "segment".into(),
                    serde_json::json!({
                        "expression": segment,
                        "people": a.members.len(),
                        "evaluated": a.evaluated,
                        "errors": a.errors,
                        "first_error": a.first_error,
                    }),
                );
            }
        }
        Json(value).into_response()
    }
}

/// The period of `from` and `to`.
fn period(p: &HashMap<String, String>) -> Result<Period, ApiError> {
    let from = time_param("from", p.get("from"))?;
    let to = time_param("to", p.get("to"))?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "`from` must be before `to`",
        ));
    }
    Ok(Period { from, to })
}

fn time_param(name: &str, value: Option<&String>) -> Result<Option<Timestamp>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            parse_time(v).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("`{name}` must be an RFC 3339 time or a YYYY-MM-DD date; got {v:?}"),
                )
            })
        })
        .transpose()
}

fn wants_csv(p: &HashMap<String, String>) -> Result<bool, ApiError> {
    match p.get("format").map(String::as_str) {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("`format` must be json or csv; got {other:?}"),
        )),
    }
}

fn csv_response(table: &Table) -> Response {
    (
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        table.to_csv(),
    )
        .into_response()
}
