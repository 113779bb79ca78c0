use std::time::Duration;

use serde_json::json;
use unavoce_core::segment::{IntakeContext, normalise};

use super::*;

fn event(id: &str, user: &str) -> Event {
    let message = json!({"type": "track", "event": "Viewed", "userId": user, "messageId": id});
    normalise(
        message.as_object().unwrap().clone(),
        &IntakeContext::new("2024-05-01T10:00:00Z".parse().unwrap(), "test"),
        || unreachable!(),
    )
    .unwrap()
}

fn quarantined(reason: &str) -> NewQuarantineEntry {
    NewQuarantineEntry {
        received_at: "2024-05-01T10:00:00Z".parse().unwrap(),
        source: "test".into(),
        code: "missing_identity".into(),
        reason: reason.into(),
        message_id: Some("q-1".into()),
        payload: r#"{"type":"track","event":"Viewed"}"#.into(),
        origin: json!({"endpoint": "batch", "index": 1}),
    }
}

#[tokio::test]
async fn append_deduplicates_by_message_id_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    let outcome = log
        .append(&AppendBatch {
            events: vec![event("m1", "u1"), event("m2", "u2"), event("m1", "u1")],
            quarantine: vec![quarantined("no identity")],
        })
        .await
        .unwrap();
    assert!(matches!(outcome.events[0], Appended::Stored { .. }));
    assert!(matches!(outcome.events[1], Appended::Stored { .. }));
    assert_eq!(outcome.events[2], Appended::Duplicate);
    assert_eq!(outcome.quarantine_ids.len(), 1);
    let again = log
        .append(&AppendBatch {
            events: vec![event("m2", "u2")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(again.events, vec![Appended::Duplicate]);
    log.close().await;

    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    let stats = log.stats().await.unwrap();
    assert_eq!(
        stats,
        LogStats {
            events: 2,
            duplicates: 2,
            quarantined: 1,
            quarantined_total: 1
        }
    );
    let page = log
        .events(EventQuery {
            user_id: Some("u2".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].event, event("m2", "u2"));
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn events_page_with_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    let events = (0..25).map(|i| event(&format!("m{i}"), "u")).collect();
    log.append(&AppendBatch {
        events,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = log
            .events(EventQuery {
                after_seq: cursor,
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(page.events.into_iter().map(|e| e.event.message_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (0..25).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn replay_moves_an_entry_into_the_log_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    let outcome = log
        .append(&AppendBatch {
            quarantine: vec![quarantined("no identity")],
            ..Default::default()
        })
        .await
        .unwrap();
    let id = outcome.quarantine_ids[0];
    let at = "2024-05-02T00:00:00Z".parse().unwrap();
    let appended = log
        .replay_quarantined(id, event("q-1", "u9"), at)
        .await
        .unwrap();
    let Appended::Stored { seq } = appended else {
        panic!("expected a stored event, got {appended:?}")
    };
    let entry = log.quarantine_entry(id).await.unwrap().unwrap();
    assert_eq!(entry.status, QuarantineStatus::Replayed);
    assert_eq!(entry.replayed_seq, Some(seq));
    assert_eq!(entry.origin, json!({"endpoint": "batch", "index": 1}));
    assert_eq!(
        log.replay_quarantined(id, event("q-1", "u9"), at).await,
        Err(StoreError::AlreadyReplayed { id, seq })
    );
    assert_eq!(
        log.replay_quarantined(999, event("q-2", "u9"), at).await,
        Err(StoreError::QuarantineEntryNotFound(999))
    );
    let stats = log.stats().await.unwrap();
    assert_eq!(
        (stats.events, stats.quarantined, stats.quarantined_total),
        (1, 0, 1)
    );
    let pending = log
        .quarantine(QuarantineQuery {
            status: Some(QuarantineStatus::Pending),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(pending.entries.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_overloaded_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        SqliteLog::open(
            dir.path(),
            SqliteOptions {
                queue_capacity: 1,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    // Another connection holds the write lock, so the writer stalls on its first commit.
    let blocker = Connection::open(log.path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let first = tokio::spawn({
        let log = log.clone();
        async move {
            log.append(&AppendBatch {
                events: vec![event("a", "u")],
                ..Default::default()
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await; // the writer has taken it
    let second = tokio::spawn({
        let log = log.clone();
        async move {
            log.append(&AppendBatch {
                events: vec![event("b", "u")],
                ..Default::default()
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await; // it waits in the queue
    assert!(!log.is_ready());
    let third = log
        .append(&AppendBatch {
            events: vec![event("c", "u")],
            ..Default::default()
        })
        .await;
    assert_eq!(third, Err(StoreError::Overloaded));

    blocker.execute_batch("COMMIT").unwrap();
    assert!(first.await.unwrap().is_ok());
    assert!(second.await.unwrap().is_ok());
    assert!(log.is_ready());
    assert_eq!(log.stats().await.unwrap().events, 2);
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("events.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SqliteLog::open(dir.path(), SqliteOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, OpenError::TooNew { found: 99, .. }), "{err}");
}

#[tokio::test]
async fn events_by_position_settings_and_the_committed_watch() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    let mut committed = log.committed();
    assert_eq!(*committed.borrow_and_update(), 0);
    let outcome = log
        .append(&AppendBatch {
            events: (0..5).map(|i| event(&format!("m{i}"), "u")).collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(committed.has_changed().unwrap());
    assert_eq!(*committed.borrow_and_update(), 5);
    assert!(matches!(outcome.events[4], Appended::Stored { seq: 5 }));

    let picked = log.events_at(vec![4, 2, 99, 2]).await.unwrap();
    let ids: Vec<_> = picked
        .iter()
        .map(|e| (e.seq, e.event.message_id.as_str()))
        .collect();
    assert_eq!(ids, vec![(2, "m1"), (4, "m3")]);

    assert_eq!(log.setting("identity.unmerge_rules").await.unwrap(), None);
    log.put_setting("identity.unmerge_rules", json!([{"a": 1}]))
        .await
        .unwrap();
    log.put_setting("identity.unmerge_rules", json!([{"a": 2}]))
        .await
        .unwrap();
    log.close().await;
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    assert_eq!(
        log.setting("identity.unmerge_rules").await.unwrap(),
        Some(json!([{"a": 2}]))
    );
    assert_eq!(
        *log.committed().borrow(),
        5,
        "the watch starts at the newest event"
    );
}
