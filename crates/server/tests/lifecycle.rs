//! Definitions that live, through the public API: a `PUT` makes a version (checked,
//! kept with who made it, when and the diff; dry run first), pause and resume, `DELETE`
//! retires; the config file's stay read-only.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use unavoce_projections::SegmentDefinition;

/// Asks until `check` holds (background work acts a moment after the events).
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(found) = check().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} never happened");
}

async fn size_becomes(s: &TestServer, segment: &str, size: u64) {
    eventually(&format!("{segment} of {size}"), async || {
        (s.get(&format!("/api/segments/{segment}")).await["size"] == size).then_some(())
    })
    .await;
}

fn person(user: &str, city: &str) -> Value {
    json!({"type": "identify", "userId": user, "traits": {"city": city}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segment_is_edited_after_a_dry_run_then_paused_resumed_and_retired() {
    let s = server().await;
    s.send_batch(vec![
        person("giulia", "Roma"),
        person("marco", "Milano"),
        person("anna", "Roma"),
    ])
    .await;
    let defined = s
        .admin_json(
            "POST",
            "/api/segments",
            json!({"name": "romans", "expression": "traits.city == 'Roma'"}),
        )
        .await;
    assert_eq!(defined.status, StatusCode::CREATED, "{}", defined.json);
    assert_eq!(defined.json["version"], 1);
    assert_eq!(defined.json["status"], "active");
    size_becomes(&s, "romans", 2).await;
    let marco = s.profile_of("marco").await;

    // A dry run tells who would enter and leave, and changes nothing.
    let edit = json!({"name": "romans", "expression": "traits.city == 'Milano'",
        "description": "now the Milanese"});
    let dry = s
        .admin_json("PUT", "/api/segments/romans?dry_run=true", edit.clone())
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.json);
    assert_eq!(dry.json["dry_run"], true);
    assert_eq!(
        (dry.json["entering"].clone(), dry.json["leaving"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(dry.json["entering_sample"], json!([marco]));
    let paths: Vec<&str> = (dry.json["changes"].as_array().unwrap().iter())
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["description", "expression"]);
    assert_eq!(s.get("/api/segments/romans").await["version"], 1);

    // The edit itself: version 2, everyone evaluated again under it.
    let revised = s
        .admin_json("PUT", "/api/segments/romans", edit.clone())
        .await;
    assert_eq!(revised.status, StatusCode::OK, "{}", revised.json);
    assert_eq!(revised.json["version"], 2);
    assert_eq!(revised.json["changed"], true);
    size_becomes(&s, "romans", 1).await;
    let same = s.admin_json("PUT", "/api/segments/romans", edit).await;
    assert_eq!(
        (same.json["version"].clone(), same.json["changed"].clone()),
        (json!(2), json!(false)),
        "the same definition makes no version"
    );

    // Refused edits say why, and keep the version in force.
    let bad = s
        .admin_json(
            "PUT",
            "/api/segments/romans",
            json!({"name": "romans", "expression": "traits.city =="}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["error"]["code"], "invalid_expression");
    let renamed = s
        .admin_json(
            "PUT",
            "/api/segments/romans",
            json!({"name": "milanese", "expression": "true"}),
        )
        .await;
    assert_eq!(renamed.json["error"]["code"], "name_mismatch");
    let missing = s
        .admin_json(
            "PUT",
            "/api/segments/nobody",
            json!({"name": "nobody", "expression": "true"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Paused: membership held. Another segment over the same people shows the events
    // were evaluated before the paused one is looked at.
    let paused = s
        .admin("POST", "/api/segments/romans/pause", Body::empty())
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.json);
    assert_eq!(
        (paused.json["status"].clone(), paused.json["was"].clone()),
        (json!("paused"), json!("active"))
    );
    let watermark = s
        .admin_json(
            "POST",
            "/api/segments",
            json!({"name": "milanese-too", "expression": "traits.city == 'Milano'"}),
        )
        .await;
    assert_eq!(watermark.status, StatusCode::CREATED);
    size_becomes(&s, "milanese-too", 1).await;
    s.send_batch(vec![person("paolo", "Milano")]).await;
    size_becomes(&s, "milanese-too", 2).await;
    let romans = s.get("/api/segments/romans").await;
    assert_eq!(
        (romans["status"].clone(), romans["size"].clone()),
        (json!("paused"), json!(1))
    );

    // Resumed: evaluated again.
    let resumed = s
        .admin("POST", "/api/segments/romans/resume", Body::empty())
        .await;
    assert_eq!(resumed.json["status"], "active");
    size_becomes(&s, "romans", 2).await;

    // Retired: everyone leaves, and it no longer changes.
    let retired = s
        .admin("DELETE", "/api/segments/romans", Body::empty())
        .await;
    assert_eq!(retired.status, StatusCode::OK, "{}", retired.json);
    assert_eq!(retired.json["status"], "retired");
    size_becomes(&s, "romans", 0).await;
    for (method, path) in [
        ("POST", "/api/segments/romans/resume"),
        ("POST", "/api/segments/romans/pause"),
        ("DELETE", "/api/segments/romans"),
    ] {
        let refused = s.admin(method, path, Body::empty()).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{method} {path}");
        assert_eq!(refused.json["error"]["code"], "retired");
    }
    let edited = s
        .admin_json(
            "PUT",
            "/api/segments/romans",
            json!({"name": "romans", "expression": "true"}),
        )
        .await;
    assert_eq!(edited.json["error"]["code"], "retired");

    // The history: both versions with who made them and the diff, and every status.
    let history = s.get("/api/segments/romans/versions").await;
    assert_eq!(history["origin"], "api");
    assert_eq!(history["status"], "retired");
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["config"]["expression"], "traits.city == 'Roma'");
    assert_eq!(versions[1]["by"], "admin");
    assert!(versions[1]["at"].is_string());
    assert_eq!(versions[1]["changes"][1]["path"], "expression");
    assert_eq!(versions[1]["changes"][1]["before"], "traits.city == 'Roma'");
    let statuses: Vec<&str> = (history["statuses"].as_array().unwrap().iter())
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["paused", "active", "retired"]);

    // All of it survives a restart.
    let s = s.restart().await;
    let romans = s.get("/api/segments/romans").await;
    assert_eq!(
        (romans["status"].clone(), romans["version"].clone()),
        (json!("retired"), json!(2))
    );
    assert_eq!(
        s.get("/api/segments/romans/versions").await["versions"],
        Value::Array(versions.clone())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_files_definitions_are_read_only_through_the_api() {
    let s = server_customised(Arc::new(|blueprint| {
        blueprint.segments.push(SegmentDefinition {
            name: "everyone".into(),
            expression: "true".into(),
            description: None,
        });
        blueprint.messages.push(
            serde_json::from_value(json!({"id": "welcome",
                "email": {"subject": "Welcome", "text": "Hello", "html": "<p>Hello</p>"}}))
            .unwrap(),
        );
    }))
    .await;
    for (method, path, body) in [
        (
            "PUT",
            "/api/segments/everyone",
            json!({"name": "everyone", "expression": "false"}),
        ),
        ("POST", "/api/segments/everyone/pause", Value::Null),
        ("DELETE", "/api/segments/everyone", Value::Null),
        ("POST", "/api/messages/welcome/pause", Value::Null),
        ("DELETE", "/api/messages/welcome", Value::Null),
    ] {
        let answer = s.admin_json(method, path, body).await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{method} {path}: {}",
            answer.json
        );
        assert_eq!(answer.json["error"]["code"], "defined_in_config");
    }
    let history = s.get("/api/segments/everyone/versions").await;
    assert_eq!(
        (history["origin"].clone(), history["versions"].clone()),
        (json!("config"), json!([]))
    );
    let message = s.get("/api/messages/welcome").await;
    assert_eq!(
        (message["origin"].clone(), message["version"].clone()),
        (json!("config"), json!(0))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_keeps_its_versions_and_a_paused_one_is_not_sent() {
    let s = server().await;
    let message = json!({"id": "spring", "email": {"subject": "Spring sale",
        "text": "Hello {{ traits.first_name }}", "html": "<p>Hello</p>"}});
    let defined = s.admin_json("POST", "/api/messages", message.clone()).await;
    assert_eq!(defined.status, StatusCode::CREATED, "{}", defined.json);
    let mut edited = message.clone();
    edited["email"]["subject"] = json!("Spring sale: last days");
    let dry = s
        .admin_json("PUT", "/api/messages/spring?dry_run=true", edited.clone())
        .await;
    assert_eq!(
        dry.json["changes"][0]["path"], "email.subject",
        "{}",
        dry.json
    );
    assert_eq!(s.get("/api/messages/spring").await["version"], 1);
    let revised = s.admin_json("PUT", "/api/messages/spring", edited).await;
    assert_eq!(revised.json["version"], 2, "{}", revised.json);
    let shown = s.get("/api/messages/spring").await;
    assert_eq!(shown["email"]["subject"], "Spring sale: last days");
    let mut broken = message.clone();
    broken["email"]["text"] = json!("Hello {{ traits.first_name ");
    let refused = s.admin_json("PUT", "/api/messages/spring", broken).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json["error"]["code"], "invalid_message");

    // A paused message is not sent: a broadcast of it is refused; resumed, it is sent.
    s.send_batch(vec![
        json!({"type": "identify", "userId": "ada", "traits": {"email": "ada@example.com"}}),
    ])
    .await;
    let broadcast = json!({"message": "spring", "audience": "true", "purpose": "service",
        "channel": "email", "dry_run": true});
    let paused = s
        .admin("POST", "/api/messages/spring/pause", Body::empty())
        .await;
    assert_eq!(paused.json["status"], "paused");
    let refused = s
        .admin_json("POST", "/api/broadcasts", broadcast.clone())
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.json);
    assert_eq!(refused.json["error"]["code"], "message_not_active");
    let resumed = s
        .admin("POST", "/api/messages/spring/resume", Body::empty())
        .await;
    assert_eq!(resumed.json["status"], "active");
    let sent = s.admin_json("POST", "/api/broadcasts", broadcast).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.json);
    assert_eq!(sent.json["audience"], 1);
    let again = s
        .admin("POST", "/api/messages/spring/resume", Body::empty())
        .await;
    assert_eq!(
        (again.status, again.json["was"].clone()),
        (StatusCode::OK, json!("active")),
        "resuming an active one changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_subscription_raises_nothing_until_resumed() {
    let s = server_customised(Arc::new(|b| {
        b.delivery.webhooks = [(
            "care-desk".to_string(),
            unavoce_delivery::config::WebhookConfig {
                // Nothing listens: the insight's decision is what this test reads.
                url: "http://127.0.0.1:9/insights".into(),
                secret: unavoce_delivery::config::Credential {
                    value: Some("whsec-care".into()),
                    env: None,
                },
                pace: Default::default(),
            },
        )]
        .into();
    }))
    .await;
    for name in ["churn-a", "churn-b"] {
        let defined = s
            .admin_json(
                "POST",
                "/api/subscriptions",
                json!({"name": name, "department": "retention",
                    "when": "event.name == 'Cancelled'", "webhook": "care-desk"}),
            )
            .await;
        assert_eq!(defined.status, StatusCode::CREATED, "{}", defined.json);
    }
    let paused = s
        .admin("POST", "/api/subscriptions/churn-a/pause", Body::empty())
        .await;
    assert_eq!(paused.json["status"], "paused", "{}", paused.json);
    let insights = async |subscription: &str| {
        let all = s.get("/api/decisions?limit=1000").await;
        (all["decisions"].as_array().unwrap().iter())
            .filter(|d| d["message"] == subscription)
            .count()
    };
    let cancel = |user: &str| vec![json!({"type": "track", "userId": user, "event": "Cancelled"})];
    s.send_batch(cancel("ada")).await;
    // churn-b raised its insight: the event was read.
    eventually("churn-b's insight", async || {
        (insights("churn-b").await == 1).then_some(())
    })
    .await;
    assert_eq!(insights("churn-a").await, 0, "paused");

    s.admin("POST", "/api/subscriptions/churn-a/resume", Body::empty())
        .await;
    s.send_batch(cancel("bruno")).await;
    eventually("churn-a's insight", async || {
        (insights("churn-a").await == 1).then_some(())
    })
    .await;
    let listed = s.get("/api/subscriptions").await;
    assert_eq!(listed["subscriptions"][0]["status"], "active");
    let history = s.get("/api/subscriptions/churn-a/versions").await;
    assert_eq!(history["statuses"][0]["status"], "paused");
    assert_eq!(history["statuses"][1]["status"], "active");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_journey_takes_nobody_in_and_a_retired_one_lets_its_runs_finish() {
    let s = server().await;
    for name in ["welcome-a", "welcome-b"] {
        let answer = s
            .admin_json(
                "POST",
                "/api/journeys",
                json!({"name": name, "trigger": {"event": "Signed Up"},
                    "steps": [{"type": "wait", "duration": "1h"},
                        {"type": "send", "message": "welcome", "purpose": "service",
                            "channel": "email"}]}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    }
    let sign_up = |user: &str| {
        vec![
            json!({"type": "identify", "userId": user, "traits": {"email": format!("{user}@example.com")}}),
            json!({"type": "track", "userId": user, "event": "Signed Up"}),
        ]
    };
    s.send_batch(sign_up("first")).await;
    let entered = async |journey: &str, n: u64| {
        eventually(&format!("{n} in {journey}"), async || {
            (s.get(&format!("/api/journeys/{journey}")).await["entered"] == n).then_some(())
        })
        .await
    };
    entered("welcome-a", 1).await;
    entered("welcome-b", 1).await;

    let paused = s
        .admin("POST", "/api/journeys/welcome-a/pause", Body::empty())
        .await;
    assert_eq!(paused.json["status"], "paused", "{}", paused.json);
    s.send_batch(sign_up("second")).await;
    // welcome-b took the second person in: the event was handled.
    entered("welcome-b", 2).await;
    let a = s.get("/api/journeys/welcome-a").await;
    assert_eq!(
        (a["status"].clone(), a["entered"].clone()),
        (json!("paused"), json!(1))
    );

    s.admin("POST", "/api/journeys/welcome-a/resume", Body::empty())
        .await;
    s.send_batch(sign_up("third")).await;
    entered("welcome-a", 2).await;

    // Retired: nobody new, the runs in it go on.
    let retired = s
        .admin("DELETE", "/api/journeys/welcome-a", Body::empty())
        .await;
    assert_eq!(retired.json["status"], "retired", "{}", retired.json);
    s.send_batch(sign_up("fourth")).await;
    entered("welcome-b", 4).await;
    let a = s.get("/api/journeys/welcome-a").await;
    assert_eq!(
        (a["entered"].clone(), a["active"].clone()),
        (json!(2), json!(2))
    );
    let history = s.get("/api/journeys/welcome-a/versions").await;
    let statuses: Vec<&str> = (history["statuses"].as_array().unwrap().iter())
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["paused", "active", "retired"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journeys_new_version_moves_its_runs_by_a_checked_step_mapping_or_exits_them() {
    let s = server().await;
    let version = |wait: &str, wait_name: &str| {
        json!({"name": "trial", "trigger": {"event": "Trial Started"},
            "steps": [{"type": "wait", "duration": wait, "name": wait_name},
                {"type": "send", "message": "welcome", "purpose": "service",
                    "channel": "email", "name": "hello"}]})
    };
    let defined = s
        .admin_json("POST", "/api/journeys", version("1h", "cool-off"))
        .await;
    assert_eq!(defined.status, StatusCode::CREATED, "{}", defined.json);
    let mut batch = Vec::new();
    for user in ["ada", "bruno"] {
        batch.push(json!({"type": "identify", "userId": user,
            "traits": {"email": format!("{user}@example.com")}}));
        batch.push(json!({"type": "track", "userId": user, "event": "Trial Started"}));
    }
    s.send_batch(batch).await;
    eventually("both runs", async || {
        (s.get("/api/journeys/trial").await["in_step"]["cool-off"] == 2).then_some(())
    })
    .await;

    // A mapping that leaves a step with runs out is refused, naming the step.
    let unmapped = s
        .admin_json(
            "PUT",
            "/api/journeys/trial",
            json!({"definition": version("2h", "pause"), "runs": {"move": {}}}),
        )
        .await;
    assert_eq!(unmapped.status, StatusCode::BAD_REQUEST);
    assert_eq!(unmapped.json["error"]["code"], "invalid_step_mapping");
    assert!(
        unmapped.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cool-off")
    );
    let nowhere = s
        .admin_json(
            "PUT",
            "/api/journeys/trial",
            json!({"definition": version("2h", "pause"),
                "runs": {"move": {"cool-off": "nowhere"}}}),
        )
        .await;
    assert_eq!(nowhere.json["error"]["code"], "invalid_step_mapping");

    // The dry run tells which runs would move, and changes nothing.
    let edit = json!({"definition": version("2h", "pause"),
        "runs": {"move": {"cool-off": "pause"}}});
    let dry = s
        .admin_json("PUT", "/api/journeys/trial?dry_run=true", edit.clone())
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.json);
    assert_eq!(dry.json["dry_run"], true);
    assert_eq!(dry.json["version"], Value::Null);
    assert_eq!(dry.json["runs"]["moved"]["cool-off → pause"], 2);
    let paths: Vec<&str> = (dry.json["changes"].as_array().unwrap().iter())
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["steps[0].duration", "steps[0].name"]);
    let stats = s.get("/api/journeys/trial").await;
    assert_eq!(
        (
            stats["version"].clone(),
            stats["in_step"]["cool-off"].clone()
        ),
        (json!(1), json!(2))
    );

    // Moved: both runs wait in the new version's step.
    let moved = s.admin_json("PUT", "/api/journeys/trial", edit).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.json);
    assert_eq!(
        (
            moved.json["version"].clone(),
            moved.json["runs"]["moved"]["cool-off → pause"].clone()
        ),
        (json!(2), json!(2))
    );
    let stats = s.get("/api/journeys/trial").await;
    assert_eq!(
        (
            stats["version"].clone(),
            stats["active"].clone(),
            stats["in_step"]["pause"].clone()
        ),
        (json!(2), json!(2), json!(2))
    );

    // A version whose runs exit.
    let exited = s
        .admin_json(
            "PUT",
            "/api/journeys/trial",
            json!({"definition": version("3h", "pause"), "runs": "exit"}),
        )
        .await;
    assert_eq!(exited.json["runs"]["exited"], 2, "{}", exited.json);
    let stats = s.get("/api/journeys/trial").await;
    assert_eq!(
        (
            stats["active"].clone(),
            stats["exited"].clone(),
            stats["version"].clone()
        ),
        (json!(0), json!(2), json!(3))
    );
    let runs = s.get("/api/journeys/trial/runs").await;
    assert!(
        (runs["runs"].as_array().unwrap().iter()).all(|r| r["exit_reason"] == "revised"),
        "{runs}"
    );
    // And all of it stays after a restart.
    let s = s.restart().await;
    let stats = s.get("/api/journeys/trial").await;
    assert_eq!(
        (stats["exited"].clone(), stats["version"].clone()),
        (json!(2), json!(3))
    );
    assert_eq!(
        s.get("/api/journeys/trial/versions").await["versions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journeys_runs_left_to_finish_keep_the_version_they_started() {
    let s = server().await;
    let version = |wait_name: &str| {
        json!({"name": "trial", "trigger": {"event": "Trial Started"},
            "steps": [{"type": "wait", "duration": "1h", "name": wait_name},
                {"type": "send", "message": "welcome", "purpose": "service",
                    "channel": "email", "name": "hello"}]})
    };
    let defined = s
        .admin_json("POST", "/api/journeys", version("cool-off"))
        .await;
    assert_eq!(defined.status, StatusCode::CREATED, "{}", defined.json);
    let trial = |user: &str| {
        vec![
            json!({"type": "identify", "userId": user,
                "traits": {"email": format!("{user}@example.com")}}),
            json!({"type": "track", "userId": user, "event": "Trial Started"}),
        ]
    };
    s.send_batch(trial("ada")).await;
    eventually("ada's run", async || {
        (s.get("/api/journeys/trial").await["in_step"]["cool-off"] == 1).then_some(())
    })
    .await;

    let edit = json!({"definition": version("linger"), "runs": "finish"});
    let dry = s
        .admin_json("PUT", "/api/journeys/trial?dry_run=true", edit.clone())
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.json);
    assert_eq!(
        (
            dry.json["runs"]["finishing"].clone(),
            dry.json["runs"]["exited"].clone()
        ),
        (json!(1), json!(0))
    );
    let made = s.admin_json("PUT", "/api/journeys/trial", edit).await;
    assert_eq!(
        (
            made.json["version"].clone(),
            made.json["runs"]["finishing"].clone()
        ),
        (json!(2), json!(1)),
        "{}",
        made.json
    );
    s.send_batch(trial("bruno")).await;
    let stats = eventually("bruno's run", async || {
        let stats = s.get("/api/journeys/trial").await;
        (stats["entered"] == 2).then_some(stats)
    })
    .await;
    // Ada waits in her version's step, Bruno in the new one's.
    assert_eq!(
        (
            stats["version"].clone(),
            stats["in_step"]["cool-off"].clone(),
            stats["in_step"]["linger"].clone()
        ),
        (json!(2), json!(1), json!(1))
    );
    let ada = s.profile_of("ada").await;
    let card = s.get(&format!("/api/profiles/{ada}/context")).await;
    assert_eq!(
        card["active_journeys"][0]["step_name"], "cool-off",
        "{card}"
    );

    // Kept across a restart.
    let s = s.restart().await;
    let runs = s.get("/api/journeys/trial/runs").await;
    let mut versions: Vec<u64> = (runs["runs"].as_array().unwrap().iter())
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    versions.sort();
    assert_eq!(versions, [1, 2], "{runs}");
}
