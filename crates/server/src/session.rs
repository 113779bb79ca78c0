//! Dashboard sessions: signing in with the admin key sets an HttpOnly, SameSite=Strict
//! cookie carrying an expiry and an HMAC-SHA256 of it under the admin key, so the key
//! itself never stays in the browser and changing it ends every session.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::AppState;
use crate::error::ApiError;

const COOKIE: &str = "unavoce_session";
/// How long a session lasts.
const HOURS: i64 = 12;

fn signature(admin_key: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(admin_key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(format!("session:{expires}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether the request carries a valid, unexpired session cookie.
pub fn is_signed_in(headers: &HeaderMap, admin_key: &str) -> bool {
    let now = jiff::Timestamp::now().as_second();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|value| {
            let Some((expires, given)) = value.split_once('.') else {
                return false;
            };
            let Ok(expires) = expires.parse::<i64>() else {
                return false;
            };
            let expected = signature(admin_key, expires);
            expires > now && crate::auth::constant_time_eq(expected.as_bytes(), given.as_bytes())
        })
}

/// `POST /session` with `{"key": "<admin key>"}`: signs in.
pub async fn sign_in(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let given: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "send {\"key\": \"<admin key>\"}"))?;
    let key = given.get("key").and_then(Value::as_str).unwrap_or_default();
    if !crate::auth::constant_time_eq(key.as_bytes(), state.keys.admin_key.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_admin_key",
            "the admin key is not valid",
        ));
    }
    let expires = jiff::Timestamp::now().as_second() + HOURS * 3600;
    let cookie = format!(
        "{COOKIE}={expires}.{}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        signature(&state.keys.admin_key, expires),
        HOURS * 3600
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({"signed_in": true, "hours": HOURS})),
    )
        .into_response())
}

/// `POST /session/end`: signs out.
pub async fn sign_out() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cookie_holds_until_it_expires_or_the_key_changes() {
        let future = jiff::Timestamp::now().as_second() + 60;
        let cookie = |key: &str, expires: i64| {
            let mut headers = HeaderMap::new();
            let value = format!("other=1; {COOKIE}={expires}.{}", signature(key, expires));
            headers.insert(header::COOKIE, value.parse().unwrap());
            headers
        };
        assert!(is_signed_in(&cookie("k", future), "k"));
        assert!(!is_signed_in(&cookie("k", future), "another key"));
        assert!(!is_signed_in(&cookie("k", future - 120), "k"));
        assert!(!is_signed_in(&HeaderMap::new(), "k"));
    }
}
