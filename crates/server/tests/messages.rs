//! The message catalog through the public API: messages checked when defined and
//! previewed for a person in every channel's style.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_message_is_checked_when_defined_and_previewed_for_a_person_on_each_channel() {
    let s = server().await;
    s.send_batch(vec![
        json!({"type": "identify", "userId": "giulia",
            "traits": {"firstName": "Giulia", "lastName": "Rossi", "email": "g@example.com"}}),
        json!({"type": "identify", "userId": "long",
            "traits": {"firstName": "Bartolomeo".repeat(20)}}),
    ])
    .await;
    let message = json!({"id": "line-restored",
        "email": {"subject": "{{ first_name }}, your line is back",
            "html": "<p>Dear {{ name }}</p>", "text": "Dear {{ name }}"},
        "sms": {"text": "Voce: {{ first_name }}, your line is back.", "max_segments": 1},
        "whatsapp": {"text": "Hi {{ first_name }}! All fine now?", "buttons": ["Yes", "No"]}});
    let answer = s.admin_json("POST", "/api/messages", message.clone()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    assert_eq!(answer.json["channels"], json!(["email", "sms", "whatsapp"]));
    let answer = s.admin_json("POST", "/api/messages", message).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);

    let giulia = s.profile_of("giulia").await;
    let preview = s
        .get(&format!(
            "/api/messages/line-restored/preview?profile_id={giulia}"
        ))
        .await;
    let renderings = preview["renderings"].as_array().unwrap();
    assert_eq!(renderings.len(), 3);
    assert_eq!(renderings[0]["channel"], "email");
    assert_eq!(renderings[0]["subject"], "Giulia, your line is back");
    assert!(
        renderings[0]["html"]
            .as_str()
            .unwrap()
            .contains("Dear Giulia Rossi")
    );
    let unsubscribe = renderings[0]["list_unsubscribe"].as_str().unwrap();
    assert!(
        unsubscribe.starts_with(&format!("<http://unavoce.test/unsubscribe/{giulia}/")),
        "a signed link: {unsubscribe}"
    );
    assert_eq!(renderings[1]["encoding"], "gsm7");
    assert_eq!(renderings[1]["segments"], 1);
    assert_eq!(renderings[2]["buttons"], json!(["Yes", "No"]));

    // A person whose name does not fit one SMS segment: that channel says why.
    let long = s.profile_of("long").await;
    let preview = s
        .get(&format!(
            "/api/messages/line-restored/preview?profile_id={long}&channel=sms"
        ))
        .await;
    let error = preview["renderings"][0]["error"].as_str().unwrap();
    assert!(error.contains("segments; at most 1"), "{error}");

    let answer = s
        .admin(
            "GET",
            "/api/messages/line-restored/preview",
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(answer.json["error"]["code"], "missing_parameter");
    let answer = s
        .admin(
            "GET",
            "/api/messages/line-restored/preview?profile_id=p-99999",
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_message_is_refused_with_the_place_and_the_reason() {
    let s = server().await;
    let answer = s
        .admin_json(
            "POST",
            "/api/messages",
            json!({"id": "m", "push": {"title": "Hi {{ frist_name }}", "body": "b"}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["error"]["code"], "invalid_message");
    let text = answer.json["error"]["message"].as_str().unwrap();
    assert!(
        text.contains("push.title") && text.contains("\"frist_name\""),
        "{text}"
    );
    let answer = s
        .admin_json(
            "POST",
            "/api/messages",
            json!({"id": "m", "fax": {"text": "x"}}),
        )
        .await;
    assert_eq!(answer.json["error"]["code"], "invalid_body");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_signed_unsubscribe_link_withdraws_that_persons_email_offers_only() {
    let s = server().await;
    s.send_batch(vec![
        json!({"type": "identify", "userId": "giulia", "traits": {"email": "g@example.com"}}),
        json!({"type": "track", "userId": "giulia", "event": "Consent Given",
            "properties": {"purpose": "promotional"}}),
        json!({"type": "identify", "userId": "marco", "traits": {"email": "m@example.com"}}),
    ])
    .await;
    let answer = s
        .admin_json(
            "POST",
            "/api/messages",
            json!({"id": "offer", "email": {"subject": "Offer", "html": "<p>Hi</p>", "text": "Hi"}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let (giulia, marco) = (s.profile_of("giulia").await, s.profile_of("marco").await);
    let preview = s
        .get(&format!("/api/messages/offer/preview?profile_id={giulia}"))
        .await;
    let header = preview["renderings"][0]["list_unsubscribe"]
        .as_str()
        .unwrap();
    let path = header
        .trim_matches(['<', '>'])
        .trim_start_matches("http://unavoce.test")
        .to_string();
    assert!(
        path.starts_with(&format!("/unsubscribe/{giulia}/")),
        "{path}"
    );
    let request = |method: &str, path: &str| {
        axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    // No key needed, but the signature must be the person's own.
    let answer = s.send(request("GET", &path)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let tampered = format!("{}x", &path[..path.len() - 1]);
    assert_eq!(
        s.send(request("POST", &tampered)).await.status,
        StatusCode::NOT_FOUND
    );
    let someone_else = path.replace(&giulia, &marco);
    let answer = s.send(request("POST", &someone_else)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json["error"]["code"], "invalid_link");

    let answer = s.send(request("POST", &path)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let consents = s.get(&format!("/api/profiles/{giulia}/consents")).await;
    let email = consents["current"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "email")
        .expect("an e-mail statement");
    assert_eq!(
        (
            email["purpose"].clone(),
            email["granted"].clone(),
            email["source"].clone()
        ),
        (json!("promotional"), json!(false), json!("unsubscribe"))
    );
    let all_channels = consents["current"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"].is_null())
        .unwrap();
    assert_eq!(
        all_channels["granted"], true,
        "other channels keep the consent"
    );
}
