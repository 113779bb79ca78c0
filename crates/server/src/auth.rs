//! Keys: write keys for the tracking API, the admin key for `/api/`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;

use crate::AppState;
use crate::error::ApiError;

/// A write key and the source name events sent with it are recorded under.
#[derive(Debug, Clone)]
pub struct WriteKey {
    pub key: String,
    pub source: String,
}

/// The keys a server accepts.
#[derive(Debug, Clone)]
pub struct Keys {
    pub write_keys: Vec<WriteKey>,
    pub admin_key: String,
}

impl Keys {
    /// The source of a write key, if the key is known.
    pub fn source_of(&self, key: &str) -> Option<&str> {
        self.write_keys
            .iter()
            .find(|w| constant_time_eq(w.key.as_bytes(), key.as_bytes()))
            .map(|w| w.source.as_str())
    }
}

/// The write key of an `Authorization: Basic` header: the username, with or without
/// the trailing colon (Segment's SDKs send `base64(key + ":")`).
pub fn basic_username(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    Some(user.to_string()).filter(|u| !u.is_empty())
}

/// The 401 of the tracking API.
pub fn invalid_write_key() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_write_key",
        "missing or unknown write key: send it as the HTTP Basic username or as `writeKey` in the body",
    )
}

/// Middleware: `/api/` needs `Authorization: Bearer <admin key>`, or a dashboard
/// session.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    if presented.is_none() && crate::session::is_signed_in(request.headers(), &state.keys.admin_key)
    {
        return Ok(next.run(request).await);
    }
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), state.keys.admin_key.as_bytes()) => {
            Ok(next.run(request).await)
        }
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_admin_key",
            "the admin key is not valid",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_admin_key",
            "this endpoint needs `Authorization: Bearer <admin key>`",
        )),
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_username_with_or_without_colon() {
        for raw in ["KEY:", "KEY", "KEY:ignored"] {
            let mut headers = HeaderMap::new();
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
            headers.insert(
                header::AUTHORIZATION,
                format!("Basic {encoded}").parse().unwrap(),
            );
            assert_eq!(basic_username(&headers).as_deref(), Some("KEY"), "{raw}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer KEY".parse().unwrap());
        assert_eq!(basic_username(&headers), None);
    }
}
