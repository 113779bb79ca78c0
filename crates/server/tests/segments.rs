//! Segments through the public API: defined with checked expressions, kept current as
//! events arrive, entering and leaving recorded as events of the person.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

/// Asks for the segment until its size is `size` (the maintenance task records changes
/// a moment after the events that cause them).
async fn wait_for_size(server: &TestServer, segment: &str, size: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = server.get(&format!("/api/segments/{segment}")).await;
        if last["size"] == size {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("segment {segment} did not reach size {size}: {last}");
}

async fn members(server: &TestServer, segment: &str) -> Vec<String> {
    let answer = server
        .get(&format!("/api/segments/{segment}/members"))
        .await;
    answer["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// The names of the segment events on the person's timeline, oldest first.
async fn membership_events(server: &TestServer, profile: &str) -> Vec<String> {
    let timeline = server
        .get(&format!("/api/profiles/{profile}/timeline?limit=500"))
        .await;
    let mut names: Vec<String> = timeline["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Segment "))
        })
        .map(|e| {
            format!(
                "{} {}",
                e["name"].as_str().unwrap(),
                e["properties"]["segment"]
            )
        })
        .collect();
    names.reverse();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn people_enter_and_leave_segments_as_their_events_arrive() {
    let s = server().await;
    s.send_batch(vec![
        json!({"type": "identify", "userId": "giulia", "traits": {"city": "Roma"}}),
        json!({"type": "track", "userId": "giulia", "event": "Consent Given",
                "properties": {"purpose": "promotional"}}),
        json!({"type": "identify", "userId": "marco", "traits": {"city": "Milano"}}),
        json!({"type": "track", "userId": "marco", "event": "Consent Given",
                "properties": {"purpose": "promotional"}}),
        json!({"type": "identify", "userId": "anna", "traits": {"city": "Roma"}}),
    ])
    .await;
    let answer = s
        .admin_json(
            "POST",
            "/api/segments",
            json!({"name": "rome-promotions", "description": "Romans who want offers",
                "expression": "traits.city == 'Roma' && consents.promotional"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let answer = s
        .admin_json(
            "POST",
            "/api/segments",
            json!({"name": "open-problem", "expression": "open_cases > 0"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);

    // Existing people are evaluated when the segment is defined.
    wait_for_size(&s, "rome-promotions", 1).await;
    let (giulia, marco, anna) = (
        s.profile_of("giulia").await,
        s.profile_of("marco").await,
        s.profile_of("anna").await,
    );
    assert_eq!(members(&s, "rome-promotions").await, [giulia.as_str()]);
    assert_eq!(
        membership_events(&s, &giulia).await,
        ["Segment Entered \"rome-promotions\""]
    );

    // Giulia moves to Milan: she leaves. Marco moves to Rome: he enters. Anna consents:
    // she enters. Anna's line goes down: she enters the open-problem segment, and leaves
    // it when the case is resolved.
    s.send_batch(vec![
        json!({"type": "identify", "userId": "giulia", "traits": {"city": "Milano"}}),
        json!({"type": "identify", "userId": "marco", "traits": {"city": "Roma"}}),
        json!({"type": "track", "userId": "anna", "event": "Consent Given",
                "properties": {"purpose": "promotional"}}),
        json!({"type": "track", "userId": "anna", "event": "Case Opened",
                "properties": {"case_id": "C-9"}}),
    ])
    .await;
    wait_for_size(&s, "open-problem", 1).await;
    wait_for_size(&s, "rome-promotions", 2).await;
    let mut expected = vec![marco.clone(), anna.clone()];
    expected.sort_by_key(|p| p[2..].parse::<i64>().unwrap());
    assert_eq!(members(&s, "rome-promotions").await, expected);
    assert_eq!(members(&s, "open-problem").await, [anna.as_str()]);
    assert_eq!(
        membership_events(&s, &giulia).await,
        [
            "Segment Entered \"rome-promotions\"",
            "Segment Exited \"rome-promotions\""
        ]
    );

    s.send_batch(vec![
        json!({"type": "track", "userId": "anna", "event": "Case Resolved",
            "properties": {"case_id": "C-9"}}),
    ])
    .await;
    wait_for_size(&s, "open-problem", 0).await;
    let anna_events = membership_events(&s, &anna).await;
    assert!(
        anna_events.contains(&"Segment Exited \"open-problem\"".to_string()),
        "{anna_events:?}"
    );

    // A segment's own events change nothing: a quiet moment later, nobody has moved
    // and no membership was recorded twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = s.get("/api/segments").await;
    let sizes: Vec<(String, u64)> = listed["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_string(),
                x["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("open-problem".to_string(), 0),
            ("rome-promotions".to_string(), 2)
        ]
    );
    assert_eq!(
        membership_events(&s, &anna).await.len(),
        3,
        "entered twice, exited once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_segment_is_refused_at_definition_with_the_reason() {
    let s = server().await;
    let define = |body: Value| {
        let s = &s;
        async move { s.admin_json("POST", "/api/segments", body).await }
    };
    let answer = define(json!({"name": "x", "expression": "trait.city == 'Roma'"})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["error"]["code"], "invalid_expression");
    let message = answer.json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"trait\"") && message.contains("traits"),
        "{message}"
    );

    let answer = define(json!({"name": "x", "expression": "traits.city =="})).await;
    assert_eq!(answer.json["error"]["code"], "invalid_expression");
    assert!(
        answer.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not parse")
    );
    let answer = define(json!({"name": "no spaces", "expression": "open_cases > 0"})).await;
    assert_eq!(answer.json["error"]["code"], "invalid_name");
    let answer = define(json!({"name": "ok", "expresion": "open_cases > 0"})).await;
    assert_eq!(answer.json["error"]["code"], "invalid_body");

    let answer = define(json!({"name": "ok", "expression": "open_cases > 0"})).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let answer = define(json!({"name": "ok", "expression": "open_cases > 1"})).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let answer = s
        .admin("GET", "/api/segments/nope", axum::body::Body::empty())
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_open_for_more_than_48_hours_enters_the_segment_as_time_passes_with_no_event() {
    let clock = unavoce_projections::clock::ManualClock::new(jiff::Timestamp::now());
    let s = server_customised({
        let clock = clock.clone();
        std::sync::Arc::new(move |b| b.clock = clock.clone())
    })
    .await;
    for (name, expression) in [
        ("open-a-day", "open_case_hours > 24"),
        ("open-two-days", "open_case_hours > 48"),
    ] {
        let answer = s
            .admin_json(
                "POST",
                "/api/segments",
                json!({"name": name, "expression": expression}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    }
    s.send_batch(vec![
        json!({"type": "track", "userId": "anna", "event": "Case Opened",
            "properties": {"case_id": "A-1", "subject": "no line"}}),
        json!({"type": "track", "userId": "bruno", "event": "Case Opened",
            "properties": {"case_id": "B-1", "subject": "bill"}}),
        json!({"type": "track", "userId": "bruno", "event": "Case Resolved",
            "properties": {"case_id": "B-1"}}),
    ])
    .await;
    let anna = s.profile_of("anna").await;
    // A day and an hour later by the clock, with no event in between: the hourly sweep
    // evaluates Anna again (the proof it ran: she enters the one-day segment), and she
    // is not yet in the two-day one, evaluated in the same pass.
    clock.advance(jiff::SignedDuration::from_hours(25));
    wait_for_size(&s, "open-a-day", 1).await;
    assert_eq!(members(&s, "open-a-day").await, [anna.as_str()]);
    assert_eq!(s.get("/api/segments/open-two-days").await["size"], 0);
    // Two days and an hour: she enters that one too; Bruno, whose case was resolved,
    // never does.
    clock.advance(jiff::SignedDuration::from_hours(24));
    wait_for_size(&s, "open-two-days", 1).await;
    assert_eq!(members(&s, "open-two-days").await, [anna.as_str()]);
}
