//! The dashboard's shell and sessions, and the API calls it makes.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_shell_is_public_the_data_needs_a_session_signed_with_the_admin_key() {
    let s = server().await;
    let shell = s.send(Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(shell.status, StatusCode::OK);
    assert!(shell.json.as_str().unwrap().contains("/assets/app.js"));
    let script = s
        .send(Request::get("/assets/app.js").body(Body::empty()).unwrap())
        .await;
    assert_eq!(
        script.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let missing = s
        .send(
            Request::get("/assets/nothing.js")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let sign_in = |key: &str| {
        Request::post("/session")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"key": key}).to_string()))
            .unwrap()
    };
    let refused = s.send(sign_in("guess")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.headers.get(header::SET_COOKIE).is_none());
    let signed = s.send(sign_in(ADMIN_KEY)).await;
    assert_eq!(signed.status, StatusCode::OK);
    let cookie = signed.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(ADMIN_KEY));
    let session = cookie.split(';').next().unwrap().to_string();
    let stats = |cookie: Option<&str>| {
        let mut request = Request::get("/api/stats");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(Body::empty()).unwrap()
    };
    assert_eq!(s.send(stats(None)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(s.send(stats(Some(&session))).await.status, StatusCode::OK);
    let forged = session.replace(|c: char| c.is_ascii_hexdigit() && c > '9', "0");
    assert_eq!(
        s.send(stats(Some(&forged))).await.status,
        StatusCode::UNAUTHORIZED
    );
    let out = s
        .send(Request::post("/session/end").body(Body::empty()).unwrap())
        .await;
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn people_are_found_by_any_identifier_or_name_and_activity_is_counted_per_day() {
    let s = server().await;
    s.send_batch(vec![
        json!({"type": "identify", "userId": "ada", "traits": {"firstName": "Ada", "lastName": "Lovelace",
            "email": "ada@example.com"}, "context": {"channel": "web"}}),
        json!({"type": "identify", "userId": "bruno", "traits": {"email": "bruno@example.org"},
            "context": {"channel": "app"}}),
    ])
    .await;
    let found = s.get("/api/profiles/search?q=LOVE").await;
    assert_eq!(found["profiles"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["profiles"][0]["name"], "Ada Lovelace");
    let found = s.get("/api/profiles/search?q=example").await;
    assert_eq!(found["profiles"].as_array().unwrap().len(), 2, "{found}");
    let short = s
        .admin("GET", "/api/profiles/search?q=a", Body::empty())
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    let activity = s.get("/api/activity?by=channel").await;
    assert_eq!(activity["days"].as_array().unwrap().len(), 1, "{activity}");
    let names: Vec<&str> = activity["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"web") && names.contains(&"app"),
        "{names:?}"
    );
    let bad = s
        .admin("GET", "/api/activity?by=colour", Body::empty())
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let stats = s.get("/api/stats").await;
    assert_eq!(stats["profiles"], 2);
    assert_eq!(stats["merges"], 0);
}
