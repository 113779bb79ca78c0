//! Dashboard sessions: signing in with an API key sets an HttpOnly, SameSite=Strict
//! cookie carrying the key's name, an expiry and an HMAC-SHA256 of both under the key's
//! hash, so the key itself never stays in the browser, and revoking or changing the key
//! ends its sessions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use unavoce_core::access::{Role, key_hash};

use crate::AppState;
use crate::auth::{ADMIN_KEY_NAME, Caller};
use crate::error::ApiError;

const COOKIE: &str = "unavoce_session";
/// How long a session lasts.
const HOURS: i64 = 12;

fn signature(key_hash: &str, name: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key_hash.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(format!("session:{name}:{expires}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hash of the key named `name` and its role, if it is (still) a key.
async fn named_key(state: &AppState, name: &str) -> Result<Option<(String, Role)>, ApiError> {
    if name == ADMIN_KEY_NAME {
        return Ok(Some((key_hash(&state.keys.admin_key), Role::Owner)));
    }
    let key = state.platform.governance.key_by_name(name).await?;
    Ok(key.map(|k| (k.key_hash, k.role)))
}

/// The caller of a valid, unexpired session cookie (`name.expires.signature`), if the
/// request carries one and its key is still there: revoking a key ends its sessions.
pub async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let now = jiff::Timestamp::now().as_second();
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(str::to_string)
        .collect::<Vec<_>>();
    for value in cookies {
        let Some((name, expires, given)) = parse(&value) else {
            continue;
        };
        if expires <= now {
            continue;
        }
        if let Some((hash, role)) = named_key(state, name).await?
            && holds(&hash, name, expires, given, now)
        {
            return Ok(Some(Caller {
                name: name.to_string(),
                role,
            }));
        }
    }
    Ok(None)
}

/// A cookie's value: the key's name, the expiry, the signature.
fn parse(value: &str) -> Option<(&str, i64, &str)> {
    let mut parts = value.rsplitn(3, '.');
    let (given, expires, name) = (parts.next()?, parts.next()?, parts.next()?);
    Some((name, expires.parse().ok()?, given))
}

/// Whether a session of key `name` (whose hash is `key_hash`) until `expires`, signed
/// `given`, holds at `now`.
fn holds(key_hash: &str, name: &str, expires: i64, given: &str, now: i64) -> bool {
    expires > now
        && crate::auth::constant_time_eq(
            signature(key_hash, name, expires).as_bytes(),
            given.as_bytes(),
        )
}

/// `POST /session` with `{"key": "<API key>"}`: signs in with any key; answers the
/// key's name and role.
pub async fn sign_in(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let given: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "send {\"key\": \"<API key>\"}"))?;
    let key = given.get("key").and_then(Value::as_str).unwrap_or_default();
    let found = if crate::auth::constant_time_eq(key.as_bytes(), state.keys.admin_key.as_bytes()) {
        Some((ADMIN_KEY_NAME.to_string(), key_hash(key), Role::Owner))
    } else {
        let hash = key_hash(key);
        let kept = state.platform.governance.key_by_hash(&hash).await?;
        kept.map(|k| (k.name, hash, k.role))
    };
    let Some((name, hash, role)) = found else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_admin_key",
            "the API key is not valid (unknown or revoked)",
        ));
    };
    let expires = jiff::Timestamp::now().as_second() + HOURS * 3600;
    let cookie = format!(
        "{COOKIE}={name}.{expires}.{}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        signature(&hash, &name, expires),
        HOURS * 3600
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({"signed_in": true, "hours": HOURS, "name": name, "role": role})),
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
    fn a_session_holds_until_it_expires_or_its_key_changes() {
        let now = jiff::Timestamp::now().as_second();
        let cookie = |hash: &str, name: &str, expires: i64| {
            format!("{name}.{expires}.{}", signature(hash, name, expires))
        };
        let check = |value: &str, hash: &str| {
            parse(value)
                .is_some_and(|(name, expires, given)| holds(hash, name, expires, given, now))
        };
        assert!(
            check(&cookie("h", "care.desk", now + 60), "h"),
            "a name with a dot"
        );
        assert!(!check(&cookie("h", "care", now + 60), "another key's hash"));
        assert!(!check(&cookie("h", "care", now - 1), "h"), "expired");
        let renamed = cookie("h", "care", now + 60).replacen("care", "boss", 1);
        assert!(!check(&renamed, "h"), "another name");
        assert!(!check("garbage", "h"));
    }
}
