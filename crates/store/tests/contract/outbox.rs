//! The outbox contract, on the store `UNAVOCE_TEST_STORE` names.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use unavoce_core::identity::ProfileId;
use unavoce_core::policy::Outcome;
use unavoce_store::*;
use unavoce_testkit::store::{StoreKind, TestStore};

use crate::event;

/// `minutes` after the tests' reference time (negative: before it).
fn at(minutes: i64) -> Timestamp {
    let start: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
    start + SignedDuration::from_mins(minutes)
}

/// A decision to send to `profile` on `channel` at `send_at`, decided an hour before.
fn decision(profile: i64, channel: &str, send_at: Timestamp) -> NewDecision {
    NewDecision {
        profile_id: ProfileId(profile),
        message: format!("offer for p-{profile}"),
        purpose: "promotional".into(),
        channel: channel.into(),
        journey: Some("welcome".into()),
        broadcast: None,
        decided_at: send_at - SignedDuration::from_hours(1),
        outcome: Outcome::Send,
        send_at: Some(send_at),
        reasons: json!([{"code": "quiet_hours", "detail": "held until morning"}]),
    }
}

/// Records `decisions`; the outbox entries of those that go out, in their order.
async fn queue(store: &TestStore, decisions: Vec<NewDecision>) -> Vec<i64> {
    let decided = store.record_decisions(decisions).await.unwrap();
    let entries = store.outbox(every(OutboxQuery::default())).await.unwrap();
    decided
        .iter()
        .filter_map(|d| entries.iter().find(|e| e.decision_id == *d).map(|e| e.id))
        .collect()
}

/// `query` with room for every entry a test makes.
fn every(query: OutboxQuery) -> OutboxQuery {
    OutboxQuery {
        limit: 1000,
        ..query
    }
}

/// The ids of `entries`.
fn ids(entries: &[OutboxEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.id).collect()
}

/// An entry that exists.
async fn entry(store: &TestStore, id: i64) -> OutboxEntry {
    store.outbox_entry(id).await.unwrap().expect("the entry")
}

/// Runs `sql` on the store's database past the store (to plant what only a damaged
/// database holds, or to see how values are stored); the first column of each row it
/// returns, as text.
async fn raw_sql(store: &TestStore, sql: &str) -> Vec<String> {
    match store.kind() {
        StoreKind::Sqlite => {
            let path = store.sqlite().expect("the SQLite store").path().to_owned();
            unavoce_store::sqlite::prepare_sqlite();
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut statement = conn.prepare(sql).unwrap();
            let mut rows = statement.query([]).unwrap();
            let mut texts = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                texts.push(row.get(0).unwrap());
            }
            texts
        }
        StoreKind::Postgres => {
            let url = store.postgres_url().expect("the database's URL");
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let connection = tokio::spawn(connection);
            let texts = client
                .simple_query(sql)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        Some(row.get(0).unwrap_or_default().to_owned())
                    }
                    _ => None,
                })
                .collect();
            drop(client);
            connection.await.unwrap().unwrap();
            texts
        }
    }
}

/// A storage error whose message says `what`.
fn storage_error_saying(what: &str, e: StoreError) {
    assert!(
        matches!(&e, StoreError::Storage(m) if m.contains(what)),
        "expected a storage error saying {what:?}, got {e}"
    );
}

#[tokio::test]
async fn early_reports_wait_until_taken_once_and_old_ones_are_forgotten() {
    let store = TestStore::open().await;
    let report = |id: &str, delivery: &str, received_at: Timestamp| EarlyReport {
        provider_message_id: id.into(),
        delivery: delivery.into(),
        error: (delivery == "failed").then(|| "unreachable".into()),
        received_at,
    };
    store
        .park_report(report("wamid.OLD", "delivered", at(0)))
        .await
        .unwrap();
    let later = at(0) + EARLY_REPORTS_KEPT_FOR + SignedDuration::from_secs(1);
    store
        .park_report(report("wamid.A", "delivered", later))
        .await
        .unwrap();
    store
        .park_report(report("wamid.A", "read", later))
        .await
        .unwrap();
    store
        .park_report(report("wamid.B", "failed", later))
        .await
        .unwrap();
    // No entry holds these ids: none is due.
    assert!(store.early_reports_due().await.unwrap().is_empty());

    let taken = store
        .take_early_reports(vec!["wamid.A".into(), "wamid.OLD".into()])
        .await
        .unwrap();
    assert_eq!(
        taken,
        vec![
            report("wamid.A", "delivered", later),
            report("wamid.A", "read", later)
        ],
        "in the order they came; the week-old report was forgotten"
    );
    assert!(
        store
            .take_early_reports(vec!["wamid.A".into()])
            .await
            .unwrap()
            .is_empty(),
        "each is taken once"
    );
    assert!(
        store
            .take_early_reports(Vec::new())
            .await
            .unwrap()
            .is_empty()
    );

    let store = store.reopen().await;
    // Once an entry holds wamid.B, its report is due (what a failure left behind).
    let id = queue(&store, vec![decision(1, "whatsapp", at(0))]).await[0];
    store.claim("whatsapp", at(0), 1).await.unwrap();
    store
        .settle(vec![Settlement::Sent {
            id,
            provider_message_id: Some("wamid.B".into()),
            at: later,
        }])
        .await
        .unwrap();
    assert_eq!(store.early_reports_due().await.unwrap(), ["wamid.B"]);
    assert_eq!(
        store
            .take_early_reports(vec!["wamid.B".into()])
            .await
            .unwrap(),
        vec![report("wamid.B", "failed", later)],
        "kept across a restart"
    );
    assert!(store.early_reports_due().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takes_return_each_early_report_to_one_caller() {
    let store = TestStore::open().await;
    for i in 0..60 {
        store
            .park_report(EarlyReport {
                provider_message_id: format!("sid-{}", i % 3),
                delivery: format!("report-{i}"),
                error: None,
                received_at: at(i),
            })
            .await
            .unwrap();
    }
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let takers: Vec<_> = (0..2)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let ids = vec!["sid-0".into(), "sid-1".into(), "sid-2".into()];
                barrier.wait().await;
                store.take_early_reports(ids).await.unwrap()
            })
        })
        .collect();
    let mut taken = Vec::new();
    for taker in takers {
        let reports = taker.await.unwrap();
        let received: Vec<Timestamp> = reports.iter().map(|r| r.received_at).collect();
        assert!(received.is_sorted(), "oldest first");
        taken.extend(reports.into_iter().map(|r| r.delivery));
    }
    taken.sort();
    let mut parked: Vec<String> = (0..60).map(|i| format!("report-{i}")).collect();
    parked.sort();
    assert_eq!(taken, parked, "every report, each taken by one caller");
}

#[tokio::test]
async fn statuses_are_stored_as_text_and_one_that_is_none_is_an_error() {
    let store = TestStore::open().await;
    queue(
        &store,
        vec![
            decision(1, "email", at(0)),
            decision(2, "email", at(0)),
            decision(3, "sms", at(0)),
        ],
    )
    .await;

    // An entry goes through the statuses as the outbox stores them.
    let claimed = store.claim("email", at(0), 1).await.unwrap();
    assert_eq!(claimed[0].status, OutboxStatus::Sending);
    let sending = claimed[0].id;
    store
        .settle(vec![Settlement::Sent {
            id: sending,
            provider_message_id: None,
            at: at(0),
        }])
        .await
        .unwrap();
    let claimed = store.claim("email", at(0), 1).await.unwrap();
    store
        .settle(vec![Settlement::Dead {
            id: claimed[0].id,
            error: "refused".into(),
            at: at(0),
        }])
        .await
        .unwrap();
    assert_eq!(
        raw_sql(&store, "SELECT status FROM outbox ORDER BY id").await,
        ["sent", "dead", "pending"]
    );
    let with_status = |status: OutboxStatus| {
        every(OutboxQuery {
            status: Some(status),
            ..Default::default()
        })
    };
    let dead = store.outbox(with_status(OutboxStatus::Dead)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].status, OutboxStatus::Dead);
    assert!(
        store
            .outbox(with_status(OutboxStatus::Cancelled))
            .await
            .unwrap()
            .is_empty()
    );
    let count = |channel: &str, status: OutboxStatus, entries: u64| OutboxCount {
        channel: channel.into(),
        status,
        entries,
    };
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        [
            count("email", OutboxStatus::Dead, 1),
            count("email", OutboxStatus::Sent, 1),
            count("sms", OutboxStatus::Pending, 1),
        ],
        "ordered by channel, then by the stored text of the status"
    );

    // A stored value that spells no status is an error, never a panic.
    raw_sql(
        &store,
        &format!("UPDATE outbox SET status = 'failed' WHERE id = {sending}"),
    )
    .await;
    let unknown = "unknown outbox status \"failed\"";
    storage_error_saying(
        unknown,
        store
            .outbox(every(OutboxQuery::default()))
            .await
            .unwrap_err(),
    );
    storage_error_saying(unknown, store.outbox_entry(sending).await.unwrap_err());
    storage_error_saying(unknown, store.outbox_counts().await.unwrap_err());
    // An entry whose status is none is not pending: a claim passes it over.
    assert!(store.claim("email", at(0), 10).await.unwrap().is_empty());
    assert_eq!(store.claim("sms", at(0), 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn profile_ids_are_stored_as_text_and_one_that_is_not_is_an_error() {
    let store = TestStore::open().await;
    let id = queue(&store, vec![decision(42, "email", at(0))]).await[0];
    assert_eq!(
        raw_sql(&store, "SELECT profile_id FROM outbox").await,
        ["p-42"],
        "the text the API has always shown"
    );
    let of = |profile_ids: Vec<ProfileId>| {
        every(OutboxQuery {
            profile_ids,
            ..Default::default()
        })
    };
    let found = store.outbox(of(vec![ProfileId(42)])).await.unwrap();
    assert_eq!(ids(&found), [id]);
    assert_eq!(found[0].profile_id, ProfileId(42));
    assert!(
        store
            .outbox(of(vec![ProfileId(4)]))
            .await
            .unwrap()
            .is_empty()
    );

    // A stored value that is not a profile id is an error, never a panic.
    raw_sql(&store, "UPDATE outbox SET profile_id = 'alice'").await;
    let not_a_profile = "\"alice\" is not a profile id";
    storage_error_saying(
        not_a_profile,
        store.outbox(of(Vec::new())).await.unwrap_err(),
    );
    storage_error_saying(not_a_profile, store.outbox_entry(id).await.unwrap_err());
    storage_error_saying(
        not_a_profile,
        store.claim("email", at(0), 10).await.unwrap_err(),
    );
    // The failed claim marked nothing and failed nothing else.
    store
        .append(&AppendBatch {
            events: vec![event("m1", "u1")],
            ..Default::default()
        })
        .await
        .unwrap();
    raw_sql(&store, "UPDATE outbox SET profile_id = 'p-42'").await;
    let claimed = store.claim("email", at(0), 10).await.unwrap();
    assert_eq!(ids(&claimed), [id]);
    assert_eq!(
        (claimed[0].profile_id, claimed[0].attempts),
        (ProfileId(42), 1)
    );
}

#[tokio::test]
async fn a_claim_takes_due_pending_entries_of_its_lane_oldest_due_first_up_to_its_limit() {
    let store = TestStore::open().await;
    let ids_queued = queue(
        &store,
        vec![
            decision(1, "email", at(-1)),
            decision(2, "email", at(-2)),
            decision(3, "email", at(1)),
            decision(4, "sms", at(-3)),
            decision(5, "email", at(-1)),
            NewDecision {
                outcome: Outcome::Suppress,
                ..decision(6, "email", at(-5))
            },
            NewDecision {
                outcome: Outcome::Hold,
                broadcast: Some("spring-sale".into()),
                ..decision(7, "email", at(0))
            },
        ],
    )
    .await;
    let [minus_1, minus_2, plus_1, sms, minus_1_too, held] = ids_queued[..] else {
        panic!("a suppressed decision has no entry: {ids_queued:?}")
    };

    let claimed = store.claim("email", at(0), 2).await.unwrap();
    assert_eq!(
        ids(&claimed),
        [minus_2, minus_1],
        "the earliest due first, then the oldest entry"
    );
    for e in &claimed {
        assert_eq!(e.status, OutboxStatus::Sending);
        assert_eq!(e.attempts, 1);
        assert_eq!(e.updated_at, Some(at(0)));
        assert_eq!(&entry(&store, e.id).await, e, "marked durably as returned");
    }
    // An entry carries its decision.
    let decided = decision(2, "email", at(-2));
    let e = &claimed[0];
    assert_eq!(
        (
            e.profile_id,
            e.channel.as_str(),
            e.message.as_str(),
            e.purpose.as_str()
        ),
        (ProfileId(2), "email", "offer for p-2", "promotional")
    );
    assert_eq!(
        (&e.journey, &e.broadcast, &e.reasons),
        (&decided.journey, &None, &decided.reasons)
    );
    assert_eq!((e.send_at, e.first_due), (at(-2), at(-2)));
    assert_eq!(
        (&e.last_error, &e.provider_message_id, &e.delivery),
        (&None, &None, &None)
    );

    let claimed = store.claim("email", at(0), 10).await.unwrap();
    assert_eq!(
        ids(&claimed),
        [minus_1_too, held],
        "neither those being sent nor those not yet due"
    );
    assert_eq!(claimed[1].broadcast.as_deref(), Some("spring-sale"));
    assert!(store.claim("email", at(0), 10).await.unwrap().is_empty());
    assert!(store.claim("push", at(9), 10).await.unwrap().is_empty());
    assert_eq!(
        ids(&store.claim("email", at(1), 10).await.unwrap()),
        [plus_1]
    );
    assert_eq!(ids(&store.claim("sms", at(0), 10).await.unwrap()), [sms]);
}

#[tokio::test]
async fn sent_and_reported_settlements_record_the_provider_and_its_reports() {
    let store = TestStore::open().await;
    let queued = queue(
        &store,
        vec![decision(1, "sms", at(0)), decision(2, "sms", at(0))],
    )
    .await;
    store.claim("sms", at(0), 10).await.unwrap();
    store
        .settle(vec![Settlement::Retry {
            id: queued[0],
            retry_at: at(0),
            error: "timed out".into(),
            at: at(0),
        }])
        .await
        .unwrap();
    store.claim("sms", at(0), 10).await.unwrap();
    store
        .settle(vec![
            Settlement::Sent {
                id: queued[0],
                provider_message_id: Some("SM1".into()),
                at: at(1),
            },
            Settlement::Sent {
                id: queued[1],
                provider_message_id: None,
                at: at(1),
            },
            // Applied in order: a report settled with the attempt it reports on.
            Settlement::Reported {
                id: queued[0],
                delivery: "delivered".into(),
                error: None,
                at: at(2),
            },
        ])
        .await
        .unwrap();
    let sent = entry(&store, queued[0]).await;
    assert_eq!(sent.status, OutboxStatus::Sent);
    assert_eq!(sent.provider_message_id.as_deref(), Some("SM1"));
    assert_eq!(sent.last_error, None, "a send clears the last error");
    assert_eq!(sent.delivery.as_deref(), Some("delivered"));
    assert_eq!((sent.attempts, sent.updated_at), (2, Some(at(2))));
    assert_eq!(
        store.outbox_by_provider_id("SM1").await.unwrap().as_ref(),
        Some(&sent)
    );
    assert_eq!(store.outbox_by_provider_id("SM2").await.unwrap(), None);
    let other = entry(&store, queued[1]).await;
    assert_eq!(
        (other.status, other.provider_message_id, other.delivery),
        (OutboxStatus::Sent, None, None)
    );

    // A later report replaces the delivery; its error is kept, and kept when a report
    // has none.
    store
        .settle(vec![Settlement::Reported {
            id: queued[0],
            delivery: "failed".into(),
            error: Some("30003 unreachable".into()),
            at: at(3),
        }])
        .await
        .unwrap();
    store
        .settle(vec![Settlement::Reported {
            id: queued[0],
            delivery: "read".into(),
            error: None,
            at: at(4),
        }])
        .await
        .unwrap();
    let reported = entry(&store, queued[0]).await;
    assert_eq!(
        (
            reported.status,
            reported.delivery.as_deref(),
            reported.last_error.as_deref(),
            reported.updated_at
        ),
        (
            OutboxStatus::Sent,
            Some("read"),
            Some("30003 unreachable"),
            Some(at(4))
        )
    );
    store.settle(Vec::new()).await.unwrap();
}

#[tokio::test]
async fn retry_dead_and_cancelled_settlements_put_an_entry_where_they_say() {
    let store = TestStore::open().await;
    let queued = queue(
        &store,
        vec![
            decision(1, "email", at(0)),
            decision(2, "email", at(0)),
            decision(3, "email", at(0)),
        ],
    )
    .await;
    let [retried, dead, cancelled] = queued[..] else {
        panic!("three entries: {queued:?}")
    };
    store.claim("email", at(0), 10).await.unwrap();
    store
        .settle(vec![
            Settlement::Retry {
                id: retried,
                retry_at: at(30),
                error: "421 try later".into(),
                at: at(1),
            },
            Settlement::Dead {
                id: dead,
                error: "550 no such user".into(),
                at: at(1),
            },
            Settlement::Cancelled {
                id: cancelled,
                reason: "consent withdrawn".into(),
                at: at(1),
            },
        ])
        .await
        .unwrap();
    let e = entry(&store, retried).await;
    assert_eq!(
        (e.status, e.send_at, e.first_due, e.attempts),
        (OutboxStatus::Pending, at(30), at(0), 1),
        "due again at the retry, its age still counted from the decision"
    );
    assert_eq!(
        (e.last_error.as_deref(), e.updated_at),
        (Some("421 try later"), Some(at(1)))
    );
    let e = entry(&store, dead).await;
    assert_eq!(
        (e.status, e.last_error.as_deref(), e.updated_at, e.attempts),
        (OutboxStatus::Dead, Some("550 no such user"), Some(at(1)), 1)
    );
    let e = entry(&store, cancelled).await;
    assert_eq!(
        (e.status, e.last_error.as_deref(), e.updated_at),
        (
            OutboxStatus::Cancelled,
            Some("consent withdrawn"),
            Some(at(1))
        )
    );

    assert_eq!(store.next_due("email").await.unwrap(), Some(at(30)));
    assert!(store.claim("email", at(29), 10).await.unwrap().is_empty());
    let again = store.claim("email", at(30), 10).await.unwrap();
    assert_eq!(ids(&again), [retried], "neither dead letters nor cancelled");
    assert_eq!(again[0].attempts, 2);
}

#[tokio::test]
async fn a_released_claim_goes_back_in_line_without_counting_its_attempt() {
    let store = TestStore::open().await;
    let queued = queue(
        &store,
        vec![decision(1, "email", at(0)), decision(2, "email", at(0))],
    )
    .await;
    store.claim("email", at(0), 10).await.unwrap();
    store
        .settle(vec![Settlement::Sent {
            id: queued[1],
            provider_message_id: Some("<1@mail>".into()),
            at: at(1),
        }])
        .await
        .unwrap();
    store
        .settle(vec![
            Settlement::Released { id: queued[0] },
            // Only a claimed entry is released.
            Settlement::Released { id: queued[1] },
        ])
        .await
        .unwrap();
    let released = entry(&store, queued[0]).await;
    assert_eq!(
        (released.status, released.attempts, released.updated_at),
        (OutboxStatus::Pending, 0, Some(at(0))),
        "as before the claim, but for when it was last touched"
    );
    let sent = entry(&store, queued[1]).await;
    assert_eq!((sent.status, sent.attempts), (OutboxStatus::Sent, 1));

    let again = store.claim("email", at(0), 10).await.unwrap();
    assert_eq!(ids(&again), [queued[0]]);
    assert_eq!(again[0].attempts, 1);
}

#[tokio::test]
async fn resume_in_flight_puts_what_a_stop_interrupted_back_in_line() {
    let store = TestStore::open().await;
    let queued = queue(
        &store,
        vec![
            decision(1, "email", at(0)),
            decision(2, "email", at(0)),
            decision(3, "email", at(5)),
            decision(4, "sms", at(0)),
        ],
    )
    .await;
    store.claim("email", at(0), 10).await.unwrap();
    store.claim("sms", at(0), 10).await.unwrap();
    store
        .settle(vec![Settlement::Sent {
            id: queued[1],
            provider_message_id: None,
            at: at(1),
        }])
        .await
        .unwrap();

    let store = store.reopen().await;
    assert_eq!(store.resume_in_flight("email").await.unwrap(), 1);
    let resumed = entry(&store, queued[0]).await;
    assert_eq!(
        (resumed.status, resumed.attempts, resumed.send_at),
        (OutboxStatus::Pending, 1, at(0)),
        "the interrupted attempt still counts"
    );
    assert!(
        resumed
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("interrupted")),
        "{resumed:?}"
    );
    assert_eq!(entry(&store, queued[1]).await.status, OutboxStatus::Sent);
    assert_eq!(entry(&store, queued[2]).await.status, OutboxStatus::Pending);
    assert_eq!(
        entry(&store, queued[3]).await.status,
        OutboxStatus::Sending,
        "another lane's entries are its own to resume"
    );
    assert_eq!(store.resume_in_flight("email").await.unwrap(), 0);
    assert_eq!(store.resume_in_flight("sms").await.unwrap(), 1);

    let again = store.claim("email", at(0), 10).await.unwrap();
    assert_eq!(ids(&again), [queued[0]]);
    assert_eq!(again[0].attempts, 2);
}

#[tokio::test]
async fn requeue_puts_only_a_dead_letter_back_in_line() {
    let store = TestStore::open().await;
    let queued = queue(
        &store,
        vec![decision(1, "sms", at(0)), decision(2, "sms", at(0))],
    )
    .await;
    let [dead, pending] = queued[..] else {
        panic!("two entries: {queued:?}")
    };
    store.claim("sms", at(0), 1).await.unwrap();
    store
        .settle(vec![Settlement::Dead {
            id: dead,
            error: "invalid number".into(),
            at: at(1),
        }])
        .await
        .unwrap();

    assert!(!store.requeue(pending, at(60)).await.unwrap(), "not dead");
    assert!(!store.requeue(9999, at(60)).await.unwrap(), "no such entry");
    assert!(store.requeue(dead, at(60)).await.unwrap());
    let e = entry(&store, dead).await;
    assert_eq!(
        (e.status, e.attempts, e.send_at, e.updated_at, e.first_due),
        (OutboxStatus::Pending, 0, at(60), Some(at(60)), at(0))
    );
    assert!(!store.requeue(dead, at(61)).await.unwrap(), "once");

    assert_eq!(
        ids(&store.claim("sms", at(59), 10).await.unwrap()),
        [pending]
    );
    let again = store.claim("sms", at(60), 10).await.unwrap();
    assert_eq!(ids(&again), [dead]);
    assert_eq!(again[0].attempts, 1);
}

#[tokio::test]
async fn outbox_reads_filter_count_and_page_in_one_order() {
    let store = TestStore::open().await;
    let in_broadcast = |d: NewDecision| NewDecision {
        broadcast: Some("spring-sale".into()),
        ..d
    };
    let queued = queue(
        &store,
        vec![
            decision(1, "email", at(0)),
            in_broadcast(decision(2, "email", at(3))),
            decision(1, "sms", at(2)),
            in_broadcast(decision(3, "SMS", at(1))),
            decision(2, "email", at(-1)),
        ],
    )
    .await;
    store.claim("email", at(0), 1).await.unwrap();
    store
        .settle(vec![Settlement::Sent {
            id: queued[4],
            provider_message_id: Some("<5@mail>".into()),
            at: at(0),
        }])
        .await
        .unwrap();

    let read = |query: OutboxQuery| {
        let store = &store;
        async move { ids(&store.outbox(every(query)).await.unwrap()) }
    };
    assert_eq!(read(OutboxQuery::default()).await, queued, "oldest first");
    assert_eq!(
        read(OutboxQuery {
            channel: Some("email".into()),
            ..Default::default()
        })
        .await,
        [queued[0], queued[1], queued[4]]
    );
    assert_eq!(
        read(OutboxQuery {
            broadcast: Some("spring-sale".into()),
            ..Default::default()
        })
        .await,
        [queued[1], queued[3]]
    );
    assert_eq!(
        read(OutboxQuery {
            profile_ids: vec![ProfileId(1), ProfileId(3)],
            ..Default::default()
        })
        .await,
        [queued[0], queued[2], queued[3]]
    );
    assert_eq!(
        read(OutboxQuery {
            status: Some(OutboxStatus::Pending),
            channel: Some("email".into()),
            profile_ids: vec![ProfileId(2)],
            ..Default::default()
        })
        .await,
        [queued[1]]
    );
    assert_eq!(
        read(OutboxQuery {
            status: Some(OutboxStatus::Sent),
            ..Default::default()
        })
        .await,
        [queued[4]]
    );
    // Pages: after an id, at most `limit`.
    let page = |after_id: Option<i64>| OutboxQuery {
        after_id,
        limit: 2,
        ..Default::default()
    };
    let first = store.outbox(page(None)).await.unwrap();
    assert_eq!(ids(&first), queued[..2]);
    let second = store.outbox(page(Some(first[1].id))).await.unwrap();
    assert_eq!(ids(&second), queued[2..4]);
    let last = store.outbox(page(Some(second[1].id))).await.unwrap();
    assert_eq!(ids(&last), queued[4..]);

    let count = |channel: &str, status: OutboxStatus, entries: u64| OutboxCount {
        channel: channel.into(),
        status,
        entries,
    };
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        [
            count("SMS", OutboxStatus::Pending, 1),
            count("email", OutboxStatus::Pending, 2),
            count("email", OutboxStatus::Sent, 1),
            count("sms", OutboxStatus::Pending, 1),
        ],
        "channels ordered byte by byte"
    );

    assert_eq!(store.next_due("email").await.unwrap(), Some(at(0)));
    assert_eq!(store.next_due("SMS").await.unwrap(), Some(at(1)));
    assert_eq!(store.next_due("push").await.unwrap(), None);
    store.claim("SMS", at(1), 1).await.unwrap();
    assert_eq!(
        store.next_due("SMS").await.unwrap(),
        None,
        "only pending entries are due"
    );

    assert_eq!(
        store.outbox_by_provider_id("<5@mail>").await.unwrap(),
        Some(entry(&store, queued[4]).await)
    );
    assert_eq!(store.outbox_entry(9999).await.unwrap(), None);
}

#[tokio::test]
async fn append_settling_makes_events_and_settlements_durable_together() {
    let store = TestStore::open().await;
    let queued = queue(
        &store,
        vec![decision(1, "email", at(0)), decision(2, "email", at(0))],
    )
    .await;
    store.claim("email", at(0), 10).await.unwrap();
    let outcome = store
        .append_settling(
            &AppendBatch {
                events: vec![event("sent-1", "u1")],
                ..Default::default()
            },
            vec![Settlement::Sent {
                id: queued[0],
                provider_message_id: Some("<1@mail>".into()),
                at: at(1),
            }],
        )
        .await
        .unwrap();
    assert!(matches!(outcome.events[..], [Appended::Stored { .. }]));
    // A duplicate event does not hold its settlement back; nor does no event.
    let outcome = store
        .append_settling(
            &AppendBatch {
                events: vec![event("sent-1", "u1")],
                ..Default::default()
            },
            vec![Settlement::Reported {
                id: queued[0],
                delivery: "delivered".into(),
                error: None,
                at: at(2),
            }],
        )
        .await
        .unwrap();
    assert_eq!(outcome.events, [Appended::Duplicate]);
    store
        .append_settling(
            &AppendBatch::default(),
            vec![Settlement::Dead {
                id: queued[1],
                error: "refused".into(),
                at: at(2),
            }],
        )
        .await
        .unwrap();

    let store = store.reopen().await;
    let page = store
        .events(EventQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.events
            .iter()
            .map(|e| e.event.message_id.as_str())
            .collect::<Vec<_>>(),
        ["sent-1"]
    );
    let sent = entry(&store, queued[0]).await;
    assert_eq!(
        (
            sent.status,
            sent.provider_message_id.as_deref(),
            sent.delivery.as_deref()
        ),
        (OutboxStatus::Sent, Some("<1@mail>"), Some("delivered"))
    );
    assert_eq!(entry(&store, queued[1]).await.status, OutboxStatus::Dead);
    assert_eq!(
        store.resume_in_flight("email").await.unwrap(),
        0,
        "none in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_one_lane_never_share_an_entry() {
    let store = TestStore::open().await;
    let queued: HashSet<i64> = queue(
        &store,
        (0..120)
            .map(|i| decision(i, "email", at(-(i % 7))))
            .collect(),
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(queued.len(), 120);
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let claimers: Vec<_> = (0..2)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut claimed = Vec::new();
                loop {
                    let batch = store.claim("email", at(0), 5).await.unwrap();
                    if batch.is_empty() {
                        return claimed;
                    }
                    assert!(batch.len() <= 5);
                    claimed.extend(batch);
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for claimer in claimers {
        for e in claimer.await.unwrap() {
            assert!(seen.insert(e.id), "entry {} was claimed twice", e.id);
            assert_eq!((e.status, e.attempts), (OutboxStatus::Sending, 1));
        }
    }
    assert_eq!(seen, queued, "together they claimed every entry");
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        [OutboxCount {
            channel: "email".into(),
            status: OutboxStatus::Sending,
            entries: 120,
        }]
    );
}
