//! What every answer carries for the browser's protection, and CORS for the tracking
//! API: a browser SDK on the company's own site may send events, never call `/api/`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The dashboard's policy: its own scripts, styles and API only; nothing inline, no
/// plugins, no framing, forms posting only to this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// How long a browser keeps to HTTPS once it has seen this server over it (a year).
const HSTS: &str = "max-age=31536000";

/// Middleware: security headers on every answer (an answer that set one keeps its own).
pub async fn headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in defaults {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    if state.sessions.secure() {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static(HSTS));
    }
    response
}

/// Middleware: for `/v1/*`, answers a browser's preflight and lets any origin read the
/// answer; other paths (`/api/` above all) get no CORS headers. No credentials are
/// allowed: the write key travels in the body or the `Authorization` header, as
/// Segment's analytics.js sends it.
pub async fn tracking_cors(request: Request, next: Next) -> Response {
    let from_browser =
        request.uri().path().starts_with("/v1/") && request.headers().contains_key(header::ORIGIN);
    if from_browser && request.method() == Method::OPTIONS {
        let mut answer = StatusCode::NO_CONTENT.into_response();
        let headers = answer.headers_mut();
        allow_origin(headers);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type, Content-Encoding, Authorization"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        return answer;
    }
    let mut response = next.run(request).await;
    if from_browser {
        allow_origin(response.headers_mut());
    }
    response
}

fn allow_origin(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After"),
    );
}

/// The most a request to an endpoint that needs no key may send (sign-in, provider
/// callbacks, unsubscribe and tracking links): anyone can call those, so they get far
/// less than the keyed API's import limit.
pub const KEYLESS_BODY_LIMIT: usize = 256 * 1024;

/// Middleware: the tracking API (`/v1/`, which reads its bodies with its own limit, see
/// `body::read_body`) and the keyed `/api/` aside, a body larger than
/// [`KEYLESS_BODY_LIMIT`] is refused with 413 before a handler sees it.
pub async fn keyless_body_limit(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/v1/") || path.starts_with("/api/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, KEYLESS_BODY_LIMIT).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(e) if crate::body::is_length_limit(&e) => crate::ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("this endpoint takes at most {KEYLESS_BODY_LIMIT} bytes"),
        )
        .with("limit", KEYLESS_BODY_LIMIT)
        .into_response(),
        Err(_) => {
            crate::ApiError::bad_request("unreadable_body", "the request body could not be read")
                .into_response()
        }
    }
}
