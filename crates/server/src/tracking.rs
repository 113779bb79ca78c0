//! The Segment-compatible HTTP Tracking API under `/v1/`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use jiff::Timestamp;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use unavoce_core::EventType;
use unavoce_core::segment::{
    MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES, Rejection, RejectionCode,
};
use unavoce_intake::{IngestReport, Item, ItemBody, Submission};

use crate::AppState;
use crate::auth::{basic_username, invalid_write_key};
use crate::body::read_body;
use crate::error::ApiError;
use unavoce_store::StoreError;

/// A request body as received: when, what, and the source of the header's write key.
struct Received {
    at: Timestamp,
    bytes: Vec<u8>,
    /// `Some` when an `Authorization: Basic` header carried a known write key.
    header_source: Option<String>,
}

impl Received {
    /// Refuses at once (503) while the log's write queue is full: a body that would be
    /// refused anyway is not read, decompressed and parsed, which under overload left
    /// less of the machine for the batches that are taken.
    async fn read(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Self, ApiError> {
        let at = Timestamp::now();
        let header_source = header_source(state, headers)?;
        if !state.platform.intake.log().is_ready() {
            return Err(StoreError::Overloaded.into());
        }
        let bytes = read_body(headers, body, MAX_REQUEST_BYTES).await?;
        Ok(Received {
            at,
            bytes,
            header_source,
        })
    }

    fn text(&self) -> Result<&str, Rejection> {
        std::str::from_utf8(&self.bytes).map_err(|e| {
            Rejection::new(
                RejectionCode::InvalidJson,
                format!(
                    "the body is not valid UTF-8 (first bad byte at offset {})",
                    e.valid_up_to()
                ),
            )
        })
    }

    /// Answers a body that cannot be read as messages. When the sender authenticated
    /// in the header, the body is kept in the quarantine first, so nothing is lost; an
    /// unauthenticated body is never stored.
    async fn refuse(&self, state: &AppState, rejection: Rejection) -> ApiError {
        let code = rejection.code.as_str();
        let Some(source) = &self.header_source else {
            return ApiError::bad_request(code, rejection.message);
        };
        let submission = Submission {
            source,
            received_at: self.at,
            endpoint_type: None,
            default_touchpoint: None,
            envelope: None,
            items: vec![Item {
                body: ItemBody::Unusable {
                    payload: String::from_utf8_lossy(&self.bytes).into_owned(),
                    rejection: rejection.clone(),
                },
                origin: json!({"endpoint": "body"}),
            }],
        };
        match ingest(state, submission).await {
            Ok(report) => {
                let error = ApiError::bad_request(code, rejection.message);
                match report.rejected.first().and_then(|r| r.quarantine_id) {
                    Some(id) => error.with("quarantine_id", id),
                    None => error,
                }
            }
            Err(e) => e,
        }
    }
}

/// `POST /v1/{identify,track,page,screen,group,alias}`: one message.
pub async fn single(
    State(state): State<AppState>,
    event_type: EventType,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let received = Received::read(&state, &headers, body).await?;
    let parsed = received
        .text()
        .and_then(|text| match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(message)) => Ok((text.len(), message)),
            Ok(_) => Err(Rejection::new(
                RejectionCode::NotAnObject,
                "the body must be a JSON object",
            )),
            Err(e) => Err(Rejection::new(
                RejectionCode::InvalidJson,
                format!("the body is not valid JSON: {e}"),
            )),
        });
    let (size, mut message) = match parsed {
        Ok(parsed) => parsed,
        Err(rejection) => return Err(received.refuse(&state, rejection).await),
    };
    let body_key = take_write_key(&mut message);
    let source = resolve_source(&state, received.header_source.clone(), body_key.as_deref())?;
    let body = if size > MAX_MESSAGE_BYTES {
        ItemBody::Unusable {
            payload: Value::Object(message).to_string(),
            rejection: Rejection::new(
                RejectionCode::MessageTooLarge,
                format!(
                    "the message is {size} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (32 KB)"
                ),
            ),
        }
    } else {
        ItemBody::Parsed(message)
    };
    let report = ingest(
        &state,
        Submission {
            source: &source,
            received_at: received.at,
            endpoint_type: Some(event_type),
            default_touchpoint: None,
            envelope: None,
            items: vec![Item {
                body,
                origin: json!({"endpoint": format!("/v1/{event_type}")}),
            }],
        },
    )
    .await?;
    if let Some(rejected) = report.rejected.first() {
        let error = ApiError::bad_request(rejected.code.as_str(), rejected.message.clone());
        return Err(match rejected.quarantine_id {
            Some(id) => error.with("quarantine_id", id),
            None => error,
        });
    }
    Ok(Json(
        json!({"success": true, "duplicate": report.duplicates == 1}),
    ))
}

/// The handler of one call type's endpoint, `POST /v1/<type>`, documented.
macro_rules! call_endpoint {
    ($handler:ident, $event_type:expr, $path:literal, $about:literal) => {
        #[doc = concat!("`POST ", $path, "`: one ", $about, " call.")]
        #[utoipa::path(
            post,
            path = $path,
            operation_id = stringify!($handler),
            tag = "tracking",
            description = concat!(
                "One ", $about, " message, as Segment's HTTP Tracking API takes it. The ",
                "message is validated and stored, or quarantined with the reason (then the ",
                "400 carries `error.quarantine_id`). At most 32 KB a message, 500 KB a ",
                "request; gzip is read."
            ),
            request_body(content = crate::openapi::schemas::TrackingMessage, content_type = "application/json"),
            responses(
                (status = 200, description = "Stored, or already stored (`duplicate`).", body = crate::openapi::schemas::CallAccepted),
            )
        )]
        pub async fn $handler(
            state: State<AppState>,
            headers: HeaderMap,
            body: Body,
        ) -> Result<Json<Value>, ApiError> {
            single(state, $event_type, headers, body).await
        }
    };
}

call_endpoint!(identify, EventType::Identify, "/v1/identify", "identify");
call_endpoint!(track, EventType::Track, "/v1/track", "track");
call_endpoint!(page, EventType::Page, "/v1/page", "page");
call_endpoint!(screen, EventType::Screen, "/v1/screen", "screen");
call_endpoint!(group, EventType::Group, "/v1/group", "group");
call_endpoint!(alias, EventType::Alias, "/v1/alias", "alias");
// The short paths Segment's browser SDK (analytics.js) posts to: the call type's initial.
call_endpoint!(
    identify_short,
    EventType::Identify,
    "/v1/i",
    "identify (analytics.js's path)"
);
call_endpoint!(
    track_short,
    EventType::Track,
    "/v1/t",
    "track (analytics.js's path)"
);
call_endpoint!(
    page_short,
    EventType::Page,
    "/v1/p",
    "page (analytics.js's path)"
);
call_endpoint!(
    screen_short,
    EventType::Screen,
    "/v1/s",
    "screen (analytics.js's path)"
);
call_endpoint!(
    group_short,
    EventType::Group,
    "/v1/g",
    "group (analytics.js's path)"
);
call_endpoint!(
    alias_short,
    EventType::Alias,
    "/v1/a",
    "alias (analytics.js's path)"
);

/// `POST /v1/batch` and `/v1/import`: many messages. One bad message never costs the
/// good ones: they are stored, the bad quarantined, and the 200 answer lists what was
/// rejected. A 4xx is only for a request that cannot be read as a batch at all.
#[utoipa::path(
    post,
    path = "/v1/batch",
    operation_id = "batch",
    tag = "tracking",
    request_body(content = crate::openapi::schemas::BatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Every message stored, already stored or quarantined: `rejected` lists the quarantined ones.", body = crate::openapi::schemas::BatchAccepted),
    )
)]
pub async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let received = Received::read(&state, &headers, body).await?;
    let BatchBody {
        items,
        envelope,
        write_key,
    } = match received.text().and_then(read_batch) {
        Ok(batch) => batch,
        Err(rejection) if rejection.code == RejectionCode::InvalidField => {
            let error = received.refuse(&state, rejection).await;
            return Err(ApiError {
                code: "invalid_batch",
                ..error
            });
        }
        Err(rejection) => return Err(received.refuse(&state, rejection).await),
    };
    let source = resolve_source(&state, received.header_source.clone(), write_key.as_deref())?;

    let count = items.len();
    let too_many = count > MAX_BATCH_MESSAGES;
    let items = items
        .into_iter()
        .enumerate()
        .map(|(index, raw)| Item {
            body: if too_many {
                ItemBody::Unusable {
                    payload: raw.get().to_string(),
                    rejection: Rejection::new(
                        RejectionCode::BatchTooLarge,
                        format!(
                            "the batch has {count} messages; the limit is {MAX_BATCH_MESSAGES}"
                        ),
                    ),
                }
            } else {
                ItemBody::Raw(raw.get())
            },
            origin: json!({"endpoint": "/v1/batch", "index": index}),
        })
        .collect();
    let report = ingest(
        &state,
        Submission {
            source: &source,
            received_at: received.at,
            endpoint_type: None,
            default_touchpoint: None,
            envelope: Some(&envelope),
            items,
        },
    )
    .await?;
    if too_many {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "the batch has {count} messages; the limit is {MAX_BATCH_MESSAGES}. Every message was quarantined; send them again in smaller batches"
            ),
        )
        .with("quarantined", report.rejected.len()));
    }
    Ok(Json(json!({
        "success": true,
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
    })))
}

/// A `/v1/batch` body read as JSON.
#[derive(Debug)]
pub struct BatchBody<'a> {
    /// The messages, as their JSON text.
    pub items: Vec<&'a RawValue>,
    /// The other fields (`context`, `integrations`, `sentAt`, ...), `writeKey` taken out.
    pub envelope: Map<String, Value>,
    /// The body's `writeKey`, when it is a string.
    pub write_key: Option<String>,
}

/// Reads a batch body: `invalid_json` when it is not a JSON object, `invalid_field`
/// when it has no `batch` array (answered as `invalid_batch`).
pub fn read_batch(text: &str) -> Result<BatchBody<'_>, Rejection> {
    let mut fields = serde_json::from_str::<BTreeMap<String, &RawValue>>(text).map_err(|e| {
        Rejection::new(
            RejectionCode::InvalidJson,
            format!("the body is not a JSON object: {e}"),
        )
    })?;
    let items: Vec<&RawValue> = fields
        .remove("batch")
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .ok_or_else(|| {
            Rejection::new(
                RejectionCode::InvalidField,
                "the body needs a `batch` array of messages",
            )
        })?;
    let mut envelope = Map::new();
    for (key, raw) in fields {
        if let Ok(value) = serde_json::from_str::<Value>(raw.get()) {
            envelope.insert(key, value);
        }
    }
    let write_key = take_write_key(&mut envelope);
    Ok(BatchBody {
        items,
        envelope,
        write_key,
    })
}

/// `POST /v1/import`: the same as `/v1/batch` (Segment's name for historical imports).
#[utoipa::path(
    post,
    path = "/v1/import",
    operation_id = "import_batch",
    tag = "tracking",
    request_body(content = crate::openapi::schemas::BatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "As `/v1/batch`.", body = crate::openapi::schemas::BatchAccepted),
    )
)]
pub async fn import(
    state: State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    batch(state, headers, body).await
}

/// `POST /v1/b`: the same as `/v1/batch` (the path analytics.js's batching delivery
/// posts to).
#[utoipa::path(
    post,
    path = "/v1/b",
    operation_id = "batch_short",
    tag = "tracking",
    request_body(content = crate::openapi::schemas::BatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "As `/v1/batch`.", body = crate::openapi::schemas::BatchAccepted),
    )
)]
pub async fn batch_short(
    state: State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    batch(state, headers, body).await
}

async fn ingest(state: &AppState, submission: Submission<'_>) -> Result<IngestReport, ApiError> {
    let report = state.platform.intake.ingest(submission).await?;
    state.metrics.record_ingest(&report);
    Ok(report)
}

/// The source of the Basic header's write key: `Ok(None)` when there is no header,
/// 401 when there is one with an unknown key.
fn header_source(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match basic_username(headers) {
        None => Ok(None),
        Some(key) => state
            .keys
            .source_of(&key)
            .map(|s| Some(s.to_string()))
            .ok_or_else(invalid_write_key),
    }
}

fn resolve_source(
    state: &AppState,
    header_source: Option<String>,
    body_key: Option<&str>,
) -> Result<String, ApiError> {
    if let Some(source) = header_source {
        return Ok(source);
    }
    body_key
        .and_then(|key| state.keys.source_of(key))
        .map(str::to_string)
        .ok_or_else(invalid_write_key)
}

/// Removes `writeKey` from a message or envelope: a secret is never stored.
fn take_write_key(object: &mut Map<String, Value>) -> Option<String> {
    match object.remove("writeKey") {
        Some(Value::String(key)) => Some(key),
        _ => None,
    }
}
