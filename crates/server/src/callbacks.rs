//! What providers and people's mail clients call back on, outside `/api/` (each is
//! checked its own way): Twilio's status callbacks and inbound SMS, the WhatsApp Cloud
//! API webhook, and e-mail open pixels and click links. A provider's callback is
//! handed to delivery as it came (path, headers, body), which checks its signature and
//! reads it; this module only turns the outcome into an HTTP answer.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use unavoce_core::redact::Redacted;
use unavoce_delivery::{Callback, CallbackError, Refusal, ReportError, twilio, whatsapp};
use unavoce_engagement::links;

use crate::AppState;
use crate::error::ApiError;
use crate::openapi;

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Store(e) => e.into(),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "not_recorded",
                other.to_string(),
            ),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            Refusal::NotConfigured(_) => ApiError::not_found(message),
            Refusal::Forged(_) => ApiError::new(StatusCode::FORBIDDEN, "bad_signature", message),
            Refusal::NotVerified => {
                ApiError::new(StatusCode::FORBIDDEN, "bad_verify_token", message)
            }
            Refusal::Malformed(_) => ApiError::bad_request("invalid_body", message),
            Refusal::NotJson(_) => ApiError::bad_request("invalid_json", message),
        }
    }
}

impl From<CallbackError> for ApiError {
    fn from(e: CallbackError) -> Self {
        match e {
            CallbackError::Refused(refusal) => refusal.into(),
            CallbackError::Report(e) => e.into(),
        }
    }
}

/// A provider's call as delivery takes it: the path and query it was called at, the
/// headers whose values are text, the body.
fn callback<'a>(uri: &'a Uri, headers: &'a HeaderMap, body: &'a [u8]) -> Callback<'a> {
    Callback {
        path_and_query: uri.path_and_query().map_or("", |p| p.as_str()),
        headers: headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect(),
        body,
    }
}

/// `POST /webhooks/twilio/status`: Twilio's report on an SMS it accepted.
#[utoipa::path(
    post,
    path = twilio::STATUS_ROUTE,
    operation_id = "twilio_status",
    tag = "callbacks",
    request_body(content = HashMap<String, String>, content_type = "application/x-www-form-urlencoded", description = "Twilio's status callback, signed with `X-Twilio-Signature`."),
    responses(
        (status = 204, description = "Recorded."),
        (status = 400, response = openapi::BadRequest),
        (status = 403, response = openapi::Forbidden),
        (status = 404, description = "Twilio is not configured.", body = openapi::ApiErrorBody),
        (status = 500, response = openapi::InternalError),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn twilio_status(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    state
        .platform
        .delivery
        .twilio_status(&callback(&uri, &headers, &body))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /webhooks/twilio/inbound`: an SMS from a person. Answered with empty TwiML:
/// any answer (a STOP's confirmation) goes out through the outbox.
#[utoipa::path(
    post,
    path = twilio::INBOUND_ROUTE,
    operation_id = "twilio_inbound",
    tag = "callbacks",
    request_body(content = HashMap<String, String>, content_type = "application/x-www-form-urlencoded", description = "An SMS from a person, signed with `X-Twilio-Signature`."),
    responses(
        (status = 200, description = "Recorded; an empty TwiML answer (any reply goes through the outbox).", content_type = "text/xml", body = String),
        (status = 400, response = openapi::BadRequest),
        (status = 403, response = openapi::Forbidden),
        (status = 404, description = "Twilio is not configured.", body = openapi::ApiErrorBody),
        (status = 500, response = openapi::InternalError),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn twilio_inbound(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state
        .platform
        .delivery
        .twilio_inbound(&callback(&uri, &headers, &body))
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response())
}

/// `GET /webhooks/whatsapp`: Meta's verification of the webhook.
#[utoipa::path(
    get,
    path = whatsapp::WEBHOOK_ROUTE,
    operation_id = "whatsapp_verify",
    tag = "callbacks",
    params(
        ("hub.mode" = String, Query, description = "`subscribe`"),
        ("hub.verify_token" = String, Query, description = "The configured verify token"),
        ("hub.challenge" = String, Query, description = "Echoed back"),
    ),
    responses(
        (status = 200, description = "The challenge.", content_type = "text/plain", body = String),
        (status = 403, response = openapi::Forbidden),
        (status = 404, description = "WhatsApp is not configured.", body = openapi::ApiErrorBody),
    )
)]
pub async fn whatsapp_verify(State(state): State<AppState>, uri: Uri) -> Result<String, ApiError> {
    Ok(state
        .platform
        .delivery
        .whatsapp_verification(uri.query().unwrap_or(""))?)
}

/// `POST /webhooks/whatsapp`: statuses of sent messages and messages from people.
#[utoipa::path(
    post,
    path = whatsapp::WEBHOOK_ROUTE,
    operation_id = "whatsapp_notify",
    tag = "callbacks",
    request_body(content = Object, description = "A WhatsApp Cloud API notification (statuses, messages), signed with `X-Hub-Signature-256`."),
    responses(
        (status = 200, description = "Recorded."),
        (status = 400, response = openapi::BadRequest),
        (status = 403, response = openapi::Forbidden),
        (status = 404, description = "WhatsApp is not configured.", body = openapi::ApiErrorBody),
        (status = 500, response = openapi::InternalError),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn whatsapp_notify(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    state
        .platform
        .delivery
        .whatsapp_notification(&callback(&uri, &headers, &body))
        .await?;
    Ok(StatusCode::OK)
}

/// `GET /t/open/{outbox_id}/{token}`: an e-mail's open pixel. Always the pixel; the
/// open is recorded only when the token holds.
#[utoipa::path(
    get,
    path = links::OPEN_ROUTE,
    operation_id = "email_open",
    tag = "links",
    params(
        ("id" = i64, Path, description = "The e-mail's outbox entry"),
        ("token" = String, Path, description = "The link's signature"),
    ),
    responses(
        (status = 200, description = "A 1×1 GIF, always; the open is recorded when the token holds.", content_type = "image/gif", body = Vec<u8>),
        (status = 400, description = "The path's `id` is not a number.", content_type = "text/plain", body = String),
    )
)]
pub async fn open_pixel(
    State(state): State<AppState>,
    Path((id, token)): Path<(i64, String)>,
) -> Response {
    if state.platform.messages.links().verify_open(id, &token)
        && let Err(e) = state.platform.delivery.email_engagement(id, None).await
    {
        tracing::warn!(outbox_id = id, error = %Redacted(&e), "an e-mail open could not be recorded");
    }
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL,
    )
        .into_response()
}

/// `GET /t/click/{outbox_id}/{token}/{target}`: a link in an e-mail; records the click
/// and redirects to where the link pointed.
#[utoipa::path(
    get,
    path = links::CLICK_ROUTE,
    operation_id = "email_click",
    tag = "links",
    params(
        ("id" = i64, Path, description = "The e-mail's outbox entry"),
        ("token" = String, Path, description = "The link's signature"),
        ("target" = String, Path, description = "The link's target, encoded"),
    ),
    responses(
        (status = 303, description = "Recorded; to where the link pointed.", headers(("Location" = String))),
        (status = 400, description = "The path's `id` is not a number.", content_type = "text/plain", body = String),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn click(
    State(state): State<AppState>,
    Path((id, token, target)): Path<(i64, String, String)>,
) -> Result<Redirect, ApiError> {
    let Some(url) = state
        .platform
        .messages
        .links()
        .verify_click(id, &token, &target)
    else {
        return Err(ApiError::not_found("this link is not valid"));
    };
    if let Err(e) = state
        .platform
        .delivery
        .email_engagement(id, Some(&url))
        .await
    {
        tracing::warn!(outbox_id = id, error = %Redacted(&e), "an e-mail click could not be recorded");
    }
    Ok(Redirect::to(&url))
}
