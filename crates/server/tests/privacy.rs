//! A person's right of access: everything held about them, exported as JSON Lines.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_everything_about_the_person_and_is_audited() {
    let s = server_customised(Arc::new(|b| {
        b.messages = vec![
            serde_json::from_value(json!({"id": "outage-note",
                "email": {"subject": "Hi {{ first_name }}", "html": "<p>Hi {{ first_name }}</p>",
                    "text": "Hi {{ first_name }}"}}))
            .unwrap(),
        ];
        b.journeys = vec![
            serde_json::from_value(
                json!({"name": "case-care", "trigger": {"event": "Case Opened"},
                "steps": [{"type": "wait", "duration": "1d", "name": "settle"}]}),
            )
            .unwrap(),
        ];
    }))
    .await;
    s.send_batch(vec![
        json!({"type": "identify", "userId": "ada", "traits": {"first_name": "Ada",
            "email": "ada@example.com"}}),
        json!({"type": "track", "anonymousId": "web-1", "event": "Page Viewed"}),
        json!({"type": "identify", "userId": "ada", "anonymousId": "web-1"}),
        json!({"type": "track", "userId": "ada", "event": "Case Opened",
            "properties": {"case_id": "C-1", "subject": "No line"}}),
        json!({"type": "track", "userId": "grace", "event": "Page Viewed"}),
    ])
    .await;
    let profile = s.profile_of("ada").await;
    let segment = s
        .admin_json(
            "POST",
            "/api/segments",
            json!({"name": "open-problem", "expression": "open_cases > 0"}),
        )
        .await;
    assert_eq!(segment.status, StatusCode::CREATED, "{}", segment.json);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s.get("/api/segments/open-problem").await["size"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the segment was not updated"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    while s.get("/api/journeys/case-care").await["entered"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the journey did not take her in"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let sent = s
        .admin_json(
            "POST",
            "/api/broadcasts",
            json!({"message": "outage-note",
            "audience": "true", "purpose": "service", "channel": "email"}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.json);

    let response = s
        .send(
            Request::get(format!("/api/profiles/{profile}/export"))
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.headers[header::CONTENT_TYPE],
        "application/x-ndjson"
    );
    let text = response.json.as_str().unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        *kinds.entry(r["kind"].as_str().unwrap()).or_default() += 1;
    }
    let shown = s.get(&format!("/api/profiles/{profile}")).await;
    assert_eq!(kinds["profile"], 1);
    assert_eq!(kinds["context_card"], 1);
    assert_eq!(kinds["segment"], 1, "{kinds:?}");
    assert_eq!(kinds["decision"], 1, "{kinds:?}");
    assert_eq!(kinds["message"], 1, "{kinds:?}");
    assert_eq!(
        kinds["event"],
        shown["event_count"].as_u64().unwrap() as usize,
        "every event of hers, the anonymous visit included"
    );
    assert_eq!(records[0]["data"], shown, "the profile as the API shows it");
    // The card as an agent sees it, her journeys included.
    let card = records
        .iter()
        .find(|r| r["kind"] == "context_card")
        .unwrap();
    assert_eq!(
        card["data"]["active_journeys"][0]["journey"], "case-care",
        "{card}"
    );
    assert_eq!(
        card["data"]["active_journeys"][0]["step_name"], "settle",
        "{card}"
    );
    let message = records.iter().find(|r| r["kind"] == "message").unwrap();
    assert_eq!(message["data"]["rendered_now"]["subject"], "Hi Ada");
    assert!(!text.contains("grace"), "nobody else's data");
    assert!(text.contains("Page Viewed") && text.contains("C-1"));

    let audit = s
        .get(&format!(
            "/api/audit?profile_id={profile}&action=GET%20/api/profiles/%7Bid%7D/export"
        ))
        .await;
    assert_eq!(audit["records"].as_array().unwrap().len(), 1, "{audit}");
    // As a ZIP archive: one file per kind, the same records.
    let zipped = s
        .app
        .clone()
        .oneshot(
            Request::get(format!("/api/profiles/{profile}/export?format=zip"))
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(zipped.headers()[header::CONTENT_TYPE], "application/zip");
    let bytes = zipped.into_body().collect().await.unwrap().to_bytes();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut names: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "context_card.jsonl",
            "decision.jsonl",
            "event.jsonl",
            "journey_run.jsonl",
            "message.jsonl",
            "profile.jsonl",
            "segment.jsonl"
        ]
    );
    let mut events = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("event.jsonl").unwrap(), &mut events)
        .unwrap();
    assert_eq!(events.lines().count(), kinds["event"]);
    let bad = s
        .admin(
            "GET",
            &format!("/api/profiles/{profile}/export?format=pdf"),
            Body::empty(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let missing = s
        .admin("GET", "/api/profiles/p-999999/export", Body::empty())
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_follows_the_graph_leaves_no_byte_behind_and_keeps_the_person_out() {
    const EMAIL: &str = "zelda.quintessa.0xbeef@example.com";
    const PHONE: &str = "+393339876543";
    const NAME: &str = "Quintessa";
    let s = server_customised(Arc::new(|b| {
        b.policies = daytime_policies();
        b.messages = vec![
            serde_json::from_value(json!({"id": "note",
                "email": {"subject": "Hi {{ first_name }}", "html": "<p>Hi</p>", "text": "Hi"}}))
            .unwrap(),
        ];
    }))
    .await;
    s.send_batch(vec![
        json!({"type": "page", "anonymousId": "zq-browser", "name": "Offers"}),
        json!({"type": "identify", "userId": "zelda-1", "anonymousId": "zq-browser",
            "traits": {"first_name": "Zelda", "last_name": NAME, "email": EMAIL, "phone": PHONE}}),
        json!({"type": "track", "userId": "zelda-1", "event": "Case Opened",
            "properties": {"case_id": "C-9", "subject": "Line down"}}),
        json!({"type": "identify", "userId": "grace-1", "traits": {"email": "grace@example.com"}}),
        json!({"type": "track", "userId": "grace-1", "event": "Order Completed"}),
    ])
    .await;
    // A message about her with no identity: quarantined, with her address in it.
    let quarantined = s
        .track(
            "/v1/identify",
            json!({"traits": {"email": EMAIL}}).to_string(),
        )
        .await;
    assert_eq!(quarantined.status, StatusCode::BAD_REQUEST);
    let profile = s.profile_of("zelda-1").await;
    let sent = s
        .admin_json(
            "POST",
            "/api/broadcasts",
            json!({"message": "note",
            "audience": "true", "purpose": "service", "channel": "email"}),
        )
        .await;
    assert_eq!(sent.json["outcomes"]["send"], 2, "{}", sent.json);

    let receipt = s
        .admin_json("POST", &format!("/api/profiles/{profile}/erase"), json!({}))
        .await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.json);
    let r = &receipt.json;
    assert_eq!(
        r["events"], 3,
        "every event under any of her identifiers: {r}"
    );
    assert_eq!(r["quarantined"], 1, "{r}");
    assert_eq!(r["decisions"], 1, "{r}");
    assert_eq!(r["outbox_entries"], 1, "{r}");
    assert_eq!(
        r["suppressions"].as_array().unwrap().len(),
        4,
        "user id, anonymous id, e-mail, phone: {r}"
    );
    let text = r.to_string();
    assert!(!text.contains(EMAIL) && !text.contains("zelda-1"), "{text}");

    // She is gone; Grace is not; what a replay gives is what is held.
    let gone = s
        .admin("GET", "/api/profiles/lookup?user_id=zelda-1", Body::empty())
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let stats = s.get("/api/stats").await;
    let people = s.get("/api/profiles").await;
    assert_eq!(people["profiles"].as_array().unwrap().len(), 1, "{people}");

    // Nothing new about her is taken in, until an owner lifts the suppression.
    let again = s
        .track(
            "/v1/identify",
            json!({"userId": "new-id", "traits": {"email": EMAIL}}).to_string(),
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json["error"]["code"], "subject_erased",
        "{}",
        again.json
    );

    let s = s.restart().await;
    assert_eq!(
        s.get("/api/stats").await,
        stats,
        "a fresh replay gives the same"
    );
    assert_eq!(s.get("/api/profiles").await, people);
    let still = s
        .track(
            "/v1/identify",
            json!({"userId": "new-id", "traits": {"email": EMAIL}}).to_string(),
        )
        .await;
    assert_eq!(
        still.json["error"]["code"], "subject_erased",
        "the list survives a restart"
    );

    // Not one byte of her in any file of the data folder (or table of the database).
    let files = s.store.stored_bytes().await;
    let log_place = s.store.log_place();
    assert!(files.iter().any(|(name, _)| name == log_place));
    for (name, bytes) in &files {
        for needle in [
            EMAIL,
            PHONE,
            "393339876543",
            NAME,
            "zelda-1",
            "zq-browser",
            "Line down",
        ] {
            assert!(!contains(bytes, needle), "{needle} is still in {name}");
        }
        assert!(
            contains(bytes, "grace") || name != log_place,
            "Grace's data stays in {name}"
        );
    }

    // Lifted: her address is taken in again.
    let hash = receipt.json["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["kind"] == "email")
        .unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let lifted = s
        .admin(
            "DELETE",
            &format!("/api/suppressions/{hash}"),
            Body::empty(),
        )
        .await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT);
    let taken = s
        .track(
            "/v1/identify",
            json!({"userId": "new-id", "traits": {"email": EMAIL}}).to_string(),
        )
        .await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.json);
    let audit = s
        .get(&format!(
            "/api/audit?profile_id={profile}&action=POST%20/api/profiles/%7Bid%7D/erase"
        ))
        .await;
    assert_eq!(audit["records"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasures_in_quick_succession_leave_at_once_and_one_rebuild_agrees() {
    let s = server().await;
    let mut batch = Vec::new();
    for i in 0..30 {
        batch.push(json!({"type": "identify", "userId": format!("u-{i}"),
            "anonymousId": format!("browser-{i}"), "traits": {"email": format!("person{i}@example.com")}}));
        batch.push(
            json!({"type": "track", "anonymousId": format!("browser-{i}"), "event": "Page Viewed"}),
        );
        batch.push(
            json!({"type": "track", "userId": format!("u-{i}"), "event": "Order Completed",
            "properties": {"revenue": i}}),
        );
    }
    s.send_batch(batch).await;
    let mut erased = Vec::new();
    for i in (0..30).step_by(3) {
        let profile = s.profile_of(&format!("u-{i}")).await;
        let receipt = s
            .admin_json("POST", &format!("/api/profiles/{profile}/erase"), json!({}))
            .await;
        assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.json);
        assert_eq!(receipt.json["events"], 3, "{}", receipt.json);
        erased.push(profile);
    }
    // Gone at once, before any rebuild is awaited.
    let at_once = (s.get("/api/stats").await, s.get("/api/profiles").await);
    assert_eq!(
        at_once.1["profiles"].as_array().unwrap().len(),
        20,
        "{}",
        at_once.1
    );
    for profile in &erased {
        let gone = s
            .admin("GET", &format!("/api/profiles/{profile}"), Body::empty())
            .await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{profile}");
    }
    // The rebuild gives the same, reports included, and so does a fresh replay.
    s.rebuilt().await;
    let rebuilt = (s.get("/api/stats").await, s.get("/api/profiles").await);
    assert_eq!(rebuilt, at_once);
    let activity = s.get("/api/activity").await;
    let kpis = s.get("/api/kpis/channels").await;
    let s = s.restart().await;
    let replayed = (s.get("/api/stats").await, s.get("/api/profiles").await);
    assert_eq!(replayed, at_once);
    assert_eq!(s.get("/api/activity").await, activity);
    assert_eq!(s.get("/api/kpis/channels").await, kpis);
}

/// Found in review: the journey runner kept an erased person's runs in memory, so a
/// wait that ended later decided a send for them and wrote their run back.
#[tokio::test(flavor = "multi_thread")]
async fn an_erased_persons_journey_run_never_moves_on_nor_comes_back() {
    let s = server_customised(Arc::new(|b| b.policies = daytime_policies())).await;
    let message = s
        .admin_json(
            "POST",
            "/api/messages",
            json!({"id": "nudge", "email": {"subject": "Your trial", "text": "Hello", "html": "<p>Hello</p>"}}),
        )
        .await;
    assert_eq!(message.status, StatusCode::CREATED, "{}", message.json);
    let journey = s
        .admin_json(
            "POST",
            "/api/journeys",
            json!({"name": "nudge", "trigger": {"event": "Trial Started"},
                "steps": [{"type": "wait", "duration": "2s"},
                    {"type": "send", "message": "nudge", "purpose": "service", "channel": "email"}]}),
        )
        .await;
    assert_eq!(journey.status, StatusCode::CREATED, "{}", journey.json);
    let mut batch = Vec::new();
    for user in ["kept", "erased"] {
        batch.push(json!({"type": "identify", "userId": user,
            "traits": {"email": format!("{user}@example.com")}}));
        batch.push(json!({"type": "track", "userId": user, "event": "Trial Started"}));
    }
    s.send_batch(batch).await;
    let (kept, erased) = (s.profile_of("kept").await, s.profile_of("erased").await);
    // Read whole and filtered here: an erased profile id is no longer a filter.
    let runs_of = async |profile: &str| {
        let all = s.get("/api/journeys/nudge/runs?limit=1000").await;
        (all["runs"].as_array().unwrap().iter())
            .filter(|r| r["profile_id"] == profile)
            .count()
    };
    for _ in 0..200 {
        if runs_of(&kept).await == 1 && runs_of(&erased).await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!((runs_of(&kept).await, runs_of(&erased).await), (1, 1));
    let answer = s
        .admin_json("POST", &format!("/api/profiles/{erased}/erase"), json!({}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // The wait ends for both: the kept person's send is decided (the timer fired) ...
    let decided = async |profile: &str| {
        let all = s.get("/api/decisions?limit=1000").await;
        (all["decisions"].as_array().unwrap().iter())
            .filter(|d| d["profile_id"] == profile)
            .count()
    };
    for _ in 0..400 {
        if decided(&kept).await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(decided(&kept).await, 1, "the kept person's wait ended");
    // ... and nothing of the erased person's came back.
    assert_eq!(decided(&erased).await, 0);
    assert_eq!(runs_of(&erased).await, 0);
    let stats = s.get("/api/journeys/nudge").await;
    assert_eq!(stats["entered"], 1, "{stats}");
}
