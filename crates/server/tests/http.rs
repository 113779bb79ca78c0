//! The HTTP API in process, against the real embedded store.

use std::io::Write;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;
use unavoce_store::SqliteOptions;
use unavoce_store_postgres::PgOptions;

mod common;

use common::*;

fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], code, "{}", answer.json);
    assert!(
        answer.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn every_call_type_is_accepted_on_its_endpoint() {
    let s = server().await;
    let calls = [
        (
            "/v1/identify",
            json!({"userId": "u1", "traits": {"email": "ada@example.com"}}),
        ),
        (
            "/v1/track",
            json!({"userId": "u1", "event": "Order Completed"}),
        ),
        ("/v1/page", json!({"anonymousId": "a1", "name": "Home"})),
        ("/v1/screen", json!({"userId": "u1", "name": "Consumption"})),
        ("/v1/group", json!({"userId": "u1", "groupId": "g1"})),
        ("/v1/alias", json!({"userId": "u1", "previousId": "a1"})),
    ];
    for (path, body) in calls {
        let answer = s.track(path, body.to_string()).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.json);
        assert_eq!(answer.json["success"], true);
    }
    let events = s
        .admin("GET", "/api/events?limit=10", Body::empty())
        .await
        .json;
    let types: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        types,
        vec!["identify", "track", "page", "screen", "group", "alias"]
    );
    assert_eq!(events["events"][0]["source"], "web");
}

#[tokio::test]
async fn write_key_in_basic_auth_with_or_without_colon_or_in_the_body() {
    let s = server().await;
    for (n, auth) in [
        basic("pos-key-000000000000"),
        basic("pos-key-000000000000:"),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = s
            .send(
                Request::post("/v1/track")
                    .header(header::AUTHORIZATION, auth)
                    .body(Body::from(
                        json!({"userId": "u", "event": "E", "messageId": format!("k{n}")})
                            .to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    let answer = s
        .send(Request::post("/v1/batch").body(Body::from(
            json!({"writeKey": WRITE_KEY, "batch": [{"type": "track", "userId": "u", "event": "E", "messageId": "k2"}]}).to_string(),
        )).unwrap())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let answer = s
        .send(
            Request::post("/v1/track")
                .body(Body::from(
                    json!({"writeKey": WRITE_KEY, "userId": "u", "event": "E", "messageId": "k3"})
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let events = s.admin("GET", "/api/events", Body::empty()).await.json;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["source"], "pos");
    assert!(
        events.iter().all(|e| e.get("writeKey").is_none()),
        "a write key was stored"
    );
}

#[tokio::test]
async fn unknown_or_missing_write_keys_are_refused_and_nothing_is_stored() {
    let s = server().await;
    let body = json!({"userId": "u", "event": "E"}).to_string();
    let answer = s
        .send(
            Request::post("/v1/track")
                .header(header::AUTHORIZATION, basic("wrong:"))
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_write_key");
    let answer = s
        .send(Request::post("/v1/track").body(Body::from(body)).unwrap())
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_write_key");
    let answer = s
        .send(
            Request::post("/v1/batch")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_json");
    let stats = s.stats().await;
    assert_eq!(
        (stats["events"].as_u64(), stats["quarantined"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn retries_are_acknowledged_and_stored_once() {
    let s = server().await;
    let batch = json!({"batch": [
        {"type": "track", "userId": "u", "event": "E", "messageId": "same"},
        {"type": "track", "userId": "u", "event": "E", "messageId": "other"},
    ]})
    .to_string();
    let first = s.track("/v1/batch", batch.clone()).await;
    assert_eq!(
        (
            first.json["accepted"].as_u64(),
            first.json["duplicates"].as_u64()
        ),
        (Some(2), Some(0))
    );
    let retry = s.track("/v1/batch", batch).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(
        (
            retry.json["accepted"].as_u64(),
            retry.json["duplicates"].as_u64()
        ),
        (Some(0), Some(2))
    );
    assert_eq!(s.stats().await["events"], 2);
}

#[tokio::test]
async fn a_batch_keeps_the_good_quarantines_the_bad_and_says_why() {
    let s = server().await;
    let answer = s
        .track("/v1/batch", json!({
            "context": {"touchpoint": "web-shop", "library": {"name": "analytics-python"}},
            "sentAt": "2024-05-01T10:00:00Z",
            "batch": [
                {"type": "track", "userId": "u1", "event": "Viewed", "messageId": "good",
                 "timestamp": "2024-05-01T09:59:00Z"},
                {"type": "track", "event": "Viewed", "messageId": "no-identity"},
                {"type": "track", "userId": "u1", "messageId": "no-event"},
                {"type": "identify", "userId": "u1", "timestamp": "31/12/2024", "messageId": "bad-time"},
                {"type": "fly", "userId": "u1", "messageId": "bad-type"},
                "not an object",
            ]}).to_string())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["accepted"], 1);
    let rejected: Vec<(u64, String)> = answer.json["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "missing_identity".to_string()),
            (2, "missing_event".to_string()),
            (3, "invalid_timestamp".to_string()),
            (4, "unknown_type".to_string()),
            (5, "not_an_object".to_string()),
        ]
    );
    assert_eq!(s.stats().await["quarantined"], 5);

    // The good one got the batch context, a corrected timestamp and a receivedAt.
    let events = s.admin("GET", "/api/events", Body::empty()).await.json;
    let good = &events["events"][0];
    assert_eq!(good["context"]["touchpoint"], "web-shop");
    assert_eq!(good["originalTimestamp"], "2024-05-01T09:59:00Z");
    let received: jiff::Timestamp = good["receivedAt"].as_str().unwrap().parse().unwrap();
    let corrected: jiff::Timestamp = good["timestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        received.duration_since(corrected),
        jiff::SignedDuration::from_secs(60)
    );
}

#[tokio::test]
async fn each_unusable_request_gets_a_precise_error_and_is_quarantined() {
    let s = server().await;
    let answer = s.track("/v1/batch", "{\"batch\": [").await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_json");
    assert!(answer.json["error"]["quarantine_id"].is_i64());

    let answer = s
        .track("/v1/batch", json!({"events": []}).to_string())
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_batch");

    let answer = s.track("/v1/track", vec![0xff, 0xfe, b'{']).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_json");
    assert!(
        answer.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );

    let answer = s
        .track("/v1/track", json!({"event": "E"}).to_string())
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "missing_identity");

    let answer = s
        .track(
            "/v1/track",
            json!({"userId": "u", "event": "E", "timestamp": "yesterday"}).to_string(),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_timestamp");

    let big = json!({"userId": "u", "event": "E", "properties": {"blob": "x".repeat(33 * 1024)}})
        .to_string();
    let answer = s.track("/v1/track", big).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "message_too_large");

    let too_many: Vec<Value> = (0..2501)
        .map(|i| json!({"type": "track", "userId": "u", "event": "E", "messageId": i.to_string()}))
        .collect();
    let answer = s
        .track("/v1/batch", json!({"batch": too_many}).to_string())
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "batch_too_large");
    assert_eq!(answer.json["error"]["quarantined"], 2501);

    let stats = s.stats().await;
    assert_eq!(stats["events"], 0);
    assert_eq!(stats["quarantined"], 7 + 2501 - 1, "{stats}");
    let listed = s
        .admin(
            "GET",
            "/api/quarantine?code=message_too_large",
            Body::empty(),
        )
        .await
        .json;
    assert_eq!(listed["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let s = server().await;
    let body = json!({"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x".repeat(600 * 1024)}}]}).to_string();
    let answer = s.track("/v1/batch", body.clone()).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    // A small gzip body that inflates past the limit is refused too.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body.as_bytes()).unwrap();
    let compressed = encoder.finish().unwrap();
    assert!(compressed.len() < 10_000);
    let answer = s
        .send(
            Request::post("/v1/batch")
                .header(header::AUTHORIZATION, basic(WRITE_KEY))
                .header(header::CONTENT_ENCODING, "gzip")
                .body(Body::from(compressed))
                .unwrap(),
        )
        .await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_bad_gzip_is_refused() {
    let s = server().await;
    let body = json!({"batch": [{"type": "identify", "userId": "u", "traits": {"city": "Roma"}}]})
        .to_string();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.as_bytes()).unwrap();
    let gz = |bytes: Vec<u8>| {
        Request::post("/v1/batch")
            .header(header::AUTHORIZATION, basic(WRITE_KEY))
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(bytes))
            .unwrap()
    };
    let answer = s.send(gz(encoder.finish().unwrap())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["accepted"], 1);
    let answer = s.send(gz(b"definitely not gzip".to_vec())).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_gzip");
    let answer = s
        .send(
            Request::post("/v1/batch")
                .header(header::AUTHORIZATION, basic(WRITE_KEY))
                .header(header::CONTENT_ENCODING, "br")
                .body(Body::from("x"))
                .unwrap(),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_encoding",
    );
}

#[tokio::test]
async fn quarantined_messages_can_be_fixed_and_replayed_once() {
    let s = server().await;
    let answer = s
        .track(
            "/v1/track",
            json!({"event": "Call Received", "messageId": "call-1"}).to_string(),
        )
        .await;
    let id = answer.json["error"]["quarantine_id"].as_i64().unwrap();

    let shown = s
        .admin("GET", &format!("/api/quarantine/{id}"), Body::empty())
        .await;
    assert_eq!(shown.json["code"], "missing_identity");
    assert_eq!(shown.json["payload"]["event"], "Call Received");

    let again = s
        .admin(
            "POST",
            &format!("/api/quarantine/{id}/replay"),
            Body::empty(),
        )
        .await;
    assert_error(&again, StatusCode::UNPROCESSABLE_ENTITY, "still_invalid");

    let mut fixed = shown.json["payload"].clone();
    fixed["userId"] = json!("cust-7");
    let replayed = s
        .admin(
            "POST",
            &format!("/api/quarantine/{id}/replay"),
            json!({"message": fixed}).to_string(),
        )
        .await;
    assert_eq!(replayed.status, StatusCode::OK, "{}", replayed.json);
    assert_eq!(replayed.json["event"]["messageId"], "call-1");

    let twice = s
        .admin(
            "POST",
            &format!("/api/quarantine/{id}/replay"),
            Body::empty(),
        )
        .await;
    assert_error(&twice, StatusCode::CONFLICT, "already_replayed");
    let missing = s
        .admin("POST", "/api/quarantine/999/replay", Body::empty())
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");

    let events = s
        .admin("GET", "/api/events?user_id=cust-7", Body::empty())
        .await
        .json;
    assert_eq!(
        events["events"][0]["type"], "track",
        "the endpoint's type was kept: {events}"
    );
    let stats = s.stats().await;
    assert_eq!(
        (stats["events"].as_u64(), stats["quarantined"].as_u64()),
        (Some(1), Some(0))
    );
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_key() {
    let s = server().await;
    for (auth, code) in [
        (None, "missing_admin_key"),
        (Some("Bearer nope"), "invalid_admin_key"),
        (Some("Basic x"), "missing_admin_key"),
    ] {
        let mut request = Request::get("/api/stats");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let answer = s.send(request.body(Body::empty()).unwrap()).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, code);
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        let answer = s
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    let answer = s
        .send(Request::get("/nowhere").body(Body::empty()).unwrap())
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    let answer = s
        .send(Request::get("/v1/track").body(Body::empty()).unwrap())
        .await;
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn events_are_paged_with_a_cursor_and_filtered() {
    let s = server().await;
    let batch: Vec<Value> = (0..25)
        .map(|i| json!({"type": "track", "userId": if i % 2 == 0 { "even" } else { "odd" }, "event": "E", "messageId": format!("m{i}")}))
        .collect();
    s.track("/v1/batch", json!({"batch": batch}).to_string())
        .await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .admin(
                "GET",
                &format!("/api/events?user_id=even&limit=5&cursor={cursor}"),
                Body::empty(),
            )
            .await
            .json;
        seen.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["messageId"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..25)
            .step_by(2)
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
    );
    let answer = s
        .admin("GET", "/api/events?limit=zero", Body::empty())
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_parameter");
}

#[tokio::test]
async fn files_are_imported_through_the_api_with_a_mapping() {
    let s = server().await;
    let csv = "card;amount;when\nL-1;12,50;01/05/2024 10:00\n;3;01/05/2024 10:05\nL-2;abc;01/05/2024 10:10\n";
    let mapping = "event = \"Order Completed\"\ntimestamp_format = \"%d/%m/%Y %H:%M\"\n[columns]\ncard = \"userId\"\namount = { path = \"properties.revenue\", as = \"number\" }\nwhen = \"timestamp\"\n";
    let boundary = "XBOUNDARYX";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"mapping\"\r\n\r\n{mapping}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"sales.csv\"\r\nContent-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    );
    let answer = s
        .send(
            Request::post("/api/import?source=store-rome-01&format=csv")
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["rows"], 3);
    assert_eq!(answer.json["accepted"], 1);
    let errors: Vec<(u64, &str)> = answer.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, vec![(3, "missing_identity"), (4, "invalid_row")]);
    let events = s
        .admin("GET", "/api/events?user_id=L-1", Body::empty())
        .await
        .json;
    assert_eq!(events["events"][0]["properties"]["revenue"], 12.5);
    assert_eq!(
        events["events"][0]["context"]["touchpoint"],
        "store-rome-01"
    );

    let plain = s
        .admin(
            "POST",
            "/api/import?source=crm&format=jsonl",
            "{\"userId\":\"u1\",\"traits\":{\"email\":\"a@example.com\"}}\n",
        )
        .await;
    assert_eq!(plain.json["accepted"], 1, "{}", plain.json);
    let missing = s.admin("POST", "/api/import?format=csv", "a\n1\n").await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "missing_parameter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_falls_behind_gets_503_with_retry_after() {
    let s = server_with(TestStoreOptions {
        sqlite: SqliteOptions {
            queue_capacity: 1,
            ..Default::default()
        },
        postgres: PgOptions {
            queue_capacity: 1,
            ..Default::default()
        },
    })
    .await;
    let blocker = Blocker::hold(&s.store).await;
    let send = |id: &'static str| {
        let app = s.app.clone();
        tokio::spawn(async move {
            app.oneshot(
                Request::post("/v1/track")
                    .header(header::AUTHORIZATION, basic(WRITE_KEY))
                    .body(Body::from(
                        json!({"userId": "u", "event": "E", "messageId": id}).to_string(),
                    ))
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
        })
    };
    let commits = async || -> u64 {
        let metrics = s
            .send(Request::get("/metrics").body(Body::empty()).unwrap())
            .await;
        metrics
            .json
            .as_str()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("unavoce_event_log_commit_duration_seconds_count "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let commits_before = commits().await;
    let first = send("a");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = send("b");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = s
        .track(
            "/v1/track",
            json!({"userId": "u", "event": "E", "messageId": "c"}).to_string(),
        )
        .await;
    assert_error(&third, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    assert_eq!(third.headers.get(header::RETRY_AFTER).unwrap(), "1");
    // Refused before its body is read: one that is not JSON is not answered 400.
    let unread = s.track("/v1/batch", "{not json".to_string()).await;
    assert_error(&unread, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    let ready = s
        .send(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    blocker.release().await;
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(second.await.unwrap(), StatusCode::OK);
    let metrics = s
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    let text = metrics.json.as_str().unwrap().to_string();
    assert!(text.contains("unavoce_events_accepted_total 2"), "{text}");
    assert!(text.contains("status=\"503\""), "{text}");
    // Both appends may share one commit (group commit) or take one each, depending on
    // whether the writer took the first before the second queued.
    let commits = commits().await - commits_before;
    assert!((1..=2).contains(&commits), "{text}");
}

/// Holds the lock the store's writer needs, so the log's writer stalls: SQLite's write
/// lock, or PostgreSQL's log head row.
enum Blocker {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

impl Blocker {
    async fn hold(store: &TestStore) -> Blocker {
        match (store.sqlite(), store.postgres_url()) {
            (Some(log), _) => {
                unavoce_store::sqlite::prepare_sqlite();
                let blocker = rusqlite::Connection::open(log.path()).unwrap();
                blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
                Blocker::Sqlite(blocker)
            }
            (None, Some(url)) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client
                    .batch_execute("BEGIN; SELECT seq FROM log_head WHERE id = 1 FOR UPDATE")
                    .await
                    .unwrap();
                Blocker::Postgres(client)
            }
            (None, None) => unreachable!("a store is SQLite or PostgreSQL"),
        }
    }

    async fn release(self) {
        match self {
            Blocker::Sqlite(blocker) => blocker.execute_batch("COMMIT").unwrap(),
            Blocker::Postgres(client) => client.batch_execute("COMMIT").await.unwrap(),
        }
    }
}

#[tokio::test]
async fn the_context_card_and_timeline_of_a_customer_with_an_open_case() {
    let s = server().await;
    let day = |d: u32, h: u32| format!("2024-05-{d:02}T{h:02}:00:00Z");
    let batch = json!({"batch": [
        {"type": "identify", "userId": "giulia", "timestamp": day(1, 8),
         "traits": {"firstName": "Giulia", "email": "giulia@example.com", "phone": "333 123 4567"},
         "context": {"touchpoint": "web-shop"}},
        {"type": "track", "userId": "giulia", "event": "Consent Given", "timestamp": day(1, 8),
         "properties": {"purpose": "promotional"}, "context": {"touchpoint": "web-shop"}},
        {"type": "track", "anonymousId": "call-1", "event": "Call Received", "timestamp": day(2, 9),
         "traits": {"phone": "+39 333 1234567"}, "context": {"touchpoint": "call-center-milan", "channel": "phone"}},
        {"type": "track", "anonymousId": "call-1", "event": "Case Opened", "timestamp": day(2, 9),
         "properties": {"case_id": "C-1", "subject": "Internet outage"},
         "context": {"touchpoint": "call-center-milan", "channel": "phone"}},
        {"type": "track", "userId": "giulia", "event": "Case Updated", "timestamp": day(3, 10),
         "properties": {"case_id": "C-1", "note": "still offline"}, "context": {"touchpoint": "live-chat", "channel": "chat"}},
    ]});
    let answer = s.track("/v1/batch", batch.to_string()).await;
    assert_eq!(answer.json["accepted"], 5, "{}", answer.json);

    let profile = s
        .admin(
            "GET",
            "/api/profiles/lookup?email=giulia@example.com",
            Body::empty(),
        )
        .await
        .json;
    let id = profile["id"].as_str().unwrap();
    let card = s
        .admin("GET", &format!("/api/profiles/{id}/context"), Body::empty())
        .await
        .json;
    assert_eq!(card["name"], "Giulia");
    assert_eq!(card["open_cases"][0]["id"], "C-1");
    assert_eq!(
        card["open_cases"][0]["channels"],
        json!(["phone", "chat"]),
        "the call, found by phone, is the same person"
    );
    assert_eq!(card["next_best_action"]["action"], "resolve_case");
    assert_eq!(card["consents"][0]["purpose"], "promotional");
    assert_eq!(card["active_journeys"], json!([]));

    let timeline = s
        .admin(
            "GET",
            &format!("/api/profiles/{id}/timeline?limit=2"),
            Body::empty(),
        )
        .await
        .json;
    assert_eq!(timeline["total"], 5);
    assert_eq!(
        timeline["timeline"][0]["name"], "Case Updated",
        "newest first"
    );
    assert_eq!(timeline["timeline"][0]["channel"], "chat");
    let rest = s
        .admin(
            "GET",
            &format!(
                "/api/profiles/{id}/timeline?cursor={}",
                timeline["next_cursor"].as_str().unwrap()
            ),
            Body::empty(),
        )
        .await
        .json;
    assert_eq!(rest["timeline"].as_array().unwrap().len(), 3);
    let missing = s
        .admin("GET", "/api/profiles/p-999/context", Body::empty())
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn touchpoints_are_managed_through_the_api_and_used_at_once() {
    let s = server().await;
    let kiosk = json!({"id": "kiosk-termini", "name": "Kiosk, Roma Termini", "channel": "kiosk",
        "department": "retail", "needs": ["information", "purchase"]});
    let created = s.admin("POST", "/api/touchpoints", kiosk.to_string()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    assert_eq!(created.json["presence"], "physical", "a kiosk is a place");
    assert_eq!(created.json["defined_in"], "api");
    let again = s.admin("POST", "/api/touchpoints", kiosk.to_string()).await;
    assert_error(&again, StatusCode::CONFLICT, "already_exists");
    let bad = s
        .admin(
            "POST",
            "/api/touchpoints",
            json!({"id": "Bad Id", "name": "x", "channel": "web", "department": "d"}).to_string(),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_touchpoint");
    let pigeon = s
        .admin(
            "POST",
            "/api/touchpoints",
            json!({"id": "p", "name": "x", "channel": "pigeon", "department": "d"}).to_string(),
        )
        .await;
    assert_error(&pigeon, StatusCode::BAD_REQUEST, "invalid_touchpoint");

    // An event naming the new touchpoint gets its channel without declaring one.
    s.track("/v1/track", json!({"userId": "u", "event": "Ticket Printed", "context": {"touchpoint": "kiosk-termini"}}).to_string()).await;
    let events = s
        .admin("GET", "/api/events?user_id=u", Body::empty())
        .await
        .json;
    assert_eq!(events["events"][0]["context"]["channel"], "kiosk");

    let mut retired = kiosk.clone();
    retired["status"] = json!("retired");
    let updated = s
        .admin("PUT", "/api/touchpoints/kiosk-termini", retired.to_string())
        .await;
    assert_eq!(updated.json["status"], "retired", "{}", updated.json);
    let mismatch = s
        .admin("PUT", "/api/touchpoints/other", retired.to_string())
        .await;
    assert_error(&mismatch, StatusCode::BAD_REQUEST, "invalid_touchpoint");
    let listed = s.admin("GET", "/api/touchpoints", Body::empty()).await.json;
    assert_eq!(listed["touchpoints"].as_array().unwrap().len(), 1);
    let deleted = s
        .admin("DELETE", "/api/touchpoints/kiosk-termini", Body::empty())
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = s
        .admin("GET", "/api/touchpoints/kiosk-termini", Body::empty())
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
}
