//! `/api/journeys`: journeys, their figures and each person's run.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};
use unavoce_core::journey::{Journey, JourneyConfig};
use unavoce_engagement::{JourneyDefinitionError, RunsOnRevision};
use unavoce_projections::catalog::{ChangeError, Status};

use super::lifecycle::{self, change_error};
use super::{count_param, limit_param, profile_filter};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/journeys`: every journey with its figures.
#[utoipa::path(
    get,
    path = "/journeys",
    operation_id = "list_journeys",
    tag = "journeys",
    responses((status = 200, description = "Every journey with its figures.", body = doc::JourneyList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut journeys = Vec::new();
    for name in state.platform.journeys.names() {
        if let Some(stats) = state.platform.journeys.stats(&name).await? {
            journeys.push(stats);
        }
    }
    Ok(Json(json!({"journeys": journeys})))
}

/// The words the API routes under `/api/journeys/` for the journeys' reports and the
/// dry run of a proposed journey (`/api/journeys/paths` is part of the public
/// contract), which no journey can be named, or it could not be reached.
pub const ROUTE_WORDS: [&str; 4] = [PATHS, FUNNEL, ATTRIBUTION, DRY_RUN];
/// `/api/journeys/paths`: the paths between touchpoints (Sankey).
pub const PATHS: &str = "paths";
/// `/api/journeys/funnel`: the funnel by stage.
pub const FUNNEL: &str = "funnel";
/// `/api/journeys/attribution`: conversions attributed to touchpoints.
pub const ATTRIBUTION: &str = "attribution";
/// `/api/journeys/dry-run`: a proposed journey's dry run.
pub const DRY_RUN: &str = "dry-run";

/// Why a journey cannot be named `name` here, if it cannot.
pub fn route_clash(name: &str) -> Option<String> {
    ROUTE_WORDS
        .contains(&name)
        .then(|| format!("journey {name:?}: the name is an endpoint of the API; choose another"))
}

/// `POST /api/journeys`: defines a journey, checked at once; it runs from the next
/// event on.
#[utoipa::path(
    post,
    path = "/journeys",
    operation_id = "create_journey",
    tag = "journeys",
    request_body = doc::JourneyDefinition,
    responses(
        (status = 201, description = "Defined; it runs from the next event on.", body = doc::JourneyStats),
        (status = 400, response = openapi::BadRequest),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let config: JourneyConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the journey is not valid: {e}"))
    })?;
    let name = config.name.clone();
    if let Some(clash) = route_clash(&name) {
        return Err(ApiError::bad_request("invalid_journey", clash));
    }
    state
        .platform
        .journeys
        .define(config, lifecycle::edit(&caller))
        .await
        .map_err(|e| match e {
            JourneyDefinitionError::Invalid(e) => {
                ApiError::bad_request("invalid_journey", e.to_string())
            }
            JourneyDefinitionError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "exists", e.to_string())
            }
            JourneyDefinitionError::Store(e) => ApiError::from(e),
            JourneyDefinitionError::StepMapping(_) => {
                ApiError::bad_request("invalid_step_mapping", e.to_string())
            }
        })?;
    let stats = state.platform.journeys.stats(&name).await?;
    Ok((StatusCode::CREATED, Json(json!(stats))))
}

/// `GET /api/journeys/{name}`: entered, in each step, exited, completed, converted —
/// treatment and control apart.
#[utoipa::path(
    get,
    path = "/journeys/{name}",
    operation_id = "show_journey",
    tag = "journeys",
    params(("name" = String, Path, description = "The journey's name")),
    responses(
        (status = 200, description = "The journey with its figures.", body = doc::JourneyStats),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stats = state
        .platform
        .journeys
        .stats(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no journey {name:?}")))?;
    Ok(Json(json!(stats)))
}

/// `POST /api/journeys/dry-run?list_limit=` with a journey, not yet defined, and
/// `POST /api/journeys/{name}/dry-run?list_limit=`: who the journey would start for
/// now, what each would get, on which channel, when, who would be suppressed and why;
/// totals by outcome, reason and ending, and the first `list_limit` (default 100)
/// people's runs. Records nothing.
#[utoipa::path(
    post,
    path = format!("/journeys/{DRY_RUN}"),
    operation_id = "dry_run_journey",
    tag = "journeys",
    params(("list_limit" = Option<u32>, Query, minimum = 0, maximum = 100000, description = "How many people's runs to list (100 by default)")),
    request_body(content = doc::JourneyDefinition, description = "A journey, not yet defined."),
    responses(
        (status = 200, description = "What it would do now.", body = doc::JourneyDryRun),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn dry_run_proposed(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let config: JourneyConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the journey is not valid: {e}"))
    })?;
    let journey = Journey::new(config)
        .map_err(|e| ApiError::bad_request("invalid_journey", e.to_string()))?;
    dry_run(&state, &journey, &params).await
}

/// `POST /api/journeys/{name}/dry-run`: see [`dry_run_proposed`].
#[utoipa::path(
    post,
    path = "/journeys/{name}/dry-run",
    operation_id = "dry_run_defined_journey",
    tag = "journeys",
    params(("name" = String, Path, description = "The journey's name"), ("list_limit" = Option<u32>, Query, minimum = 0, maximum = 100000, description = "How many people's runs to list (100 by default)")),
    responses(
        (status = 200, description = "What it would do now.", body = doc::JourneyDryRun),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn dry_run_defined(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let journey = state
        .platform
        .journeys
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("there is no journey {name:?}")))?;
    dry_run(&state, &journey, &params).await
}

async fn dry_run(
    state: &AppState,
    journey: &Journey,
    params: &HashMap<String, String>,
) -> Result<Json<Value>, ApiError> {
    let list_limit = count_param(params, "list_limit", 100, 0..=100_000)?;
    let report = state
        .platform
        .journeys
        .dry_run(journey, list_limit, jiff::Timestamp::now())
        .await?;
    Ok(Json(json!(report)))
}

/// `GET /api/journeys/{name}/runs?profile_id=&limit=&cursor=`: where each person is.
#[utoipa::path(
    get,
    path = "/journeys/{name}/runs",
    operation_id = "list_journey_runs",
    tag = "journeys",
    params(
        ("name" = String, Path, description = "The journey's name"),
        ("profile_id" = Option<String>, Query, description = "One person's runs"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "100 by default"),
    ),
    responses(
        (status = 200, description = "Where each person is.", body = doc::JourneyRunPage),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn runs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    if !state.platform.journeys.names().contains(&name) {
        return Err(ApiError::not_found(format!("there is no journey {name:?}")));
    }
    let limit = limit_param(&params, 100, 10_000)?;
    let profile = match params.get("profile_id").map(|p| profile_filter(p)) {
        None => None,
        Some(Some(profile)) => Some(profile),
        // Text no profile id is stored as: no run is for it.
        Some(None) => return Ok(Json(json!({"runs": [], "next_cursor": null}))),
    };
    let runs = state
        .platform
        .journeys
        .runs(&name, profile, params.get("cursor").cloned(), limit)
        .await?;
    let next_cursor = (runs.len() == limit)
        .then(|| runs.last().map(|r| r.key.clone()))
        .flatten();
    Ok(Json(json!({"runs": runs, "next_cursor": next_cursor})))
}

/// The body of `PUT /api/journeys/{name}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JourneyEdit {
    definition: JourneyConfig,
    runs: RunsOnRevision,
}

/// `PUT /api/journeys/{name}`: a new version of a journey defined through the API,
/// checked as a new one is, and what happens to the people in its runs: `"finish"` (on
/// the version they follow; newcomers enter the new one), `"exit"`, or
/// `{"move": {"old step": "new step"}}` (every step a run is in must be mapped; a moved
/// run starts its new step afresh). With `?dry_run=true`, what would change and which
/// runs would move, finish or exit, nothing stored.
#[utoipa::path(
    put,
    path = "/journeys/{name}",
    operation_id = "revise_journey",
    tag = "journeys",
    params(
        ("name" = String, Path, description = "The journey's name"),
        ("dry_run" = Option<bool>, Query, description = "Tell what would change, change nothing"),
    ),
    request_body = doc::JourneyEdit,
    responses(
        (status = 200, description = "The version made (none on a dry run), what changed, and the runs moved, left to finish or exited.", body = doc::JourneyRevised),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn revise(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let edit: JourneyEdit = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("send {{\"definition\": <the journey>, \"runs\": \"finish\" | \"exit\" | {{\"move\": {{\"old step\": \"new step\"}}}}}}: {e}"),
        )
    })?;
    if edit.definition.name != name {
        return Err(ApiError::bad_request(
            "name_mismatch",
            format!(
                "the path names {name:?} but the journey is named {:?}; a name does not change",
                edit.definition.name
            ),
        ));
    }
    state.platform.identity.catch_up().await?;
    let revision = state
        .platform
        .journeys
        .revise(
            edit.definition,
            &edit.runs,
            lifecycle::dry_run(&params),
            lifecycle::edit(&caller),
        )
        .await
        .map_err(|e| match e {
            ChangeError::Invalid(JourneyDefinitionError::StepMapping(message)) => {
                ApiError::bad_request("invalid_step_mapping", message)
            }
            e => change_error(e, "invalid_journey"),
        })?;
    let mut answer = json!(revision);
    answer["name"] = json!(name);
    answer["dry_run"] = json!(revision.version.is_none());
    Ok(Json(answer))
}

/// `POST /api/journeys/{name}/pause`: nobody enters, and runs hold where they are (a wait that ends meanwhile
/// moves on once resumed), until resumed.
#[utoipa::path(
    post,
    path = "/journeys/{name}/pause",
    operation_id = "pause_journey",
    tag = "journeys",
    params(("name" = String, Path, description = "The journey's name")),
    responses(
        (status = 200, description = "Paused.", body = doc::StatusChanged),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &caller, &name, Status::Paused).await
}

/// `POST /api/journeys/{name}/resume`: a paused journey takes people in and moves its runs again.
#[utoipa::path(
    post,
    path = "/journeys/{name}/resume",
    operation_id = "resume_journey",
    tag = "journeys",
    params(("name" = String, Path, description = "The journey's name")),
    responses(
        (status = 200, description = "Active again.", body = doc::StatusChanged),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &caller, &name, Status::Active).await
}

/// `DELETE /api/journeys/{name}`: retires the journey: nobody enters again; runs go on to their end; it no
/// longer changes (its history is kept).
#[utoipa::path(
    delete,
    path = "/journeys/{name}",
    operation_id = "retire_journey",
    tag = "journeys",
    params(("name" = String, Path, description = "The journey's name")),
    responses(
        (status = 200, description = "Retired.", body = doc::StatusChanged),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn retire(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &caller, &name, Status::Retired).await
}

async fn set_status(
    state: &AppState,
    caller: &Caller,
    name: &str,
    status: Status,
) -> Result<Json<Value>, ApiError> {
    let was = state
        .platform
        .journeys
        .set_status(name, status, lifecycle::edit(caller))
        .await
        .map_err(|e| change_error(e, "invalid_journey"))?;
    Ok(lifecycle::status_changed(name, was, status))
}

/// `GET /api/journeys/{name}/versions`: every version of a journey defined through
/// the API, with who made it, when and what changed, and its changes of status.
#[utoipa::path(
    get,
    path = "/journeys/{name}/versions",
    operation_id = "list_journey_versions",
    tag = "journeys",
    params(("name" = String, Path, description = "The journey's name")),
    responses(
        (status = 200, description = "Its history.", body = doc::DefinitionHistory),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let journeys = &state.platform.journeys;
    let origin = journeys.origin(&name);
    lifecycle::versions(&name, origin, journeys.versions(&name))
}
