//! Delivery through real wire formats: e-mail to a real SMTP server (aiosmtpd), SMS to
//! a local server speaking the Twilio Messages API, WhatsApp to one speaking the Cloud
//! API; retries, dead letters, STOP, and what providers report back.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, Uri, header};
use axum::response::IntoResponse;
use common::*;
use serde_json::{Value, json};
use unavoce_core::message::MessageConfig;
use unavoce_delivery::config::{
    Credential, DeliveryConfig, Pace, RetryConfig, SmtpConfig, TwilioConfig, WhatsappConfig,
};
use unavoce_testkit::smtp_tls::{TlsMode, TlsSmtpServer};
use unavoce_testkit::{SmtpServer, unfold};

const AUTH_TOKEN: &str = "twilio-auth-token";
const APP_SECRET: &str = "whatsapp-app-secret";

/// One request a fake provider received.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A scripted answer: status, headers, body.
type Scripted = (StatusCode, Vec<(&'static str, String)>, String);

/// A local HTTP server standing in for a provider: it records every request and gives
/// the scripted answers in turn, then `otherwise`.
#[derive(Clone)]
struct FakeProvider {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    /// Each answer waits for a permit: none while the provider is held.
    answers: Arc<tokio::sync::Semaphore>,
}

impl FakeProvider {
    async fn start(otherwise: fn(usize) -> (StatusCode, String)) -> FakeProvider {
        Self::start_slow(otherwise, Duration::ZERO).await
    }

    /// One that answers nothing until [`FakeProvider::release`].
    async fn start_held(otherwise: fn(usize) -> (StatusCode, String)) -> FakeProvider {
        Self::serve(otherwise, Duration::ZERO, 0).await
    }

    /// Lets it answer (each answer gives its permit back).
    fn release(&self) {
        self.answers.add_permits(1);
    }

    /// One that takes `delay` to answer each request.
    async fn start_slow(
        otherwise: fn(usize) -> (StatusCode, String),
        delay: Duration,
    ) -> FakeProvider {
        Self::serve(otherwise, delay, tokio::sync::Semaphore::MAX_PERMITS).await
    }

    async fn serve(
        otherwise: fn(usize) -> (StatusCode, String),
        delay: Duration,
        permits: usize,
    ) -> FakeProvider {
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let answers = Arc::new(tokio::sync::Semaphore::new(permits));
        let (r, sc, a) = (received.clone(), script.clone(), answers.clone());
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let (r, sc, a) = (r.clone(), sc.clone(), a.clone());
            async move {
                let n = {
                    let mut all = r.lock().unwrap();
                    all.push(Received {
                        at: Instant::now(),
                        path: uri.path().to_string(),
                        headers,
                        body,
                    });
                    all.len()
                };
                tokio::time::sleep(delay).await;
                drop(a.acquire().await.unwrap());
                let next = sc.lock().unwrap().pop_front();
                match next {
                    Some((status, headers, body)) => {
                        let mut response = (status, body).into_response();
                        for pair in headers {
                            let (name, value): (&'static str, String) = pair;
                            let value = axum::http::HeaderValue::from_str(value.as_str()).unwrap();
                            response.headers_mut().insert(name, value);
                        }
                        response
                    }
                    None => otherwise(n).into_response(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeProvider {
            address,
            received,
            script,
            answers,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn then(&self, status: StatusCode, headers: Vec<(&'static str, String)>, body: Value) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, headers, body.to_string()));
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// What the provider received, once it has `n` requests or a minute has passed (a
    /// fallback chain takes about 3 s alone, but once took over 20 s on PostgreSQL with
    /// the whole suite beside it on a slow machine).
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn twilio_accepts(n: usize) -> (StatusCode, String) {
    (
        StatusCode::CREATED,
        json!({"sid": format!("SM{n:032}"), "status": "queued"}).to_string(),
    )
}

fn whatsapp_accepts(n: usize) -> (StatusCode, String) {
    (
        StatusCode::OK,
        json!({"messaging_product": "whatsapp", "contacts": [{"input": "x", "wa_id": "x"}],
            "messages": [{"id": format!("wamid.TEST{n}")}]})
        .to_string(),
    )
}

fn credential(value: &str) -> Credential {
    Credential {
        value: Some(value.into()),
        env: None,
    }
}

fn message() -> MessageConfig {
    serde_json::from_value(json!({
        "id": "tv-offer",
        "email": {
            "subject": "{{ first_name }}, the match starts on Sunday",
            "html": "<html><body><p>Hi {{ first_name }}, watch it in 4K: <a href=\"https://shop.example/tv\">see the offer</a></p></body></html>",
            "text": "Hi {{ first_name }}, watch it in 4K: https://shop.example/tv"
        },
        "sms": {"text": "Hi {{ first_name }}, the match in 4K: shop.example/tv"},
        "whatsapp": {"text": "Hi {{ first_name }}! Want the match in 4K?", "buttons": ["Yes please", "No thanks"]}
    }))
    .unwrap()
}

/// E-mail through the SMTP server at `url`, from `from`.
fn email_via(url: impl Into<String>, from: &str) -> SmtpConfig {
    SmtpConfig {
        url: url.into(),
        from: from.into(),
        ..SmtpConfig::default()
    }
}

fn fast_retries() -> RetryConfig {
    RetryConfig {
        max_attempts: 4,
        first_delay: "1s".into(),
        max_delay: "4s".into(),
        expire_after: "1d".into(),
    }
}

fn twilio(url: &str) -> TwilioConfig {
    TwilioConfig {
        api_url: url.into(),
        account_sid: "AC00000000000000000000000000000001".into(),
        auth_token: credential(AUTH_TOKEN),
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        pace: Pace::default(),
    }
}

fn whatsapp(url: &str) -> WhatsappConfig {
    WhatsappConfig {
        api_url: url.into(),
        phone_number_id: "106540352242922".into(),
        access_token: credential("whatsapp-access-token"),
        app_secret: credential(APP_SECRET),
        verify_token: credential("verify-me"),
        pace: Pace::default(),
    }
}

/// A server that sends SMS through `twilio_server`, retrying fast.
async fn delivering_sms(twilio_server: &FakeProvider) -> TestServer {
    delivering(DeliveryConfig {
        sms: Some(twilio(&twilio_server.url())),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    })
    .await
}

async fn delivering(delivery: DeliveryConfig) -> TestServer {
    server_customised(Arc::new(move |b| {
        b.delivery = delivery.clone();
        b.messages = vec![message()];
        b.policies = daytime_policies();
    }))
    .await
}

/// Ada, who consented to promotions on every channel and gave an e-mail and a phone.
async fn ada(s: &TestServer) {
    s.send_batch(vec![
        json!({"type": "identify", "userId": "ada", "traits": {"first_name": "Ada",
            "email": "ada@example.com", "phone": "+39 333 123 4567"}}),
        json!({"type": "track", "userId": "ada", "event": "Consent Given",
            "properties": {"purpose": "promotional"}}),
    ])
    .await;
}

async fn broadcast(s: &TestServer, channel: &str) {
    let answer = s
        .admin_json(
            "POST",
            "/api/broadcasts",
            json!({"message": "tv-offer", "audience": "consents.promotional",
                "purpose": "promotional", "channel": channel}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    assert_eq!(answer.json["outcomes"]["send"], 1, "{}", answer.json);
}

/// The outbox entries, once every one has left `pending`/`sending` (or time is up).
async fn settled_outbox(s: &TestServer) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let entries = s.get("/api/outbox").await["entries"]
            .as_array()
            .unwrap()
            .clone();
        let busy = entries
            .iter()
            .any(|e| matches!(e["status"].as_str(), Some("pending" | "sending")));
        if !busy || Instant::now() > deadline {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn events_named(s: &TestServer, name: &str) -> Vec<Value> {
    let events = s.get("/api/events?limit=1000").await;
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == name)
        .cloned()
        .collect()
}

fn form(body: &Bytes) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_reaches_a_real_smtp_server_with_both_parts_and_the_unsubscribe_headers() {
    let smtp = SmtpServer::start();
    let s = delivering(DeliveryConfig {
        email: Some(email_via(smtp.url(), "Acme TV <news@acme.example>")),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    })
    .await;
    ada(&s).await;
    broadcast(&s, "email").await;
    let entries = settled_outbox(&s).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["status"], "sent", "{}", entries[0]);
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = unfold(&mails[0]);
    assert!(
        mail.contains("Subject: Ada, the match starts on Sunday"),
        "{mail}"
    );
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    assert!(
        mail.contains("From: \"Acme TV\" <news@acme.example>")
            || mail.contains("From: Acme TV <news@acme.example>"),
        "{mail}"
    );
    let key = format!("unavoce-{}-email", entries[0]["decision_id"]);
    assert!(
        mail.contains(&format!("Message-ID: <{key}@acme.example>")),
        "{mail}"
    );
    assert!(
        mail.contains("List-Unsubscribe: <http://unavoce.test/unsubscribe/"),
        "{mail}"
    );
    assert!(
        mail.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{mail}"
    );
    assert!(mail.contains("Content-Type: text/plain"), "{mail}");
    assert!(mail.contains("Content-Type: text/html"), "{mail}");
    assert!(
        mail.contains("Hi Ada, watch it in 4K: https://shop.example/tv"),
        "{mail}"
    );
    // The HTML part's link goes through the click redirect; the pixel reports opens.
    let click = mail
        .split("href=\"")
        .map(|rest| rest.split('"').next().unwrap())
        .find(|url| url.contains("/t/click/"))
        .expect("a tracked link")
        .replace("&amp;", "&");
    let pixel = mail
        .split("src=\"")
        .nth(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .expect("an open pixel");
    assert_eq!(events_named(&s, "Message Sent").await.len(), 1);

    let path = |url: &str| url.trim_start_matches("http://unavoce.test").to_string();
    let opened = s
        .send(Request::get(path(&pixel)).body(Body::empty()).unwrap())
        .await;
    assert_eq!(opened.status, StatusCode::OK);
    assert_eq!(opened.headers[header::CONTENT_TYPE], "image/gif");
    let clicked = s
        .send(Request::get(path(&click)).body(Body::empty()).unwrap())
        .await;
    assert_eq!(clicked.status, StatusCode::SEE_OTHER);
    assert_eq!(clicked.headers[header::LOCATION], "https://shop.example/tv");
    let forged = s
        .send(
            Request::get(path(&click).replace("/t/click/", "/t/click/9"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(forged.status, StatusCode::NOT_FOUND);
    assert_eq!(events_named(&s, "Message Opened").await.len(), 1);
    let clicks = events_named(&s, "Message Clicked").await;
    assert_eq!(clicks.len(), 1);
    assert_eq!(clicks[0]["properties"]["url"], "https://shop.example/tv");
    let profile = s.profile_of("ada").await;
    let card = s.get(&format!("/api/profiles/{profile}/context")).await;
    let email = &card["engagement"]["email"];
    assert_eq!(
        (
            email["sent"].as_u64(),
            email["opened"].as_u64(),
            email["clicked"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{card}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_goes_out_in_twilios_format_slows_down_on_429_and_its_delivery_comes_back() {
    let twilio_server = FakeProvider::start(twilio_accepts).await;
    twilio_server.then(
        StatusCode::TOO_MANY_REQUESTS,
        vec![("retry-after", "1".into())],
        json!({"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}),
    );
    let s = delivering_sms(&twilio_server).await;
    ada(&s).await;
    broadcast(&s, "sms").await;
    let entries = settled_outbox(&s).await;
    assert_eq!(entries[0]["status"], "sent", "{}", entries[0]);
    assert_eq!(entries[0]["attempts"], 2);
    let requests = twilio_server.received();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1].at - requests[0].at >= Duration::from_secs(1),
        "429 with Retry-After: 1 must hold the lane back a second"
    );
    for r in &requests {
        assert_eq!(
            r.path,
            "/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages.json"
        );
        assert_eq!(
            r.headers[header::CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        let expected = format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("AC00000000000000000000000000000001:{AUTH_TOKEN}")
            )
        );
        assert_eq!(r.headers[header::AUTHORIZATION], expected.as_str());
        let f = form(&r.body);
        assert_eq!(field(&f, "To"), Some("+393331234567"));
        assert_eq!(field(&f, "From"), Some("+15005550006"));
        assert_eq!(
            field(&f, "Body"),
            Some("Hi Ada, the match in 4K: shop.example/tv")
        );
        assert_eq!(
            field(&f, "StatusCallback"),
            Some("http://unavoce.test/webhooks/twilio/status")
        );
    }
    assert_eq!(entries[0]["provider_message_id"], format!("SM{:032}", 2));

    // Twilio reports the delivery, signed; a forged report is refused.
    let callback = |fields: Vec<(&str, String)>, signed: bool| {
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let signature = unavoce_delivery::verify::twilio_signature(
            if signed { AUTH_TOKEN } else { "guess" },
            "http://unavoce.test/webhooks/twilio/status",
            &fields,
        );
        Request::post("/webhooks/twilio/status")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(Body::from(serde_urlencoded::to_string(&fields).unwrap()))
            .unwrap()
    };
    let sid = format!("SM{:032}", 2);
    let report = vec![
        ("MessageSid", sid.clone()),
        ("MessageStatus", "delivered".to_string()),
        ("To", "+393331234567".into()),
    ];
    let forged = s.send(callback(report.clone(), false)).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let genuine = s.send(callback(report, true)).await;
    assert_eq!(genuine.status, StatusCode::NO_CONTENT, "{}", genuine.json);
    let entry = s.get(&format!("/api/outbox/{}", entries[0]["id"])).await;
    assert_eq!(entry["delivery"], "delivered");
    let delivered = events_named(&s, "Message Delivered").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["properties"]["channel"], "sms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_is_a_dead_letter_that_can_be_requeued_and_transient_failures_back_off() {
    let twilio_server = FakeProvider::start(twilio_accepts).await;
    twilio_server.then(
        StatusCode::BAD_REQUEST,
        vec![],
        json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}),
    );
    let s = delivering_sms(&twilio_server).await;
    ada(&s).await;
    broadcast(&s, "sms").await;
    let entries = settled_outbox(&s).await;
    assert_eq!(entries[0]["status"], "dead", "{}", entries[0]);
    assert_eq!(
        entries[0]["attempts"], 1,
        "a permanent error is not retried"
    );
    assert!(
        entries[0]["last_error"].as_str().unwrap().contains("21211"),
        "{}",
        entries[0]
    );
    let dead = s.get("/api/outbox?status=dead").await;
    assert_eq!(dead["entries"].as_array().unwrap().len(), 1);
    let failed = events_named(&s, "Message Failed").await;
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["properties"]["error"]
            .as_str()
            .unwrap()
            .contains("21211")
    );
    let summary = s.get("/api/outbox/summary").await;
    assert_eq!(summary["lanes"][0]["channel"], "sms");
    assert_eq!(summary["lanes"][0]["dead"], 1);

    // Fixed at the provider's end, then requeued: two 5xx first, each retried later
    // than the one before.
    let unavailable = json!({"code": 20500, "message": "Internal Server Error", "status": 500});
    twilio_server.then(
        StatusCode::INTERNAL_SERVER_ERROR,
        vec![],
        unavailable.clone(),
    );
    twilio_server.then(StatusCode::SERVICE_UNAVAILABLE, vec![], unavailable);
    let id = entries[0]["id"].as_i64().unwrap();
    let requeued = s
        .admin("POST", &format!("/api/outbox/{id}/requeue"), Body::empty())
        .await;
    assert_eq!(requeued.status, StatusCode::OK, "{}", requeued.json);
    let again = s
        .admin("POST", &format!("/api/outbox/{id}/requeue"), Body::empty())
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let requests = twilio_server.wait_for(4).await;
    let entries = settled_outbox(&s).await;
    assert_eq!(entries[0]["status"], "sent", "{}", entries[0]);
    assert_eq!(entries[0]["attempts"], 3);
    assert_eq!(requests.len(), 4);
    // Back-off with jitter: 1 s doubled each time, half of it random.
    let first_wait = requests[2].at - requests[1].at;
    let second_wait = requests[3].at - requests[2].at;
    assert!(first_wait >= Duration::from_millis(500), "{first_wait:?}");
    assert!(
        second_wait >= Duration::from_millis(1000),
        "{second_wait:?}"
    );
    // Every attempt carried the same idempotency key.
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| r.headers["idempotency-key"].to_str().unwrap())
        .collect();
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_is_filtered_by_status_and_a_status_that_is_none_is_refused() {
    // No provider: the message waits in the outbox, pending.
    let s = delivering(DeliveryConfig::default()).await;
    ada(&s).await;
    broadcast(&s, "sms").await;
    let ada = s.profile_of("ada").await;
    let pending = s.get("/api/outbox?status=pending").await;
    let entries = pending["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{pending}");
    assert_eq!(entries[0]["status"], "pending");
    assert_eq!(
        s.get(&format!("/api/outbox?status=pending&profile={ada}"))
            .await,
        pending
    );
    for other in ["sending", "sent", "dead", "cancelled"] {
        assert_eq!(
            s.get(&format!("/api/outbox?status={other}")).await,
            json!({"entries": [], "next_after": null}),
            "{other}"
        );
    }
    let summary = s.get("/api/outbox/summary").await;
    assert_eq!(
        summary["counts"],
        json!([{"channel": "sms", "status": "pending", "entries": 1}])
    );

    // Text that names no status is refused with the valid ones, not matched with
    // nothing — also where a profile that is none would have answered no entries.
    for (query, named) in [
        ("status=Pending", "\"Pending\""),
        ("status=failed", "\"failed\""),
        ("status=", "\"\""),
        ("status=%20sent", "\" sent\""),
        ("status=delivered&profile=ada", "\"delivered\""),
    ] {
        let answer = s
            .admin("GET", &format!("/api/outbox?{query}"), Body::empty())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            answer.json
        );
        assert_eq!(answer.json["error"]["code"], "invalid_parameter", "{query}");
        assert_eq!(
            answer.json["error"]["message"],
            format!("`status` is {named}; expected pending, sending, sent, dead or cancelled"),
            "{query}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_under_way_when_the_server_died_is_sent_once_after_the_restart() {
    let twilio_server = FakeProvider::start(twilio_accepts).await;
    let config = DeliveryConfig {
        sms: Some(twilio(&twilio_server.url())),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    };
    // The first server has no SMS provider: the entry waits in the outbox.
    let s = server_customised(Arc::new(|b| {
        b.messages = vec![message()];
        b.policies = daytime_policies();
    }))
    .await;
    ada(&s).await;
    broadcast(&s, "sms").await;
    // As a crash mid-attempt leaves it: claimed (`sending`, one attempt), not settled.
    let claimed = s
        .store
        .claim("sms", jiff::Timestamp::now(), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let entry = s.get("/api/outbox").await["entries"][0].clone();
    assert_eq!(entry["status"], "sending");
    let s = s
        .restart_with(Arc::new(move |b| {
            b.delivery = config.clone();
            b.messages = vec![message()];
            b.policies = daytime_policies();
        }))
        .await;
    let entries = settled_outbox(&s).await;
    assert_eq!(entries[0]["status"], "sent", "{}", entries[0]);
    assert_eq!(entries[0]["attempts"], 2);
    let requests = twilio_server.received();
    assert_eq!(requests.len(), 1, "sent once");
    assert_eq!(
        requests[0].headers["idempotency-key"],
        format!("unavoce-{}-sms", claimed[0].decision_id).as_str()
    );
    assert_eq!(events_named(&s, "Message Sent").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_goes_out_in_the_cloud_api_format_and_a_stop_is_confirmed_once() {
    let meta = FakeProvider::start(whatsapp_accepts).await;
    let s = whatsapp_broadcast_to_ada(&meta).await;
    let requests = meta.wait_for(1).await;
    assert_eq!(requests[0].path, "/106540352242922/messages");
    assert_eq!(
        requests[0].headers[header::AUTHORIZATION],
        "Bearer whatsapp-access-token"
    );
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["to"], "393331234567");
    assert_eq!(body["type"], "interactive");
    assert_eq!(
        body["interactive"]["body"]["text"],
        "Hi Ada! Want the match in 4K?"
    );
    assert_eq!(
        body["interactive"]["action"]["buttons"][1]["reply"]["title"],
        "No thanks"
    );

    // Meta's webhook verification.
    let verify = s
        .send(Request::get("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444").body(Body::empty()).unwrap())
        .await;
    assert_eq!(verify.status, StatusCode::OK);
    assert_eq!(verify.json, json!(1158201444));

    let notify = signed_whatsapp_notification;
    let inbound = |id: &str, text: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Ada"}, "wa_id": "393331234567"}],
            "messages": [{"from": "393331234567", "id": id, "timestamp": "1700000000", "type": "text", "text": {"body": text}}]
        }}]}]})
    };
    // The first message is read (once its send is recorded: a report that comes before
    // is the next test's story).
    let entries = settled_outbox(&s).await;
    assert_eq!(entries[0]["provider_message_id"], "wamid.TEST1");
    let answer = s.send(notify(whatsapp_status("wamid.TEST1", "read"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(events_named(&s, "Message Read").await.len(), 1);

    let answer = s.send(notify(inbound("wamid.IN1", "Stop"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    // The confirmation goes out once, although every consent on WhatsApp is withdrawn.
    let requests = meta.wait_for(2).await;
    assert_eq!(requests.len(), 2);
    let confirmation: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(confirmation["type"], "text");
    assert!(
        confirmation["text"]["body"]
            .as_str()
            .unwrap()
            .contains("unsubscribed")
    );
    let profile = s.profile_of("ada").await;
    let card = s.get(&format!("/api/profiles/{profile}/context")).await;
    let withdrawn: Vec<&Value> = card["consents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["channel"] == "whatsapp" && c["granted"] == false)
        .collect();
    assert_eq!(withdrawn.len(), 2, "{card}");
    // A second STOP (and the same one reported again) confirms nothing more.
    for (id, text) in [("wamid.IN2", "STOP"), ("wamid.IN1", "Stop")] {
        let answer = s.send(notify(inbound(id, text))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(meta.received().len(), 2);
    // No more promotions on WhatsApp for her: the gate has no channel left.
    let again = s
        .admin_json(
            "POST",
            "/api/broadcasts",
            json!({"message": "tv-offer", "audience": "true",
            "purpose": "promotional", "channel": "whatsapp"}),
        )
        .await;
    assert_eq!(again.json["outcomes"]["suppress"], 1, "{}", again.json);
    let forged = s
        .send(
            Request::post("/webhooks/whatsapp")
                .header("X-Hub-Signature-256", "sha256=00")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

/// A server delivering WhatsApp through `meta`, which has broadcast one message to Ada.
async fn whatsapp_broadcast_to_ada(meta: &FakeProvider) -> TestServer {
    let s = delivering(DeliveryConfig {
        whatsapp: Some(whatsapp(&meta.url())),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    })
    .await;
    ada(&s).await;
    broadcast(&s, "whatsapp").await;
    s
}

/// Meta's notification that message `wamid` is `status`.
fn whatsapp_status(wamid: &str, status: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "statuses": [{"id": wamid, "status": status, "timestamp": "1700000000", "recipient_id": "393331234567"}]
    }}]}]})
}

fn signed_whatsapp_notification(payload: Value) -> Request<Body> {
    let body = payload.to_string();
    Request::post("/webhooks/whatsapp")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            "X-Hub-Signature-256",
            unavoce_delivery::verify::whatsapp_signature(APP_SECRET, body.as_bytes()),
        )
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_comes_before_its_send_is_recorded_is_taken_in_once_it_is() {
    // Meta takes the message and reports it delivered and read before its answer to
    // the send has reached us.
    let meta = FakeProvider::start_held(whatsapp_accepts).await;
    let s = whatsapp_broadcast_to_ada(&meta).await;
    assert_eq!(meta.wait_for(1).await.len(), 1);
    for status in ["delivered", "read"] {
        let answer = s
            .send(signed_whatsapp_notification(whatsapp_status(
                "wamid.TEST1",
                status,
            )))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    let entries = s.get("/api/outbox").await;
    assert_eq!(entries["entries"][0]["status"], "sending", "{entries}");
    assert!(events_named(&s, "Message Read").await.is_empty());

    meta.release();
    let entries = settled_outbox(&s).await;
    assert_eq!(entries[0]["status"], "sent");
    let deadline = Instant::now() + Duration::from_secs(20);
    while events_named(&s, "Message Read").await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events_named(&s, "Message Delivered").await.len(), 1);
    assert_eq!(events_named(&s, "Message Read").await.len(), 1);
    let entry = s.get(&format!("/api/outbox/{}", entries[0]["id"])).await;
    assert_eq!(entry["delivery"], "read", "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_reach_the_departments_webhook_signed_and_a_digest_by_email() {
    let care = FakeProvider::start(|_| (StatusCode::OK, "{}".into())).await;
    let smtp = SmtpServer::start();
    let delivery = DeliveryConfig {
        email: Some(email_via(smtp.url(), "Unavoce <insights@acme.example>")),
        webhooks: [(
            "care-desk".to_string(),
            unavoce_delivery::config::WebhookConfig {
                url: format!("{}/insights", care.url()),
                secret: credential("whsec-care"),
                pace: Pace::default(),
            },
        )]
        .into(),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    };
    let s = server_customised(Arc::new(move |b| {
        b.delivery = delivery.clone();
        b.policies = daytime_policies();
        b.segments = vec![serde_json::from_value(json!({
            "name": "case-open-over-48h", "expression": "open_case_hours > 48"}))
        .unwrap()];
        b.subscriptions = vec![
            serde_json::from_value(json!({"name": "detractors", "department": "customer-care",
                "description": "an NPS answer of 6 or less",
                "when": "event.name == 'Survey Answered' && event.properties.nps <= 6",
                "webhook": "care-desk"}))
            .unwrap(),
            serde_json::from_value(json!({"name": "stuck-cases", "department": "customer-care",
                "segment": "case-open-over-48h", "digest": "care-lead@acme.example", "every": "2s"}))
            .unwrap(),
        ];
    }))
    .await;
    let three_days_ago =
        (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(72)).to_string();
    s.send_batch(vec![
        json!({"type": "identify", "userId": "ada", "traits": {"first_name": "Ada", "last_name": "Rossi",
            "email": "ada@example.com"}}),
        json!({"type": "track", "userId": "ada", "event": "Survey Answered", "properties": {"nps": 4}}),
        json!({"type": "track", "userId": "ada", "event": "Survey Answered", "properties": {"nps": 9}}),
        json!({"type": "identify", "userId": "bruno", "traits": {"name": "Bruno Bianchi"}}),
        json!({"type": "track", "userId": "bruno", "event": "Case Opened", "timestamp": three_days_ago,
            "properties": {"case_id": "C-7", "subject": "Router broken"}}),
    ])
    .await;

    // The detractor: one signed post to customer care's webhook.
    let posts = care.wait_for(1).await;
    assert_eq!(posts.len(), 1);
    let body = &posts[0].body;
    let signature = posts[0].headers["x-unavoce-signature"].to_str().unwrap();
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|r| r.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        signature,
        unavoce_delivery::signature("whsec-care", t, body)
    );
    let insight: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(insight["type"], "insight");
    assert_eq!(insight["subscription"], "detractors");
    assert_eq!(insight["department"], "customer-care");
    assert_eq!(insight["detail"], "an NPS answer of 6 or less");
    assert_eq!(insight["person"]["name"], "Ada Rossi");
    assert_eq!(insight["person"]["email"], "ada@example.com");
    assert_eq!(
        posts[0].headers["idempotency-key"].to_str().unwrap(),
        insight["id"].as_str().unwrap()
    );

    // The case open for three days: the segment takes Bruno in, the digest tells the lead.
    let deadline = Instant::now() + Duration::from_secs(20);
    while smtp.mails().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = unfold(&mails[0]);
    assert!(mail.contains("To: care-lead@acme.example"), "{mail}");
    assert!(
        mail.contains("Subject: 1 customer insight for customer-care"),
        "{mail}"
    );
    assert!(mail.contains("stuck-cases (1)"), "{mail}");
    assert!(
        mail.contains("Bruno Bianchi: entered segment case-open-over-48h"),
        "{mail}"
    );
    // Insights count towards no one's caps and are listed with the subscriptions.
    let subscriptions = s.get("/api/subscriptions").await;
    assert_eq!(subscriptions["subscriptions"].as_array().unwrap().len(), 2);
    let bad = s
        .admin_json(
            "POST",
            "/api/subscriptions",
            json!({"name": "x", "department": "sales",
            "when": "true", "webhook": "nowhere"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no webhook \"nowhere\""),
        "{}",
        bad.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_email_falls_back_to_whatsapp_and_a_failed_whatsapp_to_sms_through_the_gate() {
    let smtp = SmtpServer::start();
    let meta = FakeProvider::start(whatsapp_accepts).await;
    meta.then(
        StatusCode::BAD_REQUEST,
        vec![],
        json!({"error": {"message": "Message Undeliverable.", "type": "OAuthException",
            "code": 131026, "fbtrace_id": "A1"}}),
    );
    let twilio_server = FakeProvider::start(twilio_accepts).await;
    let delivery = DeliveryConfig {
        email: Some(email_via(smtp.url(), "Acme <bills@acme.example>")),
        whatsapp: Some(whatsapp(&meta.url())),
        sms: Some(twilio(&twilio_server.url())),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    };
    let s = server_customised(Arc::new(move |b| {
        b.delivery = delivery.clone();
        b.messages = vec![message()];
        b.policies = daytime_policies();
        b.journeys = vec![
            serde_json::from_value(json!({"name": "bill-due",
            "trigger": {"event": "Bill Issued"},
            "steps": [{"type": "send", "message": "tv-offer", "purpose": "service",
                "channel": "auto", "fallback_after": "3s"}]}))
            .unwrap(),
        ];
    }))
    .await;
    ada(&s).await;
    s.send_batch(vec![
        json!({"type": "track", "userId": "ada", "event": "Bill Issued"}),
    ])
    .await;
    // E-mail first (the cheapest); unread after 3 s, WhatsApp, which cannot deliver it;
    // then SMS, which takes it. Each choice went through the gate.
    let texts = twilio_server.wait_for(1).await;
    assert_eq!(texts.len(), 1, "the SMS fallback was sent");
    assert_eq!(smtp.mails().len(), 1);
    assert_eq!(meta.received().len(), 1);
    let profile = s.profile_of("ada").await;
    let decisions = s.get(&format!("/api/decisions?profile_id={profile}")).await;
    let channels: Vec<&str> = decisions["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["email", "whatsapp", "sms"]);
    let entries = settled_outbox(&s).await;
    let states: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["channel"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("email", "sent"), ("whatsapp", "dead"), ("sms", "sent")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_hangs_does_not_hold_back_the_others() {
    // SMS answers only after 5 seconds; e-mail must not wait for it.
    let slow = FakeProvider::start_slow(twilio_accepts, Duration::from_secs(5)).await;
    let smtp = SmtpServer::start();
    let delivery = DeliveryConfig {
        email: Some(email_via(smtp.url(), "Acme <news@acme.example>")),
        sms: Some(twilio(&slow.url())),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    };
    let s = delivering(delivery).await;
    ada(&s).await;
    broadcast(&s, "sms").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let answer = s
        .admin_json(
            "POST",
            "/api/broadcasts",
            json!({"message": "tv-offer",
            "audience": "consents.promotional", "purpose": "service", "channel": "email"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    while smtp.mails().is_empty() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(smtp.mails().len(), 1);
    assert_eq!(slow.received().len(), 1);
    let sms = s.get("/api/outbox?channel=sms").await["entries"][0].clone();
    assert_eq!(
        sms["status"], "sending",
        "the e-mail went while the SMS was still under way"
    );
}

/// An SMTP server that refuses every recipient (550), as for an address that does not
/// exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_the_mail_server_refuses_is_a_bounce_and_a_dead_letter_at_once() {
    let port = unavoce_testkit::refusing_smtp_server("550 5.1.1 <ada@example.com>: user unknown");
    let s = delivering(DeliveryConfig {
        email: Some(email_via(
            format!("smtp://127.0.0.1:{port}"),
            "Acme <news@acme.example>",
        )),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    })
    .await;
    ada(&s).await;
    broadcast(&s, "email").await;
    let entries = settled_outbox(&s).await;
    assert_eq!(entries[0]["status"], "dead", "{}", entries[0]);
    assert_eq!(entries[0]["attempts"], 1);
    assert!(
        entries[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("user unknown"),
        "{}",
        entries[0]
    );
    let bounces = events_named(&s, "Message Bounced").await;
    assert_eq!(bounces.len(), 1);
    let profile = s.profile_of("ada").await;
    let card = s.get(&format!("/api/profiles/{profile}/context")).await;
    assert_eq!(card["engagement"]["email"]["failed"], 1, "{card}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_stop_withdraws_consent_and_is_confirmed_once_through_twilio() {
    let twilio_server = FakeProvider::start(twilio_accepts).await;
    let s = delivering_sms(&twilio_server).await;
    ada(&s).await;
    let inbound = |sid: &str, body: &str| {
        let fields: Vec<(String, String)> = [
            ("MessageSid", sid),
            ("AccountSid", "AC00000000000000000000000000000001"),
            ("From", "+393331234567"),
            ("To", "+15005550006"),
            ("Body", body),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let signature = unavoce_delivery::verify::twilio_signature(
            AUTH_TOKEN,
            "http://unavoce.test/webhooks/twilio/inbound",
            &fields,
        );
        Request::post("/webhooks/twilio/inbound")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(Body::from(serde_urlencoded::to_string(&fields).unwrap()))
            .unwrap()
    };
    let answer = s.send(inbound("SM-in-1", "Stop")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert!(
        answer.json.as_str().unwrap().contains("<Response>"),
        "TwiML"
    );
    let sent = twilio_server.wait_for(1).await;
    let f = form(&sent[0].body);
    assert_eq!(field(&f, "To"), Some("+393331234567"));
    assert!(field(&f, "Body").unwrap().contains("unsubscribed"));
    // Again (and Twilio retrying the first): no second confirmation.
    assert_eq!(
        s.send(inbound("SM-in-2", "STOP")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.send(inbound("SM-in-1", "Stop")).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(twilio_server.received().len(), 1);
    assert_eq!(events_named(&s, "Message Replied").await.len(), 2);
    // A promotion by SMS is no longer possible; START gives the consent back.
    let again = s
        .admin_json(
            "POST",
            "/api/broadcasts",
            json!({"message": "tv-offer", "audience": "true",
            "purpose": "promotional", "channel": "sms"}),
        )
        .await;
    assert_eq!(again.json["outcomes"]["suppress"], 1, "{}", again.json);
    assert_eq!(
        s.send(inbound("SM-in-3", "START")).await.status,
        StatusCode::OK
    );
    let again = s
        .admin_json(
            "POST",
            "/api/broadcasts",
            json!({"message": "tv-offer", "audience": "true",
            "purpose": "promotional", "channel": "sms"}),
        )
        .await;
    assert_eq!(again.json["outcomes"]["send"], 1, "{}", again.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_center_task_is_a_signed_webhook() {
    let crm = FakeProvider::start(|_| (StatusCode::CREATED, "{}".into())).await;
    let s = server_customised(Arc::new({
        let url = format!("{}/tasks", crm.url());
        move |b| {
            b.delivery = DeliveryConfig {
                call_task: Some(unavoce_delivery::config::WebhookConfig {
                    url: url.clone(),
                    secret: credential("crm-secret"),
                    pace: Pace::default(),
                }),
                ..DeliveryConfig::default()
            };
            b.policies = daytime_policies();
            b.messages = vec![
                serde_json::from_value(json!({"id": "call-back",
                "call_task": {"summary": "Call {{ first_name }} back about the outage"}}))
                .unwrap(),
            ];
        }
    }))
    .await;
    ada(&s).await;
    let answer = s
        .admin_json(
            "POST",
            "/api/broadcasts",
            json!({"message": "call-back", "audience": "true",
            "purpose": "service", "channel": "call_task"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let posts = crm.wait_for(1).await;
    assert_eq!(posts[0].path, "/tasks");
    let task: Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(task["content"]["summary"], "Call Ada back about the outage");
    assert_eq!(task["to"], "+393331234567");
    let signature = posts[0].headers["x-unavoce-signature"].to_str().unwrap();
    let t: i64 = signature[2..signature.find(',').unwrap()].parse().unwrap();
    assert_eq!(
        signature,
        unavoce_delivery::signature("crm-secret", t, &posts[0].body)
    );
    let entries = settled_outbox(&s).await;
    assert_eq!(entries[0]["status"], "sent");
}

/// The issue's story: Ada gave promotional consent for e-mail, then said "stop all
/// promotions" on a web form (a withdrawal that names no channel). A promotion decided
/// before she withdrew is cancelled at send time, and no later promotion reaches her —
/// while Bob, who only gave his e-mail consent, gets both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_all_promotions_ends_an_email_consent_given_before_it() {
    let smtp = SmtpServer::start();
    let smtp_url = smtp.url();
    // No e-mail provider at first: what the gate lets through waits in the outbox.
    let s = server_customised(Arc::new(|b| {
        b.messages = vec![message()];
        b.policies = daytime_policies();
    }))
    .await;
    let mut batch = Vec::new();
    for user in ["ada", "bob"] {
        batch.push(json!({"type": "identify", "userId": user,
            "traits": {"first_name": user, "email": format!("{user}@example.com")}}));
        batch.push(
            json!({"type": "track", "userId": user, "event": "Consent Given",
            "properties": {"purpose": "promotional", "channel": "email"}}),
        );
    }
    s.send_batch(batch).await;
    let promote = |audience: &str| {
        json!({"message": "tv-offer", "audience": audience, "purpose": "promotional",
            "channel": "email"})
    };
    let answer = s
        .admin_json("POST", "/api/broadcasts", promote("consents.promotional"))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    assert_eq!(answer.json["outcomes"]["send"], 2, "{}", answer.json);

    // "Stop all promotions", from the web form: no channel named.
    let ada = s.profile_of("ada").await;
    let answer = s
        .admin_json(
            "POST",
            &format!("/api/profiles/{ada}/consents"),
            json!({"purpose": "promotional", "granted": false, "touchpoint": "web-shop"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let card = s.get(&format!("/api/profiles/{ada}/context")).await;
    let lines = card["consents"].as_array().unwrap();
    assert!(!lines.is_empty(), "{card}");
    assert!(
        lines.iter().all(|l| l["granted"] == false),
        "every line of her card shows the withdrawal: {card}"
    );

    // The e-mail provider comes up: Ada's message, decided before she withdrew, is
    // cancelled at send time; Bob's goes.
    let s = s
        .restart_with(Arc::new(move |b| {
            b.messages = vec![message()];
            b.policies = daytime_policies();
            b.delivery = DeliveryConfig {
                email: Some(email_via(smtp_url.clone(), "news@acme.example")),
                retry: fast_retries(),
                ..DeliveryConfig::default()
            };
        }))
        .await;
    let entries = settled_outbox(&s).await;
    let status_of = |entries: &[Value], profile: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["profile_id"] == profile)
            .map(|e| e["status"].as_str().unwrap().to_string())
            .collect()
    };
    let bob = s.profile_of("bob").await;
    assert_eq!(status_of(&entries, &ada), ["cancelled"], "{entries:?}");
    assert_eq!(status_of(&entries, &bob), ["sent"], "{entries:?}");
    // Filtered by profile: that person's entries; text no profile id is stored as
    // (padded, a name) finds none.
    let hers = s.get(&format!("/api/outbox?profile={ada}")).await;
    assert_eq!(
        status_of(hers["entries"].as_array().unwrap(), &ada),
        ["cancelled"]
    );
    assert_eq!(hers["entries"].as_array().unwrap().len(), 1, "{hers}");
    for other in [ada.replacen("p-", "p-0", 1), "ada".to_string()] {
        assert_eq!(
            s.get(&format!("/api/outbox?profile={other}")).await,
            json!({"entries": [], "next_after": null})
        );
    }

    // A later promotion: she is no longer in a consenting audience (a dry run shows),
    // and one sent to everyone is refused for her at the gate with the reason.
    let mut dry = promote("consents.promotional");
    dry["dry_run"] = json!(true);
    let answer = s.admin_json("POST", "/api/broadcasts", dry).await;
    assert_eq!(answer.json["audience"], 1, "{}", answer.json);
    let answer = s
        .admin_json("POST", "/api/broadcasts", promote("true"))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let decisions = s.get(&format!("/api/decisions?profile_id={ada}")).await;
    let latest = decisions["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|d| d["id"].as_i64())
        .cloned()
        .unwrap();
    assert_eq!(latest["outcome"], "suppress", "{latest}");
    assert_eq!(latest["reasons"][0]["code"], "no_consent", "{latest}");

    // What reached the mail server once everything settled: Bob's two offers, nothing
    // for Ada.
    let entries = settled_outbox(&s).await;
    assert_eq!(status_of(&entries, &bob), ["sent", "sent"], "{entries:?}");
    let mails = smtp.wait_for(2, Duration::from_secs(20));
    let to_ada = mails
        .iter()
        .filter(|m| m.contains("ada@example.com"))
        .count();
    let to_bob = mails
        .iter()
        .filter(|m| m.contains("bob@example.com"))
        .count();
    assert_eq!((to_ada, to_bob), (0, 2), "{mails:?}");
}

/// E-mail through `smtp` with its login, trusting `ca_file` when given.
fn email_over_tls(
    smtp: &TlsSmtpServer,
    password: &str,
    ca_file: Option<&std::path::Path>,
) -> SmtpConfig {
    SmtpConfig {
        username: Some(smtp.user.into()),
        password: credential(password),
        ca_file: ca_file.map(Into::into),
        ..email_via(smtp.url(), "Acme TV <news@acme.example>")
    }
}

/// Sends Ada the offer through `email` and answers how the outbox settled it.
async fn one_email_through(email: SmtpConfig) -> Value {
    let s = delivering(DeliveryConfig {
        email: Some(email),
        retry: RetryConfig {
            max_attempts: 1,
            ..fast_retries()
        },
        ..DeliveryConfig::default()
    })
    .await;
    ada(&s).await;
    broadcast(&s, "email").await;
    let entries = settled_outbox(&s).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_out_over_starttls_and_over_implicit_tls_with_a_login() {
    for mode in [TlsMode::StartTls, TlsMode::Implicit] {
        let smtp = TlsSmtpServer::start(mode);
        let sent =
            one_email_through(email_over_tls(&smtp, smtp.password, Some(&smtp.ca_file))).await;
        assert_eq!(sent["status"], "sent", "{mode:?}: {sent}");
        let mails = smtp.mails();
        assert_eq!(mails.len(), 1, "{mode:?}");
        assert!(
            unfold(&mails[0]).contains("Subject: Ada, the match starts on Sunday"),
            "{mode:?}"
        );

        // The server's certificate is checked: without its authority, nothing goes out.
        let untrusted = one_email_through(email_over_tls(&smtp, smtp.password, None)).await;
        assert_ne!(untrusted["status"], "sent", "{mode:?}: {untrusted}");
        let why = untrusted["last_error"].as_str().unwrap();
        assert!(why.contains("UnknownIssuer"), "{mode:?}: {why}");
        // And the login is: a wrong password sends nothing.
        let refused = one_email_through(email_over_tls(
            &smtp,
            "not-the-password",
            Some(&smtp.ca_file),
        ))
        .await;
        assert_ne!(refused["status"], "sent", "{mode:?}: {refused}");
        let why = refused["last_error"].as_str().unwrap();
        assert!(why.contains("535"), "{mode:?}: {why}");
        // A refused login is ours to fix, not Ada's bounce: a transient failure (here
        // with one attempt allowed, given up), never the refusal of her address.
        assert!(!why.starts_with("refused:"), "{mode:?}: {why}");
        assert_eq!(
            smtp.mails().len(),
            1,
            "{mode:?}: only the first one arrived"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_answering_429_slows_the_lane_and_the_message_goes_out_when_it_recovers() {
    let meta = FakeProvider::start(whatsapp_accepts).await;
    for _ in 0..2 {
        meta.then(
            StatusCode::TOO_MANY_REQUESTS,
            vec![],
            json!({"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException",
                "code": 130429, "error_data": {"messaging_product": "whatsapp",
                "details": "Cloud API message throughput has been reached."},
                "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}),
        );
    }
    let s = whatsapp_broadcast_to_ada(&meta).await;
    let entries = settled_outbox(&s).await;
    assert_eq!(entries[0]["status"], "sent", "{}", entries[0]);
    assert_eq!(entries[0]["attempts"], 3, "two refusals, then taken");
    let requests = meta.received();
    assert_eq!(requests.len(), 3);
    for pair in requests.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(500),
            "a rate limit holds the lane back before the next try"
        );
    }
    let sent = events_named(&s, "Message Sent").await;
    assert_eq!(sent.len(), 1, "sent once, however many tries");
    assert!(events_named(&s, "Message Failed").await.is_empty());
}

// ------------------------------------------------------------ broadcast fallbacks

/// A broadcast of `tv-offer` to everyone who consented to promotions, on channel `auto`
/// with `fallback_after`; its id.
async fn broadcast_with_fallbacks(s: &TestServer, fallback_after: &str) -> String {
    let answer = s
        .admin_json(
            "POST",
            "/api/broadcasts",
            json!({"message": "tv-offer", "audience": "consents.promotional",
                "purpose": "promotional", "channel": "auto", "fallback_after": fallback_after}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    answer.json["broadcast"].as_str().unwrap().to_string()
}

/// One link of a broadcast's chain as the decision log shows it: the person's profile,
/// the channel, the outcome, and every reason as `code: detail`.
#[derive(Debug)]
struct Link {
    profile: String,
    channel: String,
    outcome: String,
    reasons: Vec<String>,
}

/// The decisions of broadcast `id`, oldest first.
async fn chain_of(s: &TestServer, id: &str) -> Vec<Link> {
    let page = s.get(&format!("/api/decisions?broadcast={id}")).await;
    page["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| Link {
            profile: d["profile_id"].as_str().unwrap().to_string(),
            channel: d["channel"].as_str().unwrap().to_string(),
            outcome: d["outcome"].as_str().unwrap().to_string(),
            reasons: d["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "{}: {}",
                        r["code"].as_str().unwrap(),
                        r["detail"].as_str().unwrap()
                    )
                })
                .collect(),
        })
        .collect()
}

/// The chain of broadcast `id` once it holds `n` decisions (or time is up).
async fn chain_of_at_least(s: &TestServer, id: &str, n: usize) -> Vec<Link> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let chain = chain_of(s, id).await;
        if chain.len() >= n || Instant::now() > deadline {
            return chain;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn channels(chain: &[Link]) -> Vec<(&str, &str)> {
    chain
        .iter()
        .map(|l| (l.channel.as_str(), l.outcome.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_falls_back_from_a_bounced_email_to_whatsapp_and_from_a_failed_whatsapp_to_sms()
{
    let port = unavoce_testkit::refusing_smtp_server("550 5.1.1 <ada@example.com>: user unknown");
    let meta = FakeProvider::start(whatsapp_accepts).await;
    meta.then(
        StatusCode::BAD_REQUEST,
        vec![],
        json!({"error": {"message": "Message Undeliverable.", "type": "OAuthException",
            "code": 131026, "fbtrace_id": "A1"}}),
    );
    let twilio_server = FakeProvider::start(twilio_accepts).await;
    let s = delivering(DeliveryConfig {
        email: Some(email_via(
            format!("smtp://127.0.0.1:{port}"),
            "Acme <news@acme.example>",
        )),
        whatsapp: Some(whatsapp(&meta.url())),
        sms: Some(twilio(&twilio_server.url())),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    })
    .await;
    ada(&s).await;
    // A deadline far away: only the bounce and the failure move the chain on.
    let id = broadcast_with_fallbacks(&s, "1h").await;
    let texts = twilio_server.wait_for(1).await;
    assert_eq!(texts.len(), 1, "the SMS fallback was sent");
    assert_eq!(meta.received().len(), 1);
    let chain = chain_of_at_least(&s, &id, 3).await;
    assert_eq!(
        channels(&chain),
        [("email", "send"), ("whatsapp", "send"), ("sms", "send")],
        "{chain:?}"
    );
    let profile = s.profile_of("ada").await;
    assert!(chain.iter().all(|l| l.profile == profile), "{chain:?}");
    assert!(chain[0].reasons.is_empty(), "{chain:?}");
    assert_eq!(
        chain[1].reasons,
        ["fallback: the email message bounced; trying whatsapp"]
    );
    assert_eq!(
        chain[2].reasons,
        ["fallback: the whatsapp message failed; trying sms"]
    );
    let entries = settled_outbox(&s).await;
    let states: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["channel"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("email", "dead"), ("whatsapp", "dead"), ("sms", "sent")]
    );
    assert!(entries.iter().all(|e| e["broadcast"] == id.as_str()));
    // SMS was the last channel: the chain is over.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(chain_of(&s, &id).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_broadcast_email_falls_back_at_the_deadline_and_an_opened_one_ends_the_chain() {
    let smtp = SmtpServer::start();
    let meta = FakeProvider::start(whatsapp_accepts).await;
    let s = delivering(DeliveryConfig {
        email: Some(email_via(smtp.url(), "Acme <news@acme.example>")),
        whatsapp: Some(whatsapp(&meta.url())),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    })
    .await;
    ada(&s).await;
    s.send_batch(vec![
        json!({"type": "identify", "userId": "bea", "traits": {"first_name": "Bea",
            "email": "bea@example.com", "phone": "+39 333 765 4321"}}),
        json!({"type": "track", "userId": "bea", "event": "Consent Given",
            "properties": {"purpose": "promotional"}}),
    ])
    .await;
    let id = broadcast_with_fallbacks(&s, "4s").await;
    // Bea opens hers at once; Ada does not.
    let mails = smtp.wait_for(2, Duration::from_secs(10));
    assert_eq!(mails.len(), 2, "{mails:?}");
    let beas = mails
        .iter()
        .map(|m| unfold(m))
        .find(|m| m.contains("To: bea@example.com"))
        .expect("Bea's e-mail");
    let pixel = beas
        .split("src=\"")
        .nth(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .expect("an open pixel");
    let opened = s
        .send(
            Request::get(pixel.trim_start_matches("http://unavoce.test"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK);
    // Ada's e-mail is not read within 4 s: WhatsApp.
    let chain = chain_of_at_least(&s, &id, 3).await;
    let (ada, bea) = (s.profile_of("ada").await, s.profile_of("bea").await);
    let of = |who: &str| -> Vec<(&str, &str)> {
        chain
            .iter()
            .filter(|l| l.profile == who)
            .map(|l| (l.channel.as_str(), l.outcome.as_str()))
            .collect()
    };
    assert_eq!(
        of(&ada),
        [("email", "send"), ("whatsapp", "send")],
        "{chain:?}"
    );
    assert_eq!(of(&bea), [("email", "send")], "{chain:?}");
    let fallback = chain.iter().find(|l| l.channel == "whatsapp").unwrap();
    assert_eq!(
        fallback.reasons,
        ["fallback: the email message was not read within 4s; trying whatsapp"]
    );
    let sent = meta.wait_for(1).await;
    assert_eq!(sent.len(), 1);
    assert!(
        String::from_utf8_lossy(&sent[0].body).contains("393331234567"),
        "Ada's WhatsApp: {:?}",
        sent[0].body
    );
    // Bea's deadline passed too: opened in time, she gets nothing more; Ada's chain
    // watches WhatsApp now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(chain_of(&s, &id).await.len(), 3);
    assert_eq!(meta.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_fallback_the_gate_refuses_is_recorded_and_the_next_channel_is_tried() {
    let smtp = SmtpServer::start();
    let meta = FakeProvider::start(whatsapp_accepts).await;
    let twilio_server = FakeProvider::start(twilio_accepts).await;
    let s = delivering(DeliveryConfig {
        email: Some(email_via(smtp.url(), "Acme <news@acme.example>")),
        whatsapp: Some(whatsapp(&meta.url())),
        sms: Some(twilio(&twilio_server.url())),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    })
    .await;
    ada(&s).await;
    let id = broadcast_with_fallbacks(&s, "2s").await;
    // Before the deadline Ada withdraws her consent on WhatsApp.
    s.send_batch(vec![json!({"type": "track", "userId": "ada",
        "event": "Consent Withdrawn",
        "properties": {"purpose": "promotional", "channel": "whatsapp"}})])
        .await;
    let chain = chain_of_at_least(&s, &id, 3).await;
    assert_eq!(
        channels(&chain),
        [("email", "send"), ("whatsapp", "suppress"), ("sms", "send")],
        "{chain:?}"
    );
    assert_eq!(
        chain[1].reasons[0],
        "fallback: the email message was not read within 2s; trying whatsapp"
    );
    assert!(
        chain[1].reasons[1].starts_with("no_consent: "),
        "{:?}",
        chain[1].reasons
    );
    assert_eq!(
        chain[2].reasons,
        ["fallback: whatsapp was suppressed (no_consent); trying sms"]
    );
    assert_eq!(twilio_server.wait_for(1).await.len(), 1);
    assert!(meta.received().is_empty(), "nothing on WhatsApp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_s_pending_fallbacks_survive_a_restart() {
    let smtp = SmtpServer::start();
    let meta = FakeProvider::start(whatsapp_accepts).await;
    let delivery = DeliveryConfig {
        email: Some(email_via(smtp.url(), "Acme <news@acme.example>")),
        whatsapp: Some(whatsapp(&meta.url())),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    };
    let s = delivering(delivery).await;
    ada(&s).await;
    let id = broadcast_with_fallbacks(&s, "3s").await;
    assert_eq!(smtp.wait_for(1, Duration::from_secs(10)).len(), 1);
    // Stopped while the e-mail is watched; started again, the chain goes on.
    assert_eq!(
        chain_of(&s, &id).await.len(),
        1,
        "still watching the e-mail"
    );
    let s = s.restart().await;
    let chain = chain_of_at_least(&s, &id, 2).await;
    assert_eq!(
        channels(&chain),
        [("email", "send"), ("whatsapp", "send")],
        "{chain:?}"
    );
    assert_eq!(meta.wait_for(1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_s_pending_broadcast_fallbacks_go_with_them() {
    let smtp = SmtpServer::start();
    let meta = FakeProvider::start(whatsapp_accepts).await;
    let s = delivering(DeliveryConfig {
        email: Some(email_via(smtp.url(), "Acme <news@acme.example>")),
        whatsapp: Some(whatsapp(&meta.url())),
        retry: fast_retries(),
        ..DeliveryConfig::default()
    })
    .await;
    ada(&s).await;
    let id = broadcast_with_fallbacks(&s, "2s").await;
    assert_eq!(smtp.wait_for(1, Duration::from_secs(10)).len(), 1);
    let profile = s.profile_of("ada").await;
    let erased = s
        .admin_json("POST", &format!("/api/profiles/{profile}/erase"), json!({}))
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.json);
    assert_eq!(erased.json["journey_runs"], 1, "her chain: {}", erased.json);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(chain_of(&s, &id).await.is_empty());
    assert!(
        meta.received().is_empty(),
        "no fallback for an erased person"
    );
    // Nor after a restart.
    let s = s.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(chain_of(&s, &id).await.is_empty());
    assert!(meta.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_after_needs_channel_auto_and_a_duration() {
    let s = delivering(DeliveryConfig::default()).await;
    ada(&s).await;
    let ask = |channel: &str, after: &str| {
        json!({"message": "tv-offer", "audience": "consents.promotional",
            "purpose": "promotional", "channel": channel, "fallback_after": after})
    };
    let fixed = s
        .admin_json("POST", "/api/broadcasts", ask("email", "24h"))
        .await;
    assert_eq!(fixed.status, StatusCode::BAD_REQUEST, "{}", fixed.json);
    assert_eq!(fixed.json["error"]["code"], "fallback_needs_auto");
    assert!(
        fixed.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs channel \"auto\""),
        "{}",
        fixed.json
    );
    let vague = s
        .admin_json("POST", "/api/broadcasts", ask("auto", "soon"))
        .await;
    assert_eq!(vague.status, StatusCode::BAD_REQUEST, "{}", vague.json);
    assert_eq!(vague.json["error"]["code"], "invalid_body");
    assert!(
        vague.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"soon\" is not a duration"),
        "{}",
        vague.json
    );
    // Nothing was recorded.
    assert!(
        s.get("/api/decisions").await["decisions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A dry run lists each person's fallbacks, and records nothing.
    let mut dry = ask("auto", "24h");
    dry["dry_run"] = json!(true);
    let answer = s.admin_json("POST", "/api/broadcasts", dry).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        answer.json["decisions"][0]["fallbacks"],
        json!(["whatsapp", "sms"])
    );
    assert!(
        s.get("/api/decisions").await["decisions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
