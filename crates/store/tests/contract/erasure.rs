//! The erasure contract, on the store `UNAVOCE_TEST_STORE` names.

use jiff::Timestamp;
use serde_json::json;
use unavoce_core::identity::ProfileId;
use unavoce_core::policy::Outcome;
use unavoce_core::segment::{IntakeContext, normalise};
use unavoce_core::{Event, EventType};
use unavoce_store::*;
use unavoce_testkit::store::{TestStore, TestStoreOptions};

use crate::{event, quarantined, sent_by};

/// The person erased: distinctive, so their bytes can be looked for.
const ERASED_EMAIL: &str = "erase-me-0xC0FFEE@example.com";
const ERASED_USER: &str = "erase-me-user-0xC0FFEE";
const ERASED_ANONYMOUS: &str = "erase-me-anon-0xC0FFEE";

fn at() -> Timestamp {
    "2024-05-01T10:00:00Z".parse().unwrap()
}

/// An identify call of `user` with `email` in its traits.
fn identified(id: &str, user: &str, email: &str) -> Event {
    normalise(
        json!({"type": "identify", "userId": user, "messageId": id, "traits": {"email": email}})
            .as_object()
            .unwrap()
            .clone(),
        &IntakeContext::new(at(), "test"),
        || unreachable!(),
    )
    .unwrap()
}

/// The files of the SQLite store's folder that hold any of `needles`, byte for byte,
/// once its WAL is truncated after every erasure so far; none for another store (what
/// PostgreSQL keeps of removed rows is in `unavoce-store-postgres`'s erasure docs).
async fn files_holding(log: &TestStore, needles: &[&str]) -> Vec<String> {
    let Some(sqlite) = log.sqlite() else {
        return Vec::new();
    };
    sqlite.wal_truncated().await;
    let folder = sqlite.path().parent().unwrap();
    let mut found = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        files += 1;
        for needle in needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!("{} holds {needle}", path.display()));
            }
        }
    }
    assert!(files > 0, "the data folder has files");
    found
}

/// Every position of `query`'s events, read `limit` to a page.
async fn seqs_of(log: &TestStore, mut query: EventQuery) -> Vec<i64> {
    let mut seqs = Vec::new();
    loop {
        let page = log.events(query.clone()).await.unwrap();
        seqs.extend(page.events.iter().map(|e| e.seq));
        match page.next_cursor {
            Some(cursor) => query.after_seq = Some(cursor),
            None => return seqs,
        }
    }
}

/// Every position in the log, one to a page.
async fn every_seq(log: &TestStore) -> Vec<i64> {
    let query = EventQuery {
        limit: 1,
        ..Default::default()
    };
    seqs_of(log, query).await
}

/// Every position of `user`'s events, two to a page.
async fn pages_of(log: &TestStore, user: &str) -> Vec<i64> {
    let query = EventQuery {
        user_id: Some(user.into()),
        limit: 2,
        ..Default::default()
    };
    seqs_of(log, query).await
}

/// The e-mail address a row of `profile` holds: the erased person's for p-1 and p-3.
fn email_of(profile: i64) -> &'static str {
    match profile {
        1 | 3 => ERASED_EMAIL,
        _ => "kept@example.com",
    }
}

fn a_decision(profile: i64, channel: &str, outcome: Outcome) -> NewDecision {
    NewDecision {
        profile_id: ProfileId(profile),
        message: format!("offer for {}", email_of(profile)),
        purpose: "promotional".into(),
        channel: channel.into(),
        journey: Some("welcome".into()),
        broadcast: None,
        decided_at: at(),
        outcome,
        send_at: Some(at()),
        reasons: json!([{"code": "consent", "detail": email_of(profile)}]),
    }
}

fn a_run(profile: i64) -> JourneyRun {
    JourneyRun {
        key: format!("welcome:p-{profile}:1"),
        journey: "welcome".into(),
        profile_id: ProfileId(profile),
        entered_at: at(),
        control: false,
        status: RunStatus::Active,
        step: 1,
        wake_at: None,
        waiting_for: None,
        blocked: false,
        watching: Some(email_of(profile).into()),
        fallbacks: Vec::new(),
        exit_reason: None,
        converted_at: None,
        updated_at: at(),
        version: 3,
    }
}

fn a_suppression(hash: &str, kind: &str, at: &str) -> Suppression {
    Suppression {
        hash: hash.into(),
        kind: kind.into(),
        at: at.parse().unwrap(),
    }
}

#[tokio::test]
async fn an_erasure_removes_a_person_to_the_last_byte_and_keeps_everyone_else() {
    // A small identifier index chunk on SQLite: the person's events are found both in
    // the index and in its unindexed tail.
    let mut options = TestStoreOptions::default();
    options.sqlite.identifier_index_chunk = 3;
    let log = TestStore::open_with(options).await;
    // seq 1..=5: the person's at 1, 3 and 5 (the newest), someone else's at 2 and 4.
    log.append(&AppendBatch {
        events: vec![
            identified("m1", ERASED_USER, ERASED_EMAIL),
            event("m2", "u2"),
            sent_by("m3", Some(ERASED_USER), Some(ERASED_ANONYMOUS)),
        ],
        quarantine: vec![
            NewQuarantineEntry {
                payload: format!(r#"{{"type":"identify","traits":{{"email":"{ERASED_EMAIL}"}}}}"#),
                ..quarantined("no identity")
            },
            quarantined("no identity either"),
        ],
    })
    .await
    .unwrap();
    log.append(&AppendBatch {
        events: vec![event("m4", "u2"), event("m5", ERASED_USER)],
        ..Default::default()
    })
    .await
    .unwrap();

    // Their decisions, under their profile and one merged into it (p-3), and a run.
    log.save_runs(
        vec![a_run(1), a_run(2)],
        vec![
            a_decision(1, "email", Outcome::Send),
            a_decision(1, "sms", Outcome::Send),
            a_decision(1, "push", Outcome::Suppress),
        ],
    )
    .await
    .unwrap();
    log.record_decisions(vec![
        a_decision(3, "email", Outcome::Hold),
        a_decision(2, "email", Outcome::Send),
    ])
    .await
    .unwrap();
    let sent = log.claim("sms", at(), 10).await.unwrap();
    log.settle(vec![Settlement::Sent {
        id: sent[0].id,
        provider_message_id: Some("SM-1".into()),
        at: at(),
    }])
    .await
    .unwrap();

    let erasure = Erasure {
        seqs: vec![1, 3, 5],
        profile_ids: vec![ProfileId(1), ProfileId(3)],
        identifier_values: vec![
            ERASED_USER.into(),
            ERASED_ANONYMOUS.into(),
            ERASED_EMAIL.to_uppercase(),
            "u".into(), // too short to look for
        ],
        suppress: vec![
            a_suppression("h-email", "email", "2024-06-01T00:00:00Z"),
            a_suppression("h-user", "userId", "2024-06-01T00:00:00Z"),
        ],
    };
    let receipt = log.erase(erasure).await.unwrap();
    assert_eq!(
        receipt,
        ErasureReceipt {
            events: 3,
            quarantined: 1,
            decisions: 4,
            outbox_entries: 3,
            cancelled: 2,
            journey_runs: 1,
            suppressed: 2,
        }
    );
    let erased = [ERASED_EMAIL, ERASED_USER, ERASED_ANONYMOUS];
    assert_eq!(
        files_holding(&log, &erased).await,
        Vec::<String>::new(),
        "nothing of them in the database, its WAL or anything else, once erased"
    );

    // Everyone else is still there, by identifier, by paging and by position.
    assert_eq!(pages_of(&log, "u2").await, [2, 4]);
    assert!(pages_of(&log, ERASED_USER).await.is_empty());
    assert_eq!(every_seq(&log).await, [2, 4]);
    let at_positions = log.events_at((1..=5).collect()).await.unwrap();
    assert_eq!(
        at_positions.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 4]
    );
    let stats = log.stats().await.unwrap();
    assert_eq!((stats.events, stats.quarantined), (2, 1));
    let left = log.quarantine(QuarantineQuery {
        limit: 10,
        ..Default::default()
    });
    let left = left.await.unwrap().entries;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].reason, "no identity either");

    // The newest position stays taken: the next event comes after it.
    assert_eq!(*log.committed().borrow(), 5);
    let next = log
        .append(&AppendBatch {
            events: vec![event("m6", "u2")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.events, [Appended::Stored { seq: 6 }]);
    assert_eq!(*log.committed().borrow(), 6);
    assert_eq!(pages_of(&log, "u2").await, [2, 4, 6]);

    // Their decisions, messages and runs are gone; the other person's stay.
    let decisions = |profile: i64| DecisionQuery {
        profile_ids: vec![ProfileId(profile)],
        limit: 10,
        ..Default::default()
    };
    let entries = |profile: i64| OutboxQuery {
        profile_ids: vec![ProfileId(profile)],
        limit: 10,
        ..Default::default()
    };
    let runs = |profile: i64| RunQuery {
        profile_id: Some(ProfileId(profile)),
        limit: 10,
        ..Default::default()
    };
    for (profile, kept) in [(1, 0), (3, 0), (2, 1)] {
        assert_eq!(log.decisions(decisions(profile)).await.unwrap().len(), kept);
        assert_eq!(log.outbox(entries(profile)).await.unwrap().len(), kept);
    }
    assert!(log.runs(runs(1)).await.unwrap().is_empty());
    assert_eq!(log.runs(runs(2)).await.unwrap(), [a_run(2)]);

    // Suppressions: listed by hash, an existing one kept as it was, lifted once.
    let again = Erasure {
        suppress: vec![a_suppression("h-email", "email", "2024-07-01T00:00:00Z")],
        ..Default::default()
    };
    assert_eq!(log.erase(again).await.unwrap().suppressed, 0);
    assert_eq!(
        log.suppressions().await.unwrap(),
        [
            a_suppression("h-email", "email", "2024-06-01T00:00:00Z"),
            a_suppression("h-user", "userId", "2024-06-01T00:00:00Z"),
        ]
    );
    assert!(log.lift_suppression("h-user").await.unwrap());
    assert!(!log.lift_suppression("h-user").await.unwrap());
    assert_eq!(log.suppressions().await.unwrap().len(), 1);

    log.close().await;
    assert_eq!(
        files_holding(&log, &erased).await,
        Vec::<String>::new(),
        "nothing of them in any file of the data folder after closing"
    );
}

#[tokio::test]
async fn an_erasure_finds_identifiers_in_quarantined_payloads_as_json_writes_them() {
    let log = TestStore::open().await;
    let quoted = r#"o"brien\home@example.com"#;
    let payloads = [
        // As JSON writes it inside a string, in another case.
        r#"{"traits":{"email":"O\"BRIEN\\HOME@example.com"}}"#.to_string(),
        // As it is, in text that is not JSON.
        format!("email={quoted}&x=1"),
        // Someone else.
        r#"{"traits":{"email":"obrien@example.com"}}"#.to_string(),
        // A value too short to look for is not looked for.
        r#"{"userId":"ab"}"#.to_string(),
    ];
    let outcome = log
        .append(&AppendBatch {
            events: vec![event("m1", "u1")],
            quarantine: payloads
                .iter()
                .map(|payload| NewQuarantineEntry {
                    payload: payload.clone(),
                    ..quarantined("no identity")
                })
                .collect(),
        })
        .await
        .unwrap();
    // The first is replayed: removing it leaves the pending count as it was.
    log.replay_quarantined(outcome.quarantine_ids[0], event("q-1", "u9"), at())
        .await
        .unwrap();
    assert_eq!(log.stats().await.unwrap().quarantined, 3);

    let erasure = Erasure {
        identifier_values: vec![quoted.into(), "ab".into()],
        ..Default::default()
    };
    let receipt = log.erase(erasure).await.unwrap();
    assert_eq!(
        receipt,
        ErasureReceipt {
            quarantined: 2,
            ..Default::default()
        }
    );
    let left: Vec<_> = log
        .quarantine(QuarantineQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(left, payloads[2..]);
    let stats = log.stats().await.unwrap();
    assert_eq!(
        (stats.events, stats.quarantined, stats.quarantined_total),
        (2, 2, 4)
    );

    // Erasing what is no longer there removes nothing and counts nothing.
    let seqs = Erasure {
        seqs: vec![1, 1, 99],
        profile_ids: vec![ProfileId(7)],
        ..Default::default()
    };
    assert_eq!(
        log.erase(seqs).await.unwrap().events,
        1,
        "each position once"
    );
    let nothing = Erasure {
        seqs: vec![1],
        ..Default::default()
    };
    assert_eq!(log.erase(nothing).await.unwrap(), ErasureReceipt::default());
    assert_eq!(log.stats().await.unwrap().events, 1);
    assert_eq!(
        log.erase(Erasure::default()).await.unwrap(),
        ErasureReceipt::default()
    );
}

#[tokio::test]
async fn the_position_of_an_erased_newest_event_is_not_given_again_after_a_restart() {
    let mut options = TestStoreOptions::default();
    options.sqlite.identifier_index_chunk = 100;
    let log = TestStore::open_with(options).await;
    log.append(&AppendBatch {
        events: vec![event("m1", "u1"), event("m2", "u2"), event("m3", "u2")],
        ..Default::default()
    })
    .await
    .unwrap();
    let erasure = Erasure {
        seqs: vec![2, 3],
        ..Default::default()
    };
    assert_eq!(log.erase(erasure).await.unwrap().events, 2);

    let log = log.reopen().await;
    assert_eq!(
        *log.committed().borrow(),
        3,
        "the watch starts at the highest given"
    );
    let next = log
        .append(&AppendBatch {
            events: vec![event("m4", "u2")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.events, [Appended::Stored { seq: 4 }]);
    assert_eq!(pages_of(&log, "u2").await, [4]);
    assert_eq!(every_seq(&log).await, [1, 4]);
    log.close().await;
}

#[tokio::test]
async fn an_expiry_removes_strips_and_clears_old_quarantine_in_one_transaction() {
    let log = TestStore::open().await;
    let recent = NewQuarantineEntry {
        received_at: "2026-11-01T10:00:00Z".parse().unwrap(),
        message_id: Some("q-2".into()),
        ..quarantined("recent")
    };
    log.append(&AppendBatch {
        events: vec![event("m1", "u1"), event("m2", "u1"), event("m3", "u1")],
        quarantine: vec![quarantined("old"), recent],
    })
    .await
    .unwrap();
    let evidence = json!({"type": "identify", "userId": "u1", "messageId": "m2"});
    let receipt = log
        .expire(Expiring {
            removed: vec![1],
            stripped: vec![StrippedEvent {
                seq: 2,
                event_type: EventType::Identify,
                message: evidence.as_object().unwrap().clone(),
            }],
            quarantined_before: Some("2025-01-01T00:00:00Z".parse().unwrap()),
        })
        .await
        .unwrap();
    assert_eq!(
        receipt,
        ExpiryReceipt {
            events: 1,
            stripped: 1,
            quarantined: 1
        }
    );
    assert_eq!(every_seq(&log).await, [2, 3]);
    let stripped = &log.events_at(vec![2]).await.unwrap()[0].event;
    assert_eq!(stripped.event_type, EventType::Identify);
    assert_eq!((&stripped.name, &stripped.channel), (&None, &None));
    assert_eq!(stripped.message, *evidence.as_object().unwrap());
    assert_eq!(
        stripped.user_id.as_deref(),
        Some("u1"),
        "still found by identifier"
    );
    let stats = log.stats().await.unwrap();
    assert_eq!((stats.events, stats.quarantined), (2, 1));
    let left = log.quarantine(QuarantineQuery::default()).await.unwrap();
    assert_eq!(left.entries.len(), 1);
    assert_eq!(left.entries[0].reason, "recent");
    log.close().await;
}

#[tokio::test]
async fn an_expiry_clears_old_quarantine_a_chunk_at_a_time_and_never_gives_a_position_again() {
    let log = TestStore::open().await;
    let old = QUARANTINE_EXPIRY_CHUNK + 2;
    let outcome = log
        .append(&AppendBatch {
            events: vec![event("m1", "u1"), event("m2", "u1")],
            quarantine: (0..old).map(|_| quarantined("old")).collect(),
        })
        .await
        .unwrap();
    // One old entry is replayed: it goes with the others but is no longer pending.
    log.replay_quarantined(outcome.quarantine_ids[0], event("q-1", "u9"), at())
        .await
        .unwrap();
    let before: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
    let expiring = Expiring {
        removed: vec![2, 3],
        quarantined_before: Some(before),
        ..Default::default()
    };
    let first = log.expire(expiring).await.unwrap();
    assert_eq!(
        first,
        ExpiryReceipt {
            events: 2,
            stripped: 0,
            quarantined: QUARANTINE_EXPIRY_CHUNK as u64
        }
    );
    let stats = log.stats().await.unwrap();
    assert_eq!((stats.events, stats.quarantined), (1, 2));
    let rest = Expiring {
        stripped: vec![StrippedEvent {
            seq: 99,
            event_type: EventType::Alias,
            message: serde_json::Map::new(),
        }],
        quarantined_before: Some(before),
        ..Default::default()
    };
    assert_eq!(
        log.expire(rest).await.unwrap(),
        ExpiryReceipt {
            quarantined: 2,
            ..Default::default()
        },
        "the rest, and no event stripped where there is none"
    );
    assert_eq!(log.stats().await.unwrap().quarantined, 0);
    assert_eq!(
        log.expire(Expiring::default()).await.unwrap(),
        ExpiryReceipt::default()
    );

    let next = log
        .append(&AppendBatch {
            events: vec![event("m4", "u1")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.events, [Appended::Stored { seq: 4 }]);
    assert_eq!(every_seq(&log).await, [1, 4]);
}
