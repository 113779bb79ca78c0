//! What the definitions made through the API (segments, journeys, messages,
//! subscriptions) share: a `PUT` makes a new version, `POST …/pause` and `…/resume`,
//! `DELETE` retires, and `GET …/versions` tells who changed what, when.

use axum::Json;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use unavoce_projections::catalog::{ChangeError, Edit, History, Revision, Status};

use crate::auth::Caller;
use crate::error::ApiError;

/// A change made now by `caller`.
pub(crate) fn edit(caller: &Caller) -> Edit<'_> {
    Edit {
        by: &caller.name,
        at: Timestamp::now(),
    }
}

/// A refused change as the API answers it; a definition that does not hold is a 400
/// with the code `invalid`.
pub(crate) fn change_error<E: std::fmt::Display>(
    e: ChangeError<E>,
    invalid: &'static str,
) -> ApiError {
    let message = e.to_string();
    match e {
        ChangeError::Invalid(_) => ApiError::bad_request(invalid, message),
        ChangeError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
        ChangeError::DefinedInConfig(_) => {
            ApiError::new(StatusCode::CONFLICT, "defined_in_config", message)
        }
        ChangeError::Retired(_) => ApiError::new(StatusCode::CONFLICT, "retired", message),
        ChangeError::NotPaused(_) => ApiError::new(StatusCode::CONFLICT, "not_paused", message),
        ChangeError::Store(e) => e.into(),
    }
}

/// The body of a `PUT` to `/api/{kind}/{name}`: a whole definition, whose name (when
/// it has one) is the path's.
pub(crate) fn read_revision<C: DeserializeOwned>(
    body: &[u8],
    name: &str,
    name_of: impl Fn(&C) -> &str,
    what: &str,
) -> Result<C, ApiError> {
    let config: C = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the {what} is not valid: {e}"))
    })?;
    let named = name_of(&config);
    if named != name {
        return Err(ApiError::bad_request(
            "name_mismatch",
            format!(
                "the path names {name:?} but the {what} is named {named:?}; a name does not change"
            ),
        ));
    }
    Ok(config)
}

/// Whether `?dry_run=true` was asked.
pub(crate) fn dry_run(params: &std::collections::HashMap<String, String>) -> bool {
    params.get("dry_run").is_some_and(|v| v == "true")
}

/// The answer to a `PUT`.
pub(crate) fn revised<D>(name: &str, revision: &Revision<D>) -> Json<Value> {
    Json(json!({
        "name": name,
        "version": revision.version,
        "changed": !revision.changes.is_empty(),
        "changes": revision.changes,
    }))
}

/// The answer to a pause, resume or retirement.
pub(crate) fn status_changed(name: &str, was: Status, now: Status) -> Json<Value> {
    Json(json!({"name": name, "status": now, "was": was}))
}

/// The answer to `GET …/versions`: the history of a definition made through the API;
/// one from the config file has none (it changes with the file).
pub(crate) fn versions<C: Serialize>(
    name: &str,
    origin: Option<&'static str>,
    history: Option<History<C>>,
) -> Result<Json<Value>, ApiError> {
    match (origin, history) {
        (Some("config"), _) => Ok(Json(json!({
            "name": name,
            "origin": "config",
            "status": Status::Active,
            "versions": [],
            "statuses": [],
        }))),
        (_, Some(history)) => Ok(Json(json!({
            "name": name,
            "origin": "api",
            "status": history.status,
            "versions": history.versions,
            "statuses": history.statuses,
        }))),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("nothing is defined as {name:?}"),
        )),
    }
}
