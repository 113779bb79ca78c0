//! Retention: expired events leave the log in small transactions — all but their
//! identity evidence, so nobody is split and no profile id changes — and the projections
//! equal a fresh replay of what is left; consent statements stay.

use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use unavoce_core::retention::{RetentionConfig, RetentionRules};

mod common;

use common::*;

fn days_ago(days: i64) -> String {
    (Timestamp::now() - SignedDuration::from_hours(24 * days)).to_string()
}

/// Global 365 days, page views 30, the tills (`pos`) 90.
fn with_retention() -> Customise {
    Arc::new(|b| {
        b.retention = Arc::new(
            RetentionRules::new(RetentionConfig {
                retention_days: Some(365),
                retention_days_by_event: [("Page Viewed".to_string(), 30)].into(),
                retention_days_by_source: [("pos".to_string(), 90)].into(),
                retention_check_hours: None,
            })
            .unwrap(),
        );
    })
}

/// Who is who: each profile's id, identifiers and merges.
async fn identities(s: &TestServer) -> Vec<Value> {
    let listed = s.get("/api/profiles").await;
    let mut identities = Vec::new();
    for profile in listed["profiles"].as_array().unwrap() {
        let id = profile["id"].as_str().unwrap();
        let full = s.get(&format!("/api/profiles/{id}")).await;
        identities.push(json!([full["id"], full["identifiers"], full["merges"]]));
    }
    identities
}

/// Everything the projections answer that a retention pass may change.
async fn projections(s: &TestServer, ada: &str) -> Vec<Value> {
    vec![
        s.get("/api/stats").await,
        s.get("/api/profiles").await,
        s.get(&format!("/api/profiles/{ada}")).await,
        s.get(&format!("/api/profiles/{ada}/timeline")).await,
        s.get(&format!("/api/profiles/{ada}/consents")).await,
        s.get("/api/kpis/channels").await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_events_go_the_projections_follow_and_consents_stay() {
    let s = server_customised(with_retention()).await;
    s.send_batch(vec![
        // Ada: an e-mail she gave two years ago, a consent three years ago.
        json!({"type": "identify", "userId": "ada", "timestamp": days_ago(730),
            "traits": {"email": "ada.old@example.com", "city": "Torino"}}),
        json!({"type": "track", "userId": "ada", "event": "Consent Given", "timestamp": days_ago(1095),
            "properties": {"purpose": "promotional", "channel": "email"}}),
        json!({"type": "identify", "userId": "ada", "timestamp": days_ago(10),
            "traits": {"first_name": "Ada"}}),
        json!({"type": "page", "userId": "ada", "name": "Page Viewed", "timestamp": days_ago(40)}),
        json!({"type": "track", "userId": "ada", "event": "Page Viewed", "timestamp": days_ago(5)}),
        // Grace: a browser she used two years ago, linked then.
        json!({"type": "track", "anonymousId": "old-browser", "event": "Product Viewed",
            "timestamp": days_ago(800)}),
        json!({"type": "identify", "userId": "grace", "anonymousId": "old-browser",
            "timestamp": days_ago(800)}),
        json!({"type": "track", "userId": "grace", "event": "Product Viewed", "timestamp": days_ago(3)}),
    ])
    .await;
    // At the tills: one purchase past their 90 days, one within.
    for (days, id) in [(100, "t-old"), (10, "t-new")] {
        let sent = s
            .send(
                axum::http::Request::post("/v1/track")
                    .header("content-type", "application/json")
                    .header("authorization", basic("pos-key-000000000000"))
                    .body(Body::from(
                        json!({"userId": "ada", "event": "Order Completed", "messageId": id,
                            "timestamp": days_ago(days), "properties": {"revenue": 10}})
                        .to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.json);
    }
    let ada = s.profile_of("ada").await;
    assert_eq!(s.stats().await["events"], 10);
    let found = s
        .admin(
            "GET",
            "/api/profiles/lookup?anonymous_id=old-browser",
            Body::empty(),
        )
        .await;
    assert_eq!(found.status, StatusCode::OK);

    let who_is_who = identities(&s).await;
    assert_eq!(who_is_who.len(), 2, "{who_is_who:?}");
    let pass = s.admin("POST", "/api/retention/run", Body::empty()).await;
    assert_eq!(pass.status, StatusCode::OK, "{}", pass.json);
    let pass = &pass.json["pass"];
    assert_eq!(pass["scanned"], 10, "{pass}");
    // Stripped to their identity evidence: Ada's two-year-old identify (user id and
    // e-mail), her 40-day-old page view, her 100-day-old purchase at the tills, Grace's
    // browser's first event and the identify that linked it to her. Never the consent.
    assert_eq!(pass["events"], 0, "{pass}");
    assert_eq!(pass["stripped"], 5, "{pass}");
    assert_eq!(pass["rebuilt"], true, "{pass}");

    assert_eq!(
        identities(&s).await,
        who_is_who,
        "retention never changes who is who"
    );
    let after = projections(&s, &ada).await;
    assert_eq!(after[0]["events"], 10, "{}", after[0]);
    let profile = &after[2];
    assert_eq!(
        profile["id"],
        ada.as_str(),
        "profile ids do not change: {profile}"
    );
    assert_eq!(profile["traits"]["first_name"], "Ada", "{profile}");
    assert!(
        profile["traits"].get("city").is_none() && profile["traits"].get("email").is_none(),
        "what only expired events said is forgotten: {profile}"
    );
    assert!(
        profile["identifiers"]
            .to_string()
            .contains("ada.old@example.com"),
        "who she is stays: {profile}"
    );
    assert_eq!(profile["event_count"], 7, "{profile}");
    let timeline = after[3].to_string();
    assert!(
        !timeline.contains("Torino") && !timeline.contains("revenue\":10,\"t-old"),
        "{timeline}"
    );
    let consents = after[4].to_string();
    assert!(
        consents.contains("promotional") && consents.contains("\"granted\":true"),
        "the consent stays: {consents}"
    );
    let grace = s.profile_of("grace").await;
    let old_browser = s
        .admin(
            "GET",
            "/api/profiles/lookup?anonymous_id=old-browser",
            Body::empty(),
        )
        .await;
    assert_eq!(old_browser.status, StatusCode::OK, "{}", old_browser.json);
    assert_eq!(
        old_browser.json["id"],
        grace.as_str(),
        "Grace is still one person"
    );

    // A second pass finds nothing; the last pass is shown.
    let again = s.admin("POST", "/api/retention/run", Body::empty()).await;
    assert_eq!(again.json["pass"]["events"], 0, "{}", again.json);
    assert_eq!(again.json["pass"]["rebuilt"], false);
    let shown = s.get("/api/retention").await;
    assert_eq!(shown["active"], true, "{shown}");
    assert_eq!(
        shown["rules"]["retention_days_by_source"]["pos"], 90,
        "{shown}"
    );
    assert_eq!(shown["last_pass"]["scanned"], 10, "{shown}");
    let audit = s.get("/api/audit?action=POST%20/api/retention/run").await;
    assert_eq!(audit["records"].as_array().unwrap().len(), 2, "{audit}");

    // What the projections hold is what a fresh replay of the log gives.
    let s = s.restart().await;
    assert_eq!(projections(&s, &ada).await, after);
    // A new event is stored after the removed ones, never in an expired one's place.
    s.send_batch(vec![
        json!({"type": "track", "userId": "ada", "event": "Page Viewed"}),
    ])
    .await;
    assert_eq!(s.stats().await["events"], 11);
}
