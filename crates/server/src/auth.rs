//! Keys: write keys for the tracking API; for `/api/`, named keys with a role (the
//! admin key being the `admin` owner key), checked against the route's access rule.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::RequestExt;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jiff::Timestamp;
use serde_json::Value;
use unavoce_core::access::{PersonView, Role, key_hash, mask_people};
use unavoce_core::audit::AuditEntry;
use unavoce_core::redact::Redacted;

use crate::AppState;
use crate::access::{self, Holds};
use crate::error::ApiError;

/// A write key and the source name events sent with it are recorded under.
#[derive(Debug, Clone)]
pub struct WriteKey {
    pub key: String,
    pub source: String,
}

/// The keys a server accepts besides the named keys in the store: the write keys, and
/// the admin key (the `admin` owner key).
#[derive(Debug, Default)]
pub struct Keys {
    pub write_keys: Vec<WriteKey>,
    pub admin_key: String,
    /// When each named key's use was last written down.
    pub noted: Mutex<HashMap<String, Instant>>,
}

/// A key's use is written down at most this often.
const NOTE_USE_EVERY: Duration = Duration::from_secs(60);

impl Keys {
    /// Writes down (in the background, at most once a minute) that key `name` was used.
    fn note_use(&self, state: &AppState, name: &str) {
        {
            let mut noted = self.noted.lock().unwrap_or_else(|e| e.into_inner());
            if noted
                .get(name)
                .is_some_and(|at| at.elapsed() < NOTE_USE_EVERY)
            {
                return;
            }
            noted.insert(name.to_string(), Instant::now());
        }
        let governance = state.platform.governance.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            if let Err(e) = governance.touch_key(&name, Timestamp::now()).await {
                tracing::warn!(error = %Redacted(&e), "a key's last use could not be written down");
            }
        });
    }

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

/// Who is calling `/api/`: the key's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

pub use unavoce_platform::keys::ADMIN_KEY_NAME;

/// The caller a bearer key or a dashboard session names, if it is valid.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    let Some(token) = presented else {
        if let Some(caller) = crate::session::signed_in(state, headers).await? {
            return Ok(caller);
        }
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_admin_key",
            "this endpoint needs `Authorization: Bearer <API key>`",
        ));
    };
    if constant_time_eq(token.as_bytes(), state.keys.admin_key.as_bytes()) {
        return Ok(Caller {
            name: ADMIN_KEY_NAME.into(),
            role: Role::Owner,
        });
    }
    match state
        .platform
        .governance
        .key_by_hash(&key_hash(&token))
        .await?
    {
        Some(key) => Ok(Caller {
            name: key.name,
            role: key.role,
        }),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_admin_key",
            "the API key is not valid (unknown or revoked)",
        )),
    }
}

/// [`caller`], with wrong keys counted against the client's address as sign-ins are
/// (an allowance of their own): once it has none left, its keys are not even looked
/// at (429).
async fn guarded_caller(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<std::net::IpAddr>,
) -> Result<Caller, ApiError> {
    let now = std::time::Instant::now();
    if let Some(wait) = state.sessions.wrong_keys.waiting(client, now) {
        return Err(crate::session::too_many_attempts(wait));
    }
    let found = caller(state, headers).await;
    if let Err(ApiError {
        code: "invalid_admin_key",
        ..
    }) = &found
    {
        let _ = state.sessions.wrong_keys.attempt(client, now);
    }
    found
}

/// Middleware: `/api/` needs a key (`Authorization: Bearer <key>`) or a dashboard
/// session, whose role the route's rule allows (`access::RULES`). The answer of a route
/// that holds people's data is masked for a role that sees people masked; changes,
/// reads of one person's data and refusals are recorded in the audit log.
pub async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let caller = guarded_caller(&state, request.headers(), client).await?;
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let Some(rule) = access::rule_for(&method, &route) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "no_access_rule",
            format!("{method} {route} has no access rule: no key may use it"),
        ));
    };
    if !rule.allows(caller.role) {
        let refused = AuditEntry {
            at: Timestamp::now(),
            actor: caller.name.clone(),
            role: caller.role.as_str().into(),
            action: format!("{method} {route}"),
            profile_id: None,
            outcome: StatusCode::FORBIDDEN.as_u16(),
        };
        state.platform.governance.audit(vec![refused]).await?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the {} role may not use {method} {route}",
                caller.role.as_str()
            ),
        ));
    }
    let person_in_path = if route.starts_with("/api/profiles/{id}") {
        let params = request.extract_parts::<RawPathParams>().await.ok();
        params.and_then(|p| {
            p.iter()
                .find(|(name, _)| *name == "id")
                .map(|(_, value)| value.to_string())
        })
    } else {
        None
    };
    state.keys.note_use(&state, &caller.name);
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    let masked = rule.holds != Holds::Aggregates && caller.role.person_view() == PersonView::Masked;
    let wants_answer = masked || (rule.audited() && person_in_path.is_none());
    let (response, answer) = if wants_answer && response.status().is_success() {
        read_json(response).await?
    } else {
        (response, None)
    };
    if rule.audited() {
        let profile_id = person_in_path.or_else(|| {
            let id = answer.as_ref()?.get("id")?.as_str()?;
            id.starts_with("p-").then(|| id.to_string())
        });
        let entry = AuditEntry {
            at: Timestamp::now(),
            actor: caller.name.clone(),
            role: caller.role.as_str().into(),
            action: format!("{method} {route}"),
            profile_id,
            outcome: response.status().as_u16(),
        };
        state.platform.governance.audit(vec![entry]).await?;
    }
    match answer {
        Some(mut json) if masked => {
            mask_people(&mut json);
            let mut masked = Json(json).into_response();
            *masked.status_mut() = response.status();
            Ok(masked)
        }
        _ => Ok(response),
    }
}

/// Reads a JSON answer (a CSV or other answer is kept as it is, without JSON).
async fn read_json(response: Response) -> Result<(Response, Option<Value>), ApiError> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Ok((response, None));
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "answer_unreadable",
            e.to_string(),
        )
    })?;
    let json = serde_json::from_slice(&bytes).ok();
    Ok((Response::from_parts(parts, Body::from(bytes)), json))
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
