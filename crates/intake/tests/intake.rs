//! The intake against a real store (the kind `UNAVOCE_TEST_STORE` names).

use std::sync::Arc;

use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};
use unavoce_core::import::{CompiledMapping, Mapping};
use unavoce_core::segment::RejectionCode;
use unavoce_intake::*;
use unavoce_store::{EventQuery, QuarantineQuery, QuarantineStatus};
use unavoce_testkit::store::TestStore;

/// An intake over a fresh store (of the kind `UNAVOCE_TEST_STORE` names).
async fn intake() -> (TestStore, Intake) {
    let store = TestStore::open().await;
    let intake = Intake::new(store.store());
    (store, intake)
}

fn submission<'a>(
    items: Vec<Item<'a>>,
    envelope: Option<&'a Map<String, Value>>,
) -> Submission<'a> {
    Submission {
        source: "web",
        received_at: "2024-05-01T10:00:00Z".parse().unwrap(),
        endpoint_type: None,
        default_touchpoint: None,
        envelope,
        items,
    }
}

fn raw(text: &str) -> Item<'_> {
    Item {
        body: ItemBody::Raw(text),
        origin: json!({"endpoint": "/v1/batch"}),
    }
}

#[tokio::test]
async fn one_bad_message_never_costs_the_good_ones() {
    let (_store, intake) = intake().await;
    let envelope = json!({"context": {"touchpoint": "web-shop"}, "sentAt": "2024-05-01T10:00:00Z"});
    let envelope = envelope.as_object().unwrap();
    let big = format!(
        r#"{{"type":"track","userId":"u","event":"Big","properties":{{"blob":"{}"}}}}"#,
        "x".repeat(40_000)
    );
    let items = vec![
        raw(r#"{"type":"track","userId":"u1","event":"Viewed","messageId":"a"}"#),
        raw(r#"{"type":"track","event":"Viewed","messageId":"b"}"#),
        raw(r#"[1,2]"#),
        raw(&big),
        raw(r#"{"type":"identify","userId":"u2","messageId":"c","timestamp":"soon"}"#),
        raw(r#"{"type":"track","userId":"u1","event":"Viewed","messageId":"a"}"#),
    ];
    let report = intake
        .ingest(submission(items, Some(envelope)))
        .await
        .unwrap();
    assert_eq!(report.accepted, 1);
    assert_eq!(report.duplicates, 1);
    let codes: Vec<_> = report.rejected.iter().map(|r| (r.index, r.code)).collect();
    assert_eq!(
        codes,
        vec![
            (1, RejectionCode::MissingIdentity),
            (2, RejectionCode::NotAnObject),
            (3, RejectionCode::MessageTooLarge),
            (4, RejectionCode::InvalidTimestamp),
        ]
    );

    // The quarantined copy carries the batch context, so it can be replayed alone.
    let q = intake
        .log()
        .quarantine_entry(report.rejected[0].quarantine_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    let payload: Value = serde_json::from_str(&q.payload).unwrap();
    assert_eq!(payload["context"]["touchpoint"], "web-shop");
    assert_eq!(q.message_id.as_deref(), Some("b"));
    assert_eq!(q.code, "missing_identity");
    let stored = intake
        .log()
        .events(EventQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        stored.events[0].event.touchpoint.as_deref(),
        Some("web-shop")
    );
}

#[tokio::test]
async fn a_fixed_message_is_replayed_with_its_original_reception_time() {
    let (_store, intake) = intake().await;
    let report = intake
        .ingest(submission(
            vec![raw(r#"{"type":"track","event":"Viewed","messageId":"b"}"#)],
            None,
        ))
        .await
        .unwrap();
    let id = report.rejected[0].quarantine_id.unwrap();
    let now = "2024-06-01T00:00:00Z".parse().unwrap();

    // Replaying as stored fails again and leaves it pending.
    let err = intake.replay(id, None, now).await.unwrap_err();
    assert!(
        matches!(err, IntakeError::StillInvalid(ref r) if r.code == RejectionCode::MissingIdentity)
    );

    let fixed = json!({"type":"track","event":"Viewed","messageId":"b","userId":"u7"});
    let outcome = intake
        .replay(id, Some(fixed.as_object().unwrap().clone()), now)
        .await
        .unwrap();
    assert_eq!(outcome.message_id, "b");
    assert!(outcome.seq.is_some());
    let page = intake
        .log()
        .events(EventQuery {
            user_id: Some("u7".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.events[0].event.received_at.to_string(),
        "2024-05-01T10:00:00Z"
    );
    let pending = intake
        .log()
        .quarantine(QuarantineQuery {
            status: Some(QuarantineStatus::Pending),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(pending.entries.is_empty());
}

fn options(format: FileFormat, mapping: Mapping) -> ImportOptions {
    ImportOptions {
        source: "store-rome-01".into(),
        format,
        mapping: CompiledMapping::new(mapping, TimeZone::UTC).unwrap(),
        rows_per_append: 2,
        file_name: "sales.csv".into(),
    }
}

#[tokio::test]
async fn csv_import_reports_bad_rows_by_line_and_is_idempotent() {
    let (_store, intake) = intake().await;
    let csv = "\u{feff}userId,event,properties.total,timestamp\n\
               u1,Order Completed,19.90,2024-05-01T09:00:00Z\n\
               ,Order Completed,5,2024-05-01T09:05:00Z\n\
               \n\
               u2,Order Completed,7,not a date\n\
               u3,Order Completed\n\
               u4,Order Completed,12,2024-05-01T09:30:00Z\n";
    let mut last = ImportProgress::default();
    let report = intake
        .import(
            csv.as_bytes(),
            &options(FileFormat::Csv, Mapping::default()),
            |p| last = p,
        )
        .await
        .unwrap();
    assert_eq!(report.rows, 5);
    assert_eq!(report.accepted, 2);
    let lines: Vec<_> = report.errors.iter().map(|e| (e.line, e.code)).collect();
    assert_eq!(
        lines,
        vec![
            (3, RejectionCode::MissingIdentity),
            (5, RejectionCode::InvalidRow),
            (6, RejectionCode::InvalidRow),
        ]
    );
    assert!(
        report.errors[1].message.contains("timestamp"),
        "{}",
        report.errors[1].message
    );
    assert!(
        report.errors[2].message.contains("2 fields"),
        "{}",
        report.errors[2].message
    );
    assert_eq!(last.rows, 5);
    assert_eq!(last.bytes, csv.len() as u64);

    let page = intake
        .log()
        .events(EventQuery {
            user_id: Some("u1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let event = &page.events[0].event;
    assert_eq!(event.touchpoint.as_deref(), Some("store-rome-01"));
    assert_eq!(event.message["properties"]["total"], json!(19.9));

    // The same file again: every good row is recognised, nothing stored twice.
    let again = intake
        .import(
            csv.as_bytes(),
            &options(FileFormat::Csv, Mapping::default()),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 2));
}

#[tokio::test]
async fn jsonl_import_with_a_mapping() {
    let (_store, intake) = intake().await;
    let jsonl = r#"{"phone":"+39 333 1234567","reason":"outage","at":"2024-05-01T08:00:00Z"}
not json
{"reason":"billing","at":"2024-05-01T08:10:00Z"}
[1]
{"phone":"+39 333 7654321","reason":"billing","at":"2024-05-01T08:20:00Z"}
"#;
    let mapping: Mapping = serde_json::from_value(json!({
        "type": "track", "event": "Call Received", "channel": "phone",
        "columns": {"phone": "anonymousId", "reason": "properties.reason", "at": "timestamp"}
    }))
    .unwrap();
    let report = intake
        .import(
            jsonl.as_bytes(),
            &options(FileFormat::Jsonl, mapping),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!((report.rows, report.accepted), (5, 2));
    let lines: Vec<_> = report.errors.iter().map(|e| (e.line, e.code)).collect();
    assert_eq!(
        lines,
        vec![
            (2, RejectionCode::InvalidJson),
            (3, RejectionCode::MissingIdentity),
            (4, RejectionCode::NotAnObject),
        ]
    );
    let page = intake
        .log()
        .events(EventQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events[0].event.channel.as_deref(), Some("phone"));
    assert_eq!(page.events[0].event.name.as_deref(), Some("Call Received"));
    let q = intake
        .log()
        .quarantine_entry(report.errors[0].quarantine_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.payload, "not json");
    assert_eq!(q.origin["line"], 2);
}

#[tokio::test]
async fn semicolon_separated_files_are_recognised() {
    let (_store, intake) = intake().await;
    let csv = "userId;event;properties.total\nu1;Order Completed;19,90\n";
    let mapping: Mapping = serde_json::from_value(json!({
        "columns": {"properties.total": {"path": "properties.total", "as": "number"}}
    }))
    .unwrap();
    let report = intake
        .import(csv.as_bytes(), &options(FileFormat::Csv, mapping), |_| {})
        .await
        .unwrap();
    assert_eq!((report.accepted, report.errors.len()), (1, 0), "{report:?}");
    let page = intake
        .log()
        .events(EventQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.events[0].event.message["properties"]["total"],
        json!(19.9)
    );
}

#[tokio::test]
async fn a_message_carrying_a_suppressed_identifier_is_refused_and_kept_nowhere() {
    use unavoce_core::identity::IdentityRules;
    use unavoce_core::suppression::suppression_hash;
    let store = TestStore::open().await;
    let log = store.store();
    let hash = suppression_hash(b"secret", "email", "erased@example.com");
    let suppressions = Arc::new(Suppressions::new(
        b"secret".to_vec(),
        IdentityRules::default_rules(),
        [hash.clone()],
    ));
    let intake = Intake::new(log.clone()).with_suppressions(suppressions.clone());
    let items = vec![
        raw(
            r#"{"type":"identify","userId":"new-1","traits":{"email":"Erased@Example.com"},"messageId":"a"}"#,
        ),
        raw(r#"{"type":"track","userId":"u2","event":"Viewed","messageId":"b"}"#),
    ];
    let report = intake.ingest(submission(items, None)).await.unwrap();
    assert_eq!(report.accepted, 1);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].index, 0);
    assert_eq!(report.rejected[0].code, RejectionCode::SubjectErased);
    assert_eq!(report.rejected[0].quarantine_id, None);
    let quarantined = log
        .quarantine(QuarantineQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        quarantined.entries.is_empty(),
        "not kept in the quarantine either"
    );

    suppressions.lift(&hash);
    let again = vec![raw(
        r#"{"type":"identify","userId":"new-1","traits":{"email":"erased@example.com"},"messageId":"a"}"#,
    )];
    let report = intake.ingest(submission(again, None)).await.unwrap();
    assert_eq!(report.accepted, 1, "taken once the suppression is lifted");
}
