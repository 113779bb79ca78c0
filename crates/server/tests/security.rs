//! The HTTP edge's protections: security headers on every answer, dashboard sessions
//! (Secure cookies, sign-out on the server, sign-in throttling), small bodies where no
//! key is needed, CSV cells a spreadsheet would run, and CORS on the tracking API only.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::json;

fn sign_in(key: &str) -> Request<Body> {
    Request::post("/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"key": key}).to_string()))
        .unwrap()
}

fn with_cookie(method: &str, path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

/// The `name=value` of a sign-in's cookie.
fn session_of(answer: &Answer) -> String {
    let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_the_security_headers() {
    let s = server().await;
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let answers = [
        ("the dashboard", s.send(get("/")).await),
        ("an asset", s.send(get("/assets/app.js")).await),
        ("the API without a key", s.send(get("/api/stats")).await),
        ("the API", s.admin("GET", "/api/stats", Body::empty()).await),
        ("tracking", s.track("/v1/batch", r#"{"batch": []}"#).await),
        ("health", s.send(get("/healthz")).await),
        ("no such endpoint", s.send(get("/nothing")).await),
    ];
    for (what, answer) in answers {
        let policy = answer.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            policy.contains("script-src 'self'")
                && policy.contains("style-src 'self'")
                && policy.contains("frame-ancestors 'none'")
                && !policy.contains("unsafe-inline"),
            "{what}: {policy}"
        );
        assert_eq!(answer.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(answer.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(answer.headers[header::REFERRER_POLICY], "no-referrer");
        assert!(
            !answer
                .headers
                .contains_key(header::STRICT_TRANSPORT_SECURITY),
            "{what}: plain http"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_https_the_session_cookie_is_secure() {
    let s = server_customised(Arc::new(|b| {
        b.public_url = "https://cdp.example.com".into();
    }))
    .await;
    let signed = s.send(sign_in(ADMIN_KEY)).await;
    assert_eq!(signed.status, StatusCode::OK);
    let cookie = signed.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert!(
        (signed.headers[header::STRICT_TRANSPORT_SECURITY]
            .to_str()
            .unwrap())
        .starts_with("max-age=")
    );
    let out = s
        .send(with_cookie("POST", "/session/end", &session_of(&signed)))
        .await;
    let cleared = out.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0") && cleared.ends_with("; Secure"));

    let plain = server().await;
    let signed = plain.send(sign_in(ADMIN_KEY)).await;
    let cookie = signed.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_ends_the_session_on_the_server_and_no_other() {
    let s = server().await;
    let first = session_of(&s.send(sign_in(ADMIN_KEY)).await);
    // A second second, so the second session's expiry (and signature) differ.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = session_of(&s.send(sign_in(ADMIN_KEY)).await);
    assert_ne!(first, second);
    for session in [&first, &second] {
        let stats = s.send(with_cookie("GET", "/api/stats", session)).await;
        assert_eq!(stats.status, StatusCode::OK);
    }
    let out = s.send(with_cookie("POST", "/session/end", &first)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    // The browser forgets the cookie; one copied before still opens nothing.
    let copied = s.send(with_cookie("GET", "/api/stats", &first)).await;
    assert_eq!(copied.status, StatusCode::UNAUTHORIZED, "{}", copied.json);
    let other = s.send(with_cookie("GET", "/api/stats", &second)).await;
    assert_eq!(other.status, StatusCode::OK, "the other session goes on");
    // A forged cookie is not written down: signing out with it ends nothing.
    // Only the signature changed (after the last dot), so the cookie is read and checked.
    let (claim, signature) = second.rsplit_once('.').unwrap();
    let forged = format!("{claim}.{}", signature.replace(|c: char| c != '0', "0"));
    let out = s.send(with_cookie("POST", "/session/end", &forged)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let other = s.send(with_cookie("GET", "/api/stats", &second)).await;
    assert_eq!(other.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_attempts_are_throttled_with_retry_after() {
    let s = server().await;
    for attempt in 1..=10 {
        let answer = s.send(sign_in("a-guess-at-the-admin-key")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let throttled = s.send(sign_in("a-guess-at-the-admin-key")).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.json["error"]["code"], "too_many_sign_ins");
    let wait: u32 = (throttled.headers[header::RETRY_AFTER].to_str().unwrap())
        .parse()
        .unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    let right_key = s.send(sign_in(ADMIN_KEY)).await;
    assert_eq!(
        right_key.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right key waits: the throttle does not tell keys apart"
    );
    // Keys on the API are not sign-ins: they are not throttled by them.
    assert_eq!(
        s.admin("GET", "/api/stats", Body::empty()).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_api_keys_are_throttled_with_retry_after() {
    let s = server().await;
    let with_key = |key: &str| {
        Request::get("/api/stats")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };
    // A right key is not counted.
    for _ in 0..12 {
        assert_eq!(s.send(with_key(ADMIN_KEY)).await.status, StatusCode::OK);
    }
    for attempt in 1..=10 {
        let answer = s.send(with_key("a-guess-at-an-api-key-0000")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        assert_eq!(answer.json["error"]["code"], "invalid_admin_key");
    }
    let throttled = s.send(with_key("a-guess-at-an-api-key-0000")).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.json["error"]["code"], "too_many_attempts");
    let wait: u32 = (throttled.headers[header::RETRY_AFTER].to_str().unwrap())
        .parse()
        .unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    assert_eq!(
        s.send(with_key(ADMIN_KEY)).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "no key from that address is looked at until it has an attempt again"
    );
    // Signing in has its own allowance.
    assert_eq!(s.send(sign_in(ADMIN_KEY)).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_that_need_no_key_take_only_small_bodies() {
    let s = server().await;
    let big = "x".repeat(300 * 1024);
    let post = |path: &str, body: &str| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    for path in [
        "/session",
        "/session/end",
        "/webhooks/twilio/status",
        "/webhooks/whatsapp",
    ] {
        let answer = s.send(post(path, &big)).await;
        assert_eq!(
            answer.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{path}: {}",
            answer.json
        );
        assert_eq!(answer.json["error"]["code"], "body_too_large", "{path}");
    }
    // A small body still reaches the handler.
    let answer = s.send(post("/session", "{}")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // The keyed API and tracking keep their own, larger limits.
    let events: Vec<_> = (0..2000)
        .map(|i| {
            json!({"type": "track", "userId": format!("u{i}"), "event": "Viewed",
            "properties": {"padding": "y".repeat(100)}})
        })
        .collect();
    let batch = json!({"batch": events}).to_string();
    assert!(batch.len() > 256 * 1024);
    assert_eq!(s.track("/v1/batch", batch).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_exports_neutralise_cells_a_spreadsheet_would_run() {
    let s = server().await;
    s.send_batch(vec![
        json!({"type": "track", "userId": "ada", "event": "Order Completed",
            "timestamp": "2026-11-02T10:00:00Z",
            "context": {"channel": "web", "touchpoint": "=HYPERLINK(\"http://evil\")"}}),
        json!({"type": "track", "userId": "ada", "event": "Viewed",
            "timestamp": "2026-11-02T11:00:00Z",
            "context": {"channel": "web", "touchpoint": "@SUM(A1)"}}),
    ])
    .await;
    let csv = s
        .admin(
            "GET",
            "/api/kpis/touchpoints?from=2026-11-01&to=2026-11-03&format=csv",
            Body::empty(),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    let text = csv.json.as_str().unwrap();
    assert!(
        text.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""),
        "{text}"
    );
    assert!(text.contains("\n'@SUM(A1),"), "{text}");
    for line in text.lines().skip(1) {
        assert!(
            !line.starts_with(['=', '+', '-', '@']) && !line.starts_with("\"="),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_may_send_to_the_tracking_api_and_never_call_the_admin_api() {
    let s = server().await;
    let preflight = |path: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri(path)
            .header(header::ORIGIN, "https://shop.example.com")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .body(Body::empty())
            .unwrap()
    };
    let answer = s.send(preflight("/v1/batch")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let methods = answer.headers[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    assert!(
        !answer
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
    );
    // analytics.js sends text/plain (no preflight) to the call type's initial, with the
    // write key in the body.
    let sent = s
        .send(
            Request::post("/v1/t")
                .header(header::ORIGIN, "https://shop.example.com")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(
                    json!({"writeKey": WRITE_KEY, "type": "track", "userId": "ada",
                        "event": "Viewed"})
                    .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.json);
    assert_eq!(sent.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");

    let api = s.send(preflight("/api/stats")).await;
    assert!(!api.status.is_success(), "{}", api.status);
    assert!(
        !api.headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
    let read = s
        .send(
            Request::get("/api/stats")
                .header(header::ORIGIN, "https://shop.example.com")
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(
        !read
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}
