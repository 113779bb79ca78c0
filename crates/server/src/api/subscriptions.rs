//! `/api/subscriptions`: department subscriptions — which insight about customers goes
//! to which department, by webhook or e-mail digest.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use unavoce_core::subscription::SubscriptionConfig;
use unavoce_engagement::SubscriptionDefinitionError;

use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/subscriptions`: every subscription, with where it was defined.
#[utoipa::path(
    get,
    path = "/subscriptions",
    operation_id = "list_subscriptions",
    tag = "subscriptions",
    responses((status = 200, description = "Every subscription.", body = doc::SubscriptionList))
)]
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let subscriptions: Vec<Value> = state
        .platform
        .insights
        .list()
        .into_iter()
        .map(|(s, origin)| {
            let mut value = json!(s.config);
            value["origin"] = json!(origin);
            value
        })
        .collect();
    Json(json!({"subscriptions": subscriptions}))
}

/// `POST /api/subscriptions`: defines a subscription, checked at once (its expression,
/// trigger and destinations).
#[utoipa::path(
    post,
    path = "/subscriptions",
    operation_id = "create_subscription",
    tag = "subscriptions",
    request_body = doc::SubscriptionDefinition,
    responses(
        (status = 201, description = "Defined.", body = doc::Named),
        (status = 400, response = openapi::BadRequest),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let config: SubscriptionConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("the subscription is not valid: {e}"),
        )
    })?;
    let name = config.name.clone();
    state
        .platform
        .insights
        .define(config)
        .await
        .map_err(|e| match e {
            SubscriptionDefinitionError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "exists", e.to_string())
            }
            SubscriptionDefinitionError::Store(e) => e.into(),
            other => ApiError::bad_request("invalid_subscription", other.to_string()),
        })?;
    Ok((StatusCode::CREATED, Json(json!({"name": name}))))
}
