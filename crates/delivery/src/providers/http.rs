//! What the HTTP providers share: one client with bounded time per request, reading an
//! answer whole, and how an HTTP answer maps to "retry", "slow down" or "give up".

use std::time::Duration;

use serde_json::Value;

use super::{Accepted, Failure, install_crypto};

/// A failure from an HTTP answer: 429 slows down (honouring `Retry-After`), other 4xx
/// are permanent, anything else transient.
fn http_failure(
    status: reqwest::StatusCode,
    retry_after: Option<&reqwest::header::HeaderValue>,
    detail: String,
) -> Failure {
    let error = format!("HTTP {}: {detail}", status.as_u16());
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Failure::RateLimited {
            error,
            retry_after: retry_after
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        }
    } else if status.is_client_error() {
        Failure::Permanent(error)
    } else {
        Failure::Transient(error)
    }
}

/// An HTTP provider's answer, read whole.
pub(crate) struct Answer {
    /// Its status.
    pub status: reqwest::StatusCode,
    retry_after: Option<reqwest::header::HeaderValue>,
    /// Its body, as text.
    pub text: String,
    /// The body as JSON (`Null` when it is not).
    pub json: Value,
}

impl Answer {
    /// Sends `request` and reads the answer; not reaching the provider is transient.
    pub(crate) async fn of(request: reqwest::RequestBuilder) -> Result<Answer, Failure> {
        let answer = request.send().await.map_err(unreachable)?;
        let status = answer.status();
        let retry_after = answer.headers().get(reqwest::header::RETRY_AFTER).cloned();
        let text = answer.text().await.map_err(unreachable)?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            retry_after,
            text,
            json,
        })
    }

    /// The failure an unsuccessful answer is, `detail` saying why.
    pub(crate) fn failure(&self, detail: String) -> Failure {
        http_failure(self.status, self.retry_after.as_ref(), detail)
    }

    /// A successful answer's message id, at `pointer` of its JSON.
    pub(crate) fn accepted(&self, pointer: &str, provider: &str) -> Result<Accepted, Failure> {
        match text_at(&self.json, pointer) {
            Some(id) => Ok(Accepted {
                provider_message_id: Some(id.to_string()),
            }),
            None => Err(Failure::Transient(format!(
                "{provider} accepted the message but gave no id: {}",
                excerpt(&self.text)
            ))),
        }
    }
}

/// A failure to reach an HTTP provider at all.
fn unreachable(e: reqwest::Error) -> Failure {
    // Without the URL, whose path or query may hold a secret (a department's webhook);
    // with the causes, which say what went wrong (refused, timed out, bad certificate).
    let e = e.without_url();
    let mut why = format!("cannot reach the provider: {e}");
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        why.push_str(&format!(": {c}"));
        cause = c.source();
    }
    Failure::Transient(why)
}

/// A short piece of a provider's answer for an error message.
pub(crate) fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_string(),
    }
}

/// An HTTP client for providers: bounded time per request.
pub(crate) fn http_client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// A JSON field as text.
pub(crate) fn text_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}
