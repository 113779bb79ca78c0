//! The one error shape of the HTTP API: `{"error": {"code", "message", ...}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use unavoce_core::redact::Redacted;
use unavoce_store::StoreError;

/// An API error: an HTTP status, a stable code, a sentence, and optional details.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Map<String, Value>,
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
            retry_after_secs: None,
        }
    }

    /// 400 with the given code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Adds a detail field to the error object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Overloaded => ApiError {
                retry_after_secs: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
            },
            StoreError::Closed => ApiError {
                retry_after_secs: Some(5),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    e.to_string(),
                )
            },
            // 507, not 503: the cause is the operator's to fix, not load; the Segment
            // SDKs retry it as any 5xx.
            StoreError::Full(_) => ApiError {
                retry_after_secs: Some(30),
                ..ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "the disk holding the event log is full; nothing from this request was stored",
                )
            },
            StoreError::Storage(_) => {
                tracing::error!(error = %Redacted(&e), "storage failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage_failure",
                    "the event log could not be written; nothing from this request was stored",
                )
            }
            StoreError::QuarantineEntryNotFound(_) => ApiError::not_found(e.to_string()),
            StoreError::AlreadyReplayed { seq, .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_replayed", e.to_string())
                    .with("seq", seq)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = self.details;
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.into());
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
