//! Journeys through the public API: the seeds' mortgage story, durable waits across a
//! restart, waits for an event, branches, profile updates, notifications and the
//! control group.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use unavoce_testkit::daytime_zone;

async fn define(server: &TestServer, journey: Value) {
    let answer = server.admin_json("POST", "/api/journeys", journey).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
}

async fn decisions_of(server: &TestServer, profile: &str) -> Vec<Value> {
    server
        .get(&format!("/api/decisions?profile_id={profile}"))
        .await["decisions"]
        .as_array()
        .unwrap()
        .clone()
}

/// Asks until `check` holds (the runner works a moment after the events).
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(found) = check().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} never happened");
}

fn customer(user: &str) -> Vec<Value> {
    vec![
        json!({"type": "identify", "userId": user, "traits": {"email": format!("{user}@example.com")}}),
        json!({"type": "track", "userId": user, "event": "Consent Given",
            "properties": {"purpose": "promotional"}}),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_loan_offer_waits_while_the_mortgage_case_is_open_and_proceeds_once_it_closes() {
    let s = server().await;
    let mut batch = customer("mario");
    batch.extend(customer("lucia"));
    // Mario asks his branch to renegotiate his mortgage: a case is opened.
    batch.push(
        json!({"type": "track", "userId": "mario", "event": "Case Opened",
        "properties": {"case_id": "M-77", "subject": "renegotiate mortgage"},
        "context": {"touchpoint": "branch-milan", "channel": "store"}}),
    );
    s.send_batch(batch).await;
    define(
        &s,
        json!({"name": "loan-offer", "trigger": {"event": "Mortgage Simulated"},
            "goal": {"event": "Loan Requested", "within": "30d"},
            "steps": [{"type": "send", "message": "loan-offer", "purpose": "promotional",
                "channel": "email"}]}),
    )
    .await;
    s.send_batch(
        ["mario", "lucia"]
            .iter()
            .map(|u| json!({"type": "track", "userId": u, "event": "Mortgage Simulated"}))
            .collect(),
    )
    .await;
    let (mario, lucia) = (s.profile_of("mario").await, s.profile_of("lucia").await);

    let lucias = eventually("Lucia's offer", async || {
        let d = decisions_of(&s, &lucia).await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(lucias[0]["journey"], "loan-offer");
    assert!(["send", "hold"].contains(&lucias[0]["outcome"].as_str().unwrap()));
    let marios = eventually("Mario's decision", async || {
        let d = decisions_of(&s, &mario).await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(marios.len(), 1);
    assert_eq!(marios[0]["outcome"], "suppress");
    assert_eq!(marios[0]["reasons"][0]["code"], "suppressed");
    assert!(
        marios[0]["reasons"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("open case")
    );
    // His other news does not repeat the suppression in the log.
    s.send_batch(vec![
        json!({"type": "page", "userId": "mario", "name": "Home"}),
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(decisions_of(&s, &mario).await.len(), 1);

    // The case is resolved: the offer proceeds.
    s.send_batch(vec![
        json!({"type": "track", "userId": "mario", "event": "Case Resolved",
            "properties": {"case_id": "M-77"}}),
    ])
    .await;
    let marios = eventually("Mario's offer after the case closed", async || {
        let d = decisions_of(&s, &mario).await;
        (d.len() == 2).then_some(d)
    })
    .await;
    assert!(["send", "hold"].contains(&marios[1]["outcome"].as_str().unwrap()));

    // Lucia asks for the loan: a conversion for the treatment group.
    s.send_batch(vec![
        json!({"type": "track", "userId": "lucia", "event": "Loan Requested"}),
    ])
    .await;
    let stats = eventually("the conversion", async || {
        let stats = s.get("/api/journeys/loan-offer").await;
        (stats["treatment"]["converted"] == 1).then_some(stats)
    })
    .await;
    assert_eq!(stats["entered"], 2);
    assert_eq!(stats["completed"], 2);
    assert_eq!(stats["treatment"]["conversion_rate"], 0.5);
    assert_eq!(stats["control"]["entered"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_customer_resumes_at_the_right_step_after_a_restart() {
    let s = server().await;
    s.send_batch(customer("giulia")).await;
    define(
        &s,
        json!({"name": "trial-ending", "trigger": {"event": "Trial Started"},
            "steps": [{"type": "wait", "name": "two-seconds", "duration": "2s"},
                {"type": "send", "message": "trial-ending", "purpose": "service", "channel": "email"}]}),
    )
    .await;
    s.send_batch(vec![
        json!({"type": "track", "userId": "giulia", "event": "Trial Started"}),
    ])
    .await;
    let giulia = s.profile_of("giulia").await;
    let run = eventually("the wait", async || {
        let runs = s.get("/api/journeys/trial-ending/runs").await;
        runs["runs"][0]["wake_at"]
            .as_str()
            .map(|_| runs["runs"][0].clone())
    })
    .await;
    assert_eq!(run["profile_id"], giulia);
    assert_eq!(run["step"], 0);
    let stats = s.get("/api/journeys/trial-ending").await;
    assert_eq!(stats["in_step"]["two-seconds"], 1);

    // The server stops before the wait ends and starts again.
    let s = s.restart().await;
    assert!(decisions_of(&s, &giulia).await.is_empty());
    let decided = eventually("the message after the wait", async || {
        let d = decisions_of(&s, &giulia).await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["journey"], "trial-ending");
    let stats = s.get("/api/journeys/trial-ending").await;
    assert_eq!(
        (stats["active"].clone(), stats["completed"].clone()),
        (json!(0), json!(1))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cart_reminder_waits_for_the_order_branches_updates_and_notifies() {
    let s = server().await;
    let mut batch = customer("anna");
    batch.extend(customer("paolo"));
    s.send_batch(batch).await;
    define(
        &s,
        json!({"name": "cart-recovery", "trigger": {"event": "Cart Abandoned"},
            "exit_when": "traits.do_not_disturb == true",
            "steps": [
                {"type": "wait", "until_event": "Order Completed", "timeout": "2s"},
                {"type": "branch", "when": "computed.orders_90d > 0", "then": "exit"},
                {"type": "send", "message": "cart-reminder", "purpose": "service", "channel": "email"},
                {"type": "update_profile", "traits": {"cart_reminded": true}},
                {"type": "notify", "department": "sales", "message": "cart left twice"}]}),
    )
    .await;
    s.send_batch(
        ["anna", "paolo"]
            .iter()
            .map(|u| json!({"type": "track", "userId": u, "event": "Cart Abandoned"}))
            .collect(),
    )
    .await;
    // Anna orders within the wait: she leaves at the branch, untouched.
    s.send_batch(vec![
        json!({"type": "track", "userId": "anna", "event": "Order Completed",
            "properties": {"revenue": 40}}),
    ])
    .await;
    let paolo = s.profile_of("paolo").await;
    let anna = s.profile_of("anna").await;
    let card = eventually("Paolo's reminder and profile update", async || {
        let card = s.get(&format!("/api/profiles/{paolo}/context")).await;
        (card["traits"]["cart_reminded"] == true).then_some(card)
    })
    .await;
    assert_eq!(card["traits"]["cart_reminded"], true);
    let decided = decisions_of(&s, &paolo).await;
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["message"], "cart-reminder");
    let timeline = s.get(&format!("/api/profiles/{paolo}/timeline")).await;
    let notified = timeline["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Department Notified")
        .expect("the notification is on the timeline");
    assert_eq!(notified["properties"]["department"], "sales");
    assert!(decisions_of(&s, &anna).await.is_empty());
    let stats = s.get("/api/journeys/cart-recovery").await;
    assert_eq!(
        (stats["exited"].clone(), stats["completed"].clone()),
        (json!(1), json!(1))
    );
    let runs = s
        .get(&format!(
            "/api/journeys/cart-recovery/runs?profile_id={anna}"
        ))
        .await;
    assert_eq!(runs["runs"][0]["exit_reason"], "branch step-2");
    // Text no profile id is stored as (padded, a name) finds no run.
    for other in [anna.replacen("p-", "p-0", 1), "anna".to_string()] {
        let runs = s
            .get(&format!(
                "/api/journeys/cart-recovery/runs?profile_id={other}"
            ))
            .await;
        assert_eq!(runs, json!({"runs": [], "next_cursor": null}));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_group_goes_through_the_journey_uncontacted() {
    let s = server().await;
    define(
        &s,
        json!({"name": "welcome", "trigger": {"event": "Signed Up"}, "control_percent": 30,
            "goal": {"event": "Order Completed", "within": "7d"},
            "steps": [{"type": "send", "message": "welcome", "purpose": "service", "channel": "email"}]}),
    )
    .await;
    let mut batch = Vec::new();
    for i in 0..200 {
        let user = format!("user-{i}");
        batch.push(json!({"type": "identify", "userId": user,
            "traits": {"email": format!("{user}@example.com")}}));
        batch.push(json!({"type": "track", "userId": user, "event": "Signed Up"}));
        if i % 4 == 0 {
            batch.push(json!({"type": "track", "userId": user, "event": "Order Completed"}));
        }
    }
    s.send_batch(batch).await;
    let stats = eventually("everyone's run", async || {
        let stats = s.get("/api/journeys/welcome").await;
        (stats["entered"] == 200).then_some(stats)
    })
    .await;
    let control = stats["control"]["entered"].as_u64().unwrap();
    assert!(
        (35..=85).contains(&control),
        "{control} of 200 held out for 30 %"
    );
    assert_eq!(
        stats["treatment"]["entered"].as_u64().unwrap() + control,
        200
    );
    // Every treatment person got a decision; nobody in the control group did.
    let all = s.get("/api/decisions?limit=1000").await;
    let decided = all["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["journey"] == "welcome")
        .count() as u64;
    assert_eq!(decided, 200 - control);
    // Conversions are counted in both groups alike.
    let converted = stats["treatment"]["converted"].as_u64().unwrap()
        + stats["control"]["converted"].as_u64().unwrap();
    assert_eq!(converted, 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_journey_is_refused_at_definition_with_the_reason() {
    let s = server().await;
    let answer = s
        .admin_json(
            "POST",
            "/api/journeys",
            json!({"name": "j", "trigger": {"event": "E"},
                "steps": [{"type": "branch", "when": "open_case > 0", "then": "exit"}]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["error"]["code"], "invalid_journey");
    let message = answer.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"open_case\""), "{message}");
    let answer = s
        .admin_json(
            "POST",
            "/api/journeys",
            json!({"name": "j", "trigger": {"event": "E"}, "steps": [{"type": "jump"}]}),
        )
        .await;
    assert_eq!(answer.json["error"]["code"], "invalid_body");
    let answer = s
        .admin("GET", "/api/journeys/none", axum::body::Body::empty())
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // A name the API routes under /api/journeys/ for reports could not be reached.
    for word in ["paths", "funnel", "attribution", "dry-run"] {
        let answer = s
            .admin_json(
                "POST",
                "/api/journeys",
                json!({"name": word, "trigger": {"event": "E"},
                    "steps": [{"type": "wait", "duration": "1d"}]}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{word}");
        let message = answer.json["error"]["message"].as_str().unwrap();
        assert!(message.contains("endpoint"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_shows_who_would_get_what_and_who_would_be_suppressed_recording_nothing() {
    let s = server().await;
    let mut batch = customer("mario");
    batch.extend(customer("lucia"));
    batch.push(
        json!({"type": "identify", "userId": "anna", "traits": {"email": "anna@example.com"}}),
    );
    batch.push(
        json!({"type": "track", "userId": "mario", "event": "Case Opened",
        "properties": {"case_id": "M-1"}}),
    );
    s.send_batch(batch).await;
    let proposed = json!({"name": "loan-offer", "trigger": {"event": "Mortgage Simulated",
            "when": "consents.promotional"},
        "steps": [{"type": "wait", "duration": "1d"},
            {"type": "send", "name": "offer", "message": "loan-offer", "purpose": "promotional",
                "channel": "email"}]});
    let answer = s
        .admin_json("POST", "/api/journeys/dry-run?list_limit=10", proposed)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let report = answer.json;
    assert_eq!(report["evaluated"], 3);
    assert_eq!(
        report["entered"], 2,
        "Anna gave no consent: the condition leaves her out"
    );
    assert_eq!(report["ends"]["completed"], 1);
    assert_eq!(report["ends"]["suppressed at offer"], 1);
    assert_eq!(report["reasons"]["suppressed"], 1);
    let mario = s.profile_of("mario").await;
    let lucia = s.profile_of("lucia").await;
    let run_of = |who: &str| {
        report["people"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["profile_id"] == who)
            .unwrap()
            .clone()
    };
    let marios = run_of(&mario);
    assert_eq!(marios["messages"][0]["outcome"], "suppress");
    let lucias = run_of(&lucia);
    assert_eq!(lucias["messages"][0]["channel"], "email");
    let at: jiff::Timestamp = lucias["messages"][0]["send_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        at >= jiff::Timestamp::now() + jiff::SignedDuration::from_hours(23),
        "after the day's wait: {at}"
    );
    // Nothing was recorded, and the journey does not exist.
    let all = s.get("/api/decisions").await;
    assert!(all["decisions"].as_array().unwrap().is_empty());
    assert_eq!(s.get("/api/journeys").await["journeys"], json!([]));

    // A defined journey that starts on entering a segment: its members are simulated.
    let answer = s
        .admin_json(
            "POST",
            "/api/segments",
            json!({"name": "promotable", "expression": "consents.promotional"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    eventually("the segment's members", async || {
        (s.get("/api/segments/promotable").await["size"] == 2).then_some(())
    })
    .await;
    define(
        &s,
        json!({"name": "offers", "trigger": {"segment": "promotable"},
            "steps": [{"type": "send", "message": "m", "purpose": "promotional", "channel": "email"}]}),
    )
    .await;
    let answer = s
        .admin_json("POST", "/api/journeys/offers/dry-run", json!({}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["entered"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_falls_back_to_the_next_channel_when_it_bounces_or_goes_unread() {
    let s = server().await;
    s.send_batch(vec![json!({"type": "identify", "userId": "carla",
        "traits": {"email": "carla@example.com", "phone": "+39 333 123 4567",
            "timezone": daytime_zone()}})])
        .await;
    define(
        &s,
        json!({"name": "bill-due", "trigger": {"event": "Bill Issued"},
            "steps": [{"type": "send", "message": "bill-due", "purpose": "service",
                "channel": "auto", "fallback_after": "2s"}]}),
    )
    .await;
    s.send_batch(vec![
        json!({"type": "track", "userId": "carla", "event": "Bill Issued"}),
    ])
    .await;
    let carla = s.profile_of("carla").await;
    let channels = async |n: usize| {
        eventually(&format!("{n} decisions"), async || {
            let d = decisions_of(&s, &carla).await;
            (d.len() >= n).then(|| {
                d.iter()
                    .map(|d| {
                        (
                            d["channel"].as_str().unwrap().to_string(),
                            d["outcome"].clone(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await
    };
    // The cheapest channel she can be reached on first.
    assert_eq!(channels(1).await, [("email".to_string(), json!("send"))]);
    // The e-mail bounces: WhatsApp at once.
    s.send_batch(vec![
        json!({"type": "track", "userId": "carla", "event": "Email Bounced"}),
    ])
    .await;
    let after_bounce = channels(2).await;
    assert_eq!(after_bounce[1].0, "whatsapp");
    // Not read within 2 seconds: RCS.
    let after_silence = channels(3).await;
    assert_eq!(after_silence[2].0, "rcs");
    // Read on RCS: the journey goes on (and here ends).
    s.send_batch(vec![
        json!({"type": "track", "userId": "carla", "event": "RCS Read"}),
    ])
    .await;
    let stats = eventually("the journey's end", async || {
        let stats = s.get("/api/journeys/bill-due").await;
        (stats["completed"] == 1).then_some(stats)
    })
    .await;
    assert_eq!(stats["active"], 0);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        decisions_of(&s, &carla).await.len(),
        3,
        "no more fallbacks once read"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_context_card_shows_each_journey_the_person_is_in_and_what_comes_next() {
    let s = server().await;
    s.send_batch(customer("nora")).await;
    define(
        &s,
        json!({"name": "onboarding", "trigger": {"event": "Signed Up"},
            "steps": [{"type": "wait", "name": "settle-in", "duration": "2d"},
                {"type": "send", "message": "welcome", "purpose": "service", "channel": "email"}]}),
    )
    .await;
    define(
        &s,
        json!({"name": "first-order", "trigger": {"event": "Signed Up"},
            "steps": [{"type": "wait", "until_event": "Order Completed", "timeout": "7d"},
                {"type": "update_profile", "traits": {"ordered": true}}]}),
    )
    .await;
    let before = jiff::Timestamp::now();
    s.send_batch(vec![
        json!({"type": "track", "userId": "nora", "event": "Signed Up"}),
    ])
    .await;
    let nora = s.profile_of("nora").await;
    let card = eventually("both journeys on the card", async || {
        let card = s.get(&format!("/api/profiles/{nora}/context")).await;
        (card["active_journeys"].as_array().unwrap().len() == 2).then_some(card)
    })
    .await;
    let journeys = card["active_journeys"].as_array().unwrap();
    let by_name = |name: &str| {
        journeys
            .iter()
            .find(|j| j["journey"] == name)
            .unwrap_or_else(|| panic!("{name} in {journeys:?}"))
    };
    let onboarding = by_name("onboarding");
    assert_eq!(onboarding["step"], 0);
    assert_eq!(onboarding["step_name"], "settle-in");
    assert_eq!(onboarding["next"], "waiting 2d, then the next step");
    let wake: jiff::Timestamp = onboarding["next_at"].as_str().unwrap().parse().unwrap();
    let two_days = jiff::SignedDuration::from_hours(48);
    assert!(
        wake >= before + two_days && wake <= jiff::Timestamp::now() + two_days,
        "{wake}"
    );
    assert!(onboarding["since"].as_str().is_some() && onboarding["control"] == false);
    let first_order = by_name("first-order");
    assert_eq!(
        first_order["next"],
        "waiting for \"Order Completed\", then the next step"
    );
    // Once the order comes, that journey is done and leaves the card.
    s.send_batch(vec![
        json!({"type": "track", "userId": "nora", "event": "Order Completed"}),
    ])
    .await;
    let card = eventually("the finished journey off the card", async || {
        let card = s.get(&format!("/api/profiles/{nora}/context")).await;
        (card["active_journeys"].as_array().unwrap().len() == 1).then_some(card)
    })
    .await;
    assert_eq!(card["active_journeys"][0]["journey"], "onboarding");
}
