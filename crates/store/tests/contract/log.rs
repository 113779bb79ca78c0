//! The event log's contract, on the store `UNAVOCE_TEST_STORE` names.

use serde_json::json;
use unavoce_core::segment::{IntakeContext, normalise};
use unavoce_store::*;
use unavoce_testkit::store::TestStore;

use crate::{event, quarantined};

#[tokio::test]
async fn append_deduplicates_by_message_id_and_survives_reopen() {
    let log = TestStore::open().await;
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

    let log = log.reopen().await;
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
    let log = TestStore::open().await;
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
    let log = TestStore::open().await;
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

#[tokio::test]
async fn events_by_position_settings_and_the_committed_watch() {
    let log = TestStore::open().await;
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
    let log = log.reopen().await;
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

#[tokio::test]
async fn events_come_back_as_as_stored_says() {
    let log = TestStore::open().await;
    let precise = normalise(
        json!({"type": "track", "userId": "u", "event": "Tapped", "messageId": "ns",
            "timestamp": "2024-05-01T10:00:00.123456789Z"})
        .as_object()
        .unwrap()
        .clone(),
        &IntakeContext::new("2024-05-01T10:00:01.987654321Z".parse().unwrap(), "test"),
        || "x".into(),
    )
    .unwrap();
    log.append(&AppendBatch {
        events: vec![precise.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    let read = log.events_at(vec![1]).await.unwrap();
    assert_eq!(
        read[0].event,
        unavoce_store::as_stored(precise),
        "the log gives events back as `as_stored` says"
    );
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_made_at_once_by_several_is_the_one_stored_first() {
    let log = TestStore::open().await;
    let first = log
        .setting_or_insert("privacy.suppression_key", json!("aa"))
        .await
        .unwrap();
    assert_eq!(first, json!("aa"));
    let second = log
        .setting_or_insert("privacy.suppression_key", json!("bb"))
        .await
        .unwrap();
    assert_eq!(second, json!("aa"), "the stored one is kept");
    // Many at once: every one gets the same value, the one stored.
    let store = log.store();
    let racing: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .setting_or_insert("engagement.link_secret", json!(format!("s{i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut got = Vec::new();
    for task in racing {
        got.push(task.await.unwrap());
    }
    assert!(got.windows(2).all(|w| w[0] == w[1]), "{got:?}");
    assert_eq!(
        log.setting("engagement.link_secret").await.unwrap(),
        Some(got[0].clone())
    );
}
