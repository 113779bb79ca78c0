//! What providers and people's mail clients call back on, outside `/api/` (each is
//! checked its own way): Twilio's status callbacks and inbound SMS, the WhatsApp Cloud
//! API webhook, and e-mail open pixels and click links.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use unavoce_delivery::verify::Verdict;
use unavoce_delivery::{Report, ReportError};

use crate::AppState;
use crate::error::ApiError;

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

fn refused(verdict: Verdict, provider: &str) -> ApiError {
    match verdict {
        Verdict::NotConfigured => {
            ApiError::not_found(format!("{provider} is not configured on this server"))
        }
        _ => ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_signature",
            format!("the request does not carry {provider}'s signature"),
        ),
    }
}

/// A Twilio callback's form fields, once its signature holds.
fn twilio_fields(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<HashMap<String, String>, ApiError> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("not a form: {e}")))?;
    let url = format!(
        "{}{}",
        state.platform.delivery.public_url(),
        uri.path_and_query().map_or("", |p| p.as_str())
    );
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    match state
        .platform
        .delivery
        .callbacks()
        .twilio(&url, &fields, signature)
    {
        Verdict::Genuine => Ok(fields.into_iter().collect()),
        other => Err(refused(other, "Twilio")),
    }
}

/// `POST /webhooks/twilio/status`: Twilio's report on an SMS it accepted.
pub async fn twilio_status(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let fields = twilio_fields(&state, &uri, &headers, &body)?;
    let (Some(sid), Some(status)) = (fields.get("MessageSid"), fields.get("MessageStatus")) else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "a status callback carries MessageSid and MessageStatus",
        ));
    };
    let report = match status.as_str() {
        "delivered" => Report::Delivered,
        "read" => Report::Read,
        "failed" | "undelivered" => Report::Failed(format!(
            "Twilio reports {status}{}",
            fields
                .get("ErrorCode")
                .map(|c| format!(" (error {c})"))
                .unwrap_or_default()
        )),
        // queued, sending, sent, accepted, scheduled: nothing new.
        _ => return Ok(StatusCode::NO_CONTENT),
    };
    state.platform.delivery.provider_report(sid, report).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /webhooks/twilio/inbound`: an SMS from a person. Answered with empty TwiML:
/// any answer (a STOP's confirmation) goes out through the outbox.
pub async fn twilio_inbound(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fields = twilio_fields(&state, &uri, &headers, &body)?;
    let Some(from) = fields.get("From") else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "an inbound message carries From",
        ));
    };
    let text = fields.get("Body").map_or("", String::as_str);
    state
        .platform
        .delivery
        .reply(
            "sms",
            from,
            text,
            fields.get("MessageSid").map(String::as_str),
        )
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response())
}

/// `GET /webhooks/whatsapp`: Meta's verification of the webhook.
pub async fn whatsapp_verify(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<String, ApiError> {
    let get = |k: &str| params.get(k).map_or("", String::as_str);
    state
        .platform
        .delivery
        .callbacks()
        .whatsapp_challenge(
            get("hub.mode"),
            get("hub.verify_token"),
            get("hub.challenge"),
        )
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "bad_verify_token",
                "hub.mode must be subscribe and hub.verify_token the configured one",
            )
        })
}

/// `POST /webhooks/whatsapp`: statuses of sent messages and messages from people.
pub async fn whatsapp_notify(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    match state
        .platform
        .delivery
        .callbacks()
        .whatsapp(&body, signature)
    {
        Verdict::Genuine => {}
        other => return Err(refused(other, "WhatsApp")),
    }
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("not JSON: {e}")))?;
    for change in changes(&payload) {
        for status in array(change, "statuses") {
            let (Some(id), Some(kind)) = (text(status, "/id"), text(status, "/status")) else {
                continue;
            };
            let report = match kind {
                "delivered" => Report::Delivered,
                "read" => Report::Read,
                "failed" => Report::Failed(format!(
                    "WhatsApp reports failed{}",
                    text(status, "/errors/0/title")
                        .map(|t| format!(": {t}"))
                        .unwrap_or_default()
                )),
                _ => continue,
            };
            state.platform.delivery.provider_report(id, report).await?;
        }
        for message in array(change, "messages") {
            let Some(from) = text(message, "/from") else {
                continue;
            };
            let said = text(message, "/text/body")
                .or_else(|| text(message, "/interactive/button_reply/title"))
                .or_else(|| text(message, "/button/text"))
                .unwrap_or("");
            state
                .platform
                .delivery
                .reply("whatsapp", from, said, text(message, "/id"))
                .await?;
        }
    }
    Ok(StatusCode::OK)
}

/// `entry[].changes[].value` of a WhatsApp notification.
fn changes(payload: &Value) -> impl Iterator<Item = &Value> {
    array(payload, "entry")
        .flat_map(|entry| array(entry, "changes"))
        .filter_map(|change| change.get("value"))
}

fn array<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// `GET /t/open/{outbox_id}/{token}`: an e-mail's open pixel. Always the pixel; the
/// open is recorded only when the token holds.
pub async fn open_pixel(
    State(state): State<AppState>,
    Path((id, token)): Path<(i64, String)>,
) -> Response {
    if state.platform.messages.links().verify_open(id, &token)
        && let Err(e) = state.platform.delivery.email_engagement(id, None).await
    {
        tracing::warn!(outbox_id = id, error = %e, "an e-mail open could not be recorded");
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
        tracing::warn!(outbox_id = id, error = %e, "an e-mail click could not be recorded");
    }
    Ok(Redirect::to(&url))
}
