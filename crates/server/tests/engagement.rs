//! The policy gate through the public API: the seeds' outage story ends in the decision
//! log.

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

async fn post_json(server: &TestServer, path: &str, body: Value) -> Answer {
    server.admin_json("POST", path, body).await
}

async fn decisions_of(server: &TestServer, profile: &str) -> Vec<Value> {
    let answer = server
        .admin(
            "GET",
            &format!("/api/decisions?profile_id={profile}"),
            Body::empty(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    answer.json["decisions"].as_array().unwrap().clone()
}

/// A test server with the offer the promotions send, in every channel's style.
async fn with_offer() -> TestServer {
    let s = server().await;
    let answer = post_json(
        &s,
        "/api/messages",
        json!({"id": "spring-offer",
            "email": {"subject": "Spring offer", "html": "<p>Offer</p>", "text": "Offer"},
            "sms": {"text": "Offer"}, "whatsapp": {"text": "Offer"},
            "push": {"title": "Offer", "body": "Offer"}}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    s
}

fn promotion() -> Value {
    json!({"message": "spring-offer", "audience": "consents.promotional",
        "purpose": "promotional", "channel": "email"})
}

#[tokio::test(flavor = "multi_thread")]
async fn no_promotion_reaches_a_customer_whose_line_is_down_until_the_case_is_resolved() {
    let s = with_offer().await;
    let mut batch = Vec::new();
    for user in ["giulia", "marco", "sara", "luca"] {
        batch.push(json!({"type": "identify", "userId": user,
            "traits": {"email": format!("{user}@example.com")}}));
        batch.push(
            json!({"type": "track", "userId": user, "event": "Consent Given",
            "properties": {"purpose": "promotional"}}),
        );
    }
    // Someone who never consented is not in the audience at all.
    batch.push(
        json!({"type": "identify", "userId": "anna", "traits": {"email": "anna@example.com"}}),
    );
    // Giulia calls: her line is down.
    batch.push(
        json!({"type": "track", "userId": "giulia", "event": "Case Opened",
        "properties": {"case_id": "CASE-1", "subject": "Internet outage"},
        "context": {"touchpoint": "call-center-milan", "channel": "phone"}}),
    );
    let answer = s
        .track("/v1/batch", json!({"batch": batch}).to_string())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // A dry run decides and records nothing.
    let mut dry = promotion();
    dry["dry_run"] = json!(true);
    let answer = post_json(&s, "/api/broadcasts", dry).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["audience"], 4);
    assert_eq!(answer.json["decisions"].as_array().unwrap().len(), 4);
    let giulia = s.profile_of("giulia").await;
    assert!(decisions_of(&s, &giulia).await.is_empty());

    // The promotion: everyone who consented but Giulia, whose decision says why.
    let answer = post_json(&s, "/api/broadcasts", promotion()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    assert_eq!(answer.json["audience"], 4);
    assert_eq!(answer.json["outcomes"]["suppress"], 1, "{}", answer.json);
    let sent = |outcomes: &Value| {
        outcomes["send"].as_u64().unwrap_or(0) + outcomes["hold"].as_u64().unwrap_or(0)
    };
    assert_eq!(sent(&answer.json["outcomes"]), 3, "{}", answer.json);
    let hers = decisions_of(&s, &giulia).await;
    assert_eq!(hers.len(), 1);
    assert_eq!(hers[0]["outcome"], "suppress");
    assert_eq!(hers[0]["reasons"][0]["code"], "suppressed");
    assert!(
        hers[0]["reasons"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("open case"),
        "{}",
        hers[0]
    );
    let marco = s.profile_of("marco").await;
    let his = decisions_of(&s, &marco).await;
    assert!(
        matches!(his[0]["outcome"].as_str(), Some("send" | "hold")),
        "{}",
        his[0]
    );
    assert_eq!(his[0]["channel"], "email");

    // The line is fixed: the next promotion includes her. The others already had
    // today's promotion, and the daily cap holds them back.
    let answer = s
        .track(
            "/v1/track",
            json!({"userId": "giulia", "event": "Case Resolved", "properties": {"case_id": "CASE-1"},
                "context": {"touchpoint": "call-center-milan"}})
            .to_string(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = post_json(&s, "/api/broadcasts", promotion()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let hers = decisions_of(&s, &giulia).await;
    assert_eq!(hers.len(), 2);
    assert!(
        matches!(hers[1]["outcome"].as_str(), Some("send" | "hold")),
        "{}",
        hers[1]
    );
    let his = decisions_of(&s, &marco).await;
    assert_eq!(his[1]["outcome"], "suppress");
    assert_eq!(his[1]["reasons"][0]["code"], "frequency_cap", "{}", his[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn broadcasts_with_a_bad_audience_or_channel_are_refused_with_the_reason() {
    let s = with_offer().await;
    let mut bad = promotion();
    bad["audience"] = json!("trait.city == 'Roma'");
    let answer = post_json(&s, "/api/broadcasts", bad).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["error"]["code"], "invalid_audience");
    assert!(
        answer.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trait")
    );
    let mut bad = promotion();
    bad["channel"] = json!("pigeon");
    let answer = post_json(&s, "/api/broadcasts", bad).await;
    assert_eq!(answer.json["error"]["code"], "invalid_body");
    let mut unknown = promotion();
    unknown["message"] = json!("autumn-offer");
    let answer = post_json(&s, "/api/broadcasts", unknown).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["error"]["code"], "unknown_message");
    let answer = post_json(&s, "/api/broadcasts", json!({"message": "x"})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_withdrawn_through_the_api_is_in_the_ledger_and_the_gate_honours_it() {
    let s = with_offer().await;
    let answer = s
        .track(
            "/v1/batch",
            json!({"batch": [
                {"type": "identify", "userId": "marco", "traits": {"email": "marco@example.com"}},
                {"type": "track", "userId": "marco", "event": "Consent Given",
                    "properties": {"purpose": "promotional"}, "timestamp": "2025-01-01T10:00:00Z",
                    "context": {"touchpoint": "web-shop"}},
            ]})
            .to_string(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let marco = s.profile_of("marco").await;
    let answer = post_json(
        &s,
        &format!("/api/profiles/{marco}/consents"),
        json!({"purpose": "promotional", "channel": "email", "granted": false, "touchpoint": "call-center-milan"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);

    let ledger = s
        .admin(
            "GET",
            &format!("/api/profiles/{marco}/consents"),
            Body::empty(),
        )
        .await
        .json;
    let history = ledger["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{ledger}");
    assert_eq!(history[0]["granted"], true);
    assert_eq!(history[0]["source"], "web-shop");
    assert_eq!(history[1]["granted"], false);
    assert_eq!(history[1]["channel"], "email");
    assert_eq!(history[1]["source"], "call-center-milan");
    assert_eq!(ledger["current"].as_array().unwrap().len(), 2);
    // The context card shows it too.
    let card = s
        .admin(
            "GET",
            &format!("/api/profiles/{marco}/context"),
            Body::empty(),
        )
        .await
        .json;
    assert_eq!(card["consents"].as_array().unwrap().len(), 2, "{card}");

    // E-mail is refused, SMS still allowed by the all-channel consent.
    let answer = post_json(&s, "/api/broadcasts", promotion()).await;
    assert_eq!(answer.json["reasons"]["no_consent"], 1, "{}", answer.json);
    let mut by_sms = promotion();
    by_sms["channel"] = json!("sms");
    by_sms["dry_run"] = json!(true);
    let answer = post_json(&s, "/api/broadcasts", by_sms).await;
    assert!(
        answer.json["reasons"].get("no_consent").is_none(),
        "{}",
        answer.json
    );

    let bad = post_json(
        &s,
        &format!("/api/profiles/{marco}/consents"),
        json!({"purpose": "", "granted": true}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn channel_auto_picks_the_channel_each_customer_answers_on() {
    let s = with_offer().await;
    let mut batch = vec![
        // Sara reads WhatsApp, ignores e-mail.
        json!({"type": "identify", "userId": "sara",
            "traits": {"email": "sara@example.com", "phone": "+39 333 123 4567"}}),
        json!({"type": "track", "userId": "sara", "event": "Consent Given", "properties": {"purpose": "promotional"}}),
        // Luca said he prefers e-mail.
        json!({"type": "identify", "userId": "luca",
            "traits": {"email": "luca@example.com", "phone": "+39 333 765 4321", "preferred_channel": "email"}}),
        json!({"type": "track", "userId": "luca", "event": "Consent Given", "properties": {"purpose": "promotional"}}),
        // Anna consented but left no address.
        json!({"type": "track", "userId": "anna", "event": "Consent Given", "properties": {"purpose": "promotional"}}),
    ];
    for _ in 0..4 {
        batch.push(json!({"type": "track", "userId": "sara", "event": "WhatsApp Sent"}));
        batch.push(json!({"type": "track", "userId": "sara", "event": "WhatsApp Read"}));
        batch.push(json!({"type": "track", "userId": "sara", "event": "Email Sent"}));
    }
    let answer = s
        .track("/v1/batch", json!({"batch": batch}).to_string())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let mut auto = promotion();
    auto["channel"] = json!("auto");
    auto["dry_run"] = json!(true);
    let answer = post_json(&s, "/api/broadcasts", auto).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let decisions = answer.json["decisions"].as_array().unwrap();
    let of = |profile: &str| {
        decisions
            .iter()
            .find(|d| d["profile_id"] == json!(profile))
            .cloned()
    };
    let sara = of(&s.profile_of("sara").await).unwrap();
    assert_eq!(sara["channel"], "whatsapp", "{sara}");
    assert_eq!(
        sara["fallbacks"].as_array().unwrap().last().unwrap(),
        "email"
    );
    let luca = of(&s.profile_of("luca").await).unwrap();
    assert_eq!(luca["channel"], "email", "{luca}");
    let anna = of(&s.profile_of("anna").await).unwrap();
    assert_eq!(anna["outcome"], "suppress");
    assert_eq!(anna["reasons"][0]["code"], "no_channel", "{anna}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_optimised_send_time_is_the_customers_own_hour() {
    let s = with_offer().await;
    let now = jiff::Timestamp::now();
    let rome = jiff::tz::TimeZone::get("Europe/Rome").unwrap();
    let hour_start = |t: jiff::Timestamp| {
        let us = t.as_microsecond();
        jiff::Timestamp::from_microsecond(us - us.rem_euclid(3_600_000_000)).unwrap()
    };
    // An hour of the coming day in the Roman daytime: she opens her e-mail then, every week.
    let k = (2..23)
        .find(|k| {
            let local = (hour_start(now) + jiff::SignedDuration::from_hours(*k))
                .to_zoned_datetime(rome.clone());
            (10..19).contains(&local.hour())
        })
        .unwrap();
    let target = hour_start(now) + jiff::SignedDuration::from_hours(k);
    let mut batch = vec![
        json!({"type": "identify", "userId": "sara", "traits": {"email": "sara@example.com"}}),
        json!({"type": "track", "userId": "sara", "event": "Consent Given", "properties": {"purpose": "promotional"}}),
    ];
    for week in 1..=4 {
        let at = target - jiff::SignedDuration::from_hours(24 * 7 * week)
            + jiff::SignedDuration::from_mins(10);
        batch.push(json!({"type": "track", "userId": "sara", "event": "Email Opened", "timestamp": at.to_string()}));
    }
    let answer = s
        .track("/v1/batch", json!({"batch": batch}).to_string())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let mut optimal = promotion();
    optimal["send_time"] = json!("optimal");
    optimal["dry_run"] = json!(true);
    let answer = post_json(&s, "/api/broadcasts", optimal).await;
    let decision = &answer.json["decisions"][0];
    assert_eq!(decision["outcome"], "hold", "{decision}");
    assert_eq!(decision["send_at"], json!(target.to_string()), "{decision}");
    assert_eq!(decision["reasons"][0]["code"], "send_time");
    let mut bad = promotion();
    bad["send_time"] = json!("whenever");
    assert_eq!(
        post_json(&s, "/api/broadcasts", bad).await.status,
        StatusCode::BAD_REQUEST
    );
}
