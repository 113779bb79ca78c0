//! Dashboard sessions: signing in with an API key sets an HttpOnly, SameSite=Strict
//! cookie carrying the key's name, an expiry and an HMAC-SHA256 of both under the key's
//! hash, so the key itself never stays in the browser, and revoking or changing the key
//! ends its sessions. Signing out ends the session on the server too (the store keeps
//! its signature until it would have expired), so a copied cookie opens nothing after.
//! The cookie is `Secure` when the server's public URL is https. Sign-in attempts are
//! limited per client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use unavoce_core::access::{Role, key_hash};

use crate::AppState;
use crate::auth::{ADMIN_KEY_NAME, Caller};
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

const COOKIE: &str = "unavoce_session";
/// How long a session lasts.
const HOURS: i64 = 12;
/// Sign-in attempts a client address may make at once ...
const ATTEMPTS: f64 = 10.0;
/// ... and how often it gains one more (ten a minute).
const ATTEMPT_EVERY: Duration = Duration::from_secs(6);
/// Client addresses whose attempts are remembered before the rested ones are forgotten.
const ADDRESSES_KEPT: usize = 10_000;

/// How dashboard sessions are given: whether their cookie is `Secure`, and the sign-in
/// attempts each client address has left.
#[derive(Debug)]
pub struct Sessions {
    secure: bool,
    /// Sign-ins, right or wrong.
    pub(crate) sign_ins: Allowance,
    /// API keys on `/api/` that did not hold (their own allowance: a client throttled
    /// at sign-in keeps using the API with its key).
    pub(crate) wrong_keys: Allowance,
}

/// The attempts each client address has left.
#[derive(Debug, Default)]
pub(crate) struct Allowance(Mutex<HashMap<Option<IpAddr>, Attempts>>);

/// The address attempts are counted by: an IPv4 address, or an IPv6 address's /64
/// network (one subscriber's, which can hold countless addresses).
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            ))
        }
    }
}

/// The attempts `a` has left at `now`, one more every [`ATTEMPT_EVERY`].
fn rested(a: &Attempts, now: Instant) -> f64 {
    let gained = now.saturating_duration_since(a.at).as_secs_f64() / ATTEMPT_EVERY.as_secs_f64();
    (a.left + gained).min(ATTEMPTS)
}

/// The 429 of a client address out of attempts for `wait`.
pub(crate) fn too_many_attempts(wait: Duration) -> ApiError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u32;
    ApiError {
        retry_after_secs: Some(secs),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many attempts with a wrong key from this address; try again in {secs} s"),
        )
    }
}

/// A client address's attempts left, as of `at`.
#[derive(Debug, Clone, Copy)]
struct Attempts {
    left: f64,
    at: Instant,
}

impl Sessions {
    /// Sessions of a server people reach at `public_url`: `Secure` cookies when it is
    /// https.
    pub fn for_public_url(public_url: &str) -> Self {
        let secure = public_url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        Sessions {
            secure,
            sign_ins: Allowance::default(),
            wrong_keys: Allowance::default(),
        }
    }

    /// Whether the server is reached over https.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The `Set-Cookie` value of a session `value` lasting `max_age` seconds.
    fn cookie(&self, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }
}

impl Allowance {
    /// How long until `client` has an attempt again, when it has none left now.
    pub(crate) fn waiting(&self, client: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let a = all.get(&client.map(network))?;
        let left = rested(a, now);
        (left < 1.0).then(|| ATTEMPT_EVERY.mul_f64(1.0 - left))
    }

    /// Takes one attempt of `client` at `now` (a sign-in, or an API key that did not
    /// hold); when it has none left, how long until it has one. Requests with no known
    /// address share one allowance.
    pub(crate) fn attempt(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() >= ADDRESSES_KEPT {
            all.retain(|_, a| rested(a, now) < ATTEMPTS);
            if all.len() >= ADDRESSES_KEPT {
                // Spread over more addresses than are kept: start again rather than grow.
                all.clear();
            }
        }
        let entry = all.entry(client.map(network)).or_insert(Attempts {
            left: ATTEMPTS,
            at: now,
        });
        let left = rested(entry, now);
        if left < 1.0 {
            return Err(ATTEMPT_EVERY.mul_f64(1.0 - left));
        }
        *entry = Attempts {
            left: left - 1.0,
            at: now,
        };
        Ok(())
    }
}

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
    for (name, expires, given) in claims(headers) {
        if expires <= now {
            continue;
        }
        if let Some((hash, role)) = named_key(state, name).await?
            && holds(&hash, name, expires, given, now)
            && !state.platform.governance.session_ended(given).await?
        {
            return Ok(Some(Caller {
                name: name.to_string(),
                role,
            }));
        }
    }
    Ok(None)
}

/// The sessions a request's `unavoce_session` cookies claim, in order: each one's key
/// name, expiry (Unix seconds) and signature, unchecked; values that are not one are
/// passed over.
pub fn claims(headers: &HeaderMap) -> Vec<(&str, i64, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter_map(parse)
        .collect()
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
/// key's name and role. Too many attempts from one client address answer 429.
#[utoipa::path(
    post,
    path = "/session",
    operation_id = "sign_in",
    tag = "session",
    request_body = doc::SignIn,
    responses(
        (status = 200, description = "Signed in: the session cookie is set (HttpOnly, SameSite=Strict).", body = doc::SignedIn, headers(("Set-Cookie" = String, description = "`unavoce_session=<name>.<expiry>.<signature>`"))),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 429, response = openapi::TooManyRequests),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    extensions: Extensions,
    body: Bytes,
) -> Result<Response, ApiError> {
    let client = (extensions.get::<ConnectInfo<SocketAddr>>()).map(|c| c.0.ip());
    if let Err(wait) = state.sessions.sign_ins.attempt(client, Instant::now()) {
        return Err(ApiError {
            code: "too_many_sign_ins",
            ..too_many_attempts(wait)
        });
    }
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
    let value = format!("{name}.{expires}.{}", signature(&hash, &name, expires));
    let cookie = state.sessions.cookie(&value, HOURS * 3600);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({"signed_in": true, "hours": HOURS, "name": name, "role": role})),
    )
        .into_response())
}

/// `POST /session/end`: signs out, ending on the server every valid session the request
/// carries (a cookie that does not hold is not written down).
#[utoipa::path(
    post,
    path = "/session/end",
    operation_id = "sign_out",
    tag = "session",
    responses(
        (status = 204, description = "Signed out: the sessions the request carried are ended, and the cookie cleared.", headers(("Set-Cookie" = String))),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = jiff::Timestamp::now();
    for (name, expires, given) in claims(&headers) {
        let valid = named_key(&state, name)
            .await?
            .is_some_and(|(hash, _)| holds(&hash, name, expires, given, now.as_second()));
        if let (true, Ok(until)) = (valid, jiff::Timestamp::from_second(expires)) {
            state
                .platform
                .governance
                .end_session(given, until, now)
                .await?;
        }
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, state.sessions.cookie("", 0))],
    )
        .into_response())
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

    #[test]
    fn sign_in_attempts_are_limited_per_address_and_come_back_with_time() {
        let sessions = Sessions::for_public_url("https://cdp.example.com");
        assert!(sessions.secure());
        assert!(sessions.cookie("v", 60).ends_with("; Secure"));
        assert!(!Sessions::for_public_url("http://localhost:8080").secure());
        let start = Instant::now();
        let one: Option<IpAddr> = Some([192, 0, 2, 1].into());
        let other: Option<IpAddr> = Some([192, 0, 2, 2].into());
        for _ in 0..10 {
            assert_eq!(sessions.sign_ins.attempt(one, start), Ok(()));
        }
        let wait = sessions.sign_ins.attempt(one, start).unwrap_err();
        assert_eq!(wait, ATTEMPT_EVERY, "one more attempt in six seconds");
        assert_eq!(
            sessions.sign_ins.attempt(other, start),
            Ok(()),
            "another address"
        );
        let v6 = |last: u16| Some(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]));
        for _ in 0..10 {
            assert_eq!(sessions.sign_ins.attempt(v6(1), start), Ok(()));
        }
        assert!(
            sessions.sign_ins.attempt(v6(2), start).is_err(),
            "the same /64"
        );
        let later = start + Duration::from_secs(3);
        assert_eq!(
            sessions.sign_ins.attempt(one, later),
            Err(Duration::from_secs(3))
        );
        assert_eq!(
            sessions.sign_ins.attempt(one, start + ATTEMPT_EVERY),
            Ok(())
        );
        assert!(
            sessions
                .sign_ins
                .attempt(one, start + ATTEMPT_EVERY)
                .is_err()
        );
    }
}
