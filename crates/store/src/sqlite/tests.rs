use std::time::Duration;

use serde_json::json;
use unavoce_core::segment::{IntakeContext, normalise};

use super::*;

fn event(id: &str, user: &str) -> Event {
    sent_by(id, Some(user), None)
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
    let blocker = crate::sqlite::allocator::connection(log.path()).unwrap();
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
    // Other writes have a queue of their own: a full one of appends does not refuse them.
    let setting = tokio::spawn({
        let log = log.clone();
        async move { log.put_setting("cursor", json!(7)).await }
    });

    blocker.execute_batch("COMMIT").unwrap();
    assert!(first.await.unwrap().is_ok());
    assert!(second.await.unwrap().is_ok());
    assert_eq!(setting.await.unwrap(), Ok(()));
    assert_eq!(log.setting("cursor").await.unwrap(), Some(json!(7)));
    assert!(log.is_ready());
    assert_eq!(log.stats().await.unwrap().events, 2);
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::sqlite::allocator::connection(dir.path().join("events.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SqliteLog::open(dir.path(), SqliteOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, OpenError::TooNew { found: 99, .. }), "{err}");
}

fn sent_by(id: &str, user: Option<&str>, anonymous: Option<&str>) -> Event {
    let mut message = json!({"type": "track", "event": "Viewed", "messageId": id});
    if let Some(user) = user {
        message["userId"] = json!(user);
    }
    if let Some(anonymous) = anonymous {
        message["anonymousId"] = json!(anonymous);
    }
    normalise(
        message.as_object().unwrap().clone(),
        &IntakeContext::new("2024-05-01T10:00:00Z".parse().unwrap(), "test"),
        || unreachable!(),
    )
    .unwrap()
}

/// The log of `events_by_identifier_*`: seq 1..=8, of u1 (with a1 or a2), u2 and a1 alone.
fn identifier_log() -> Vec<Event> {
    vec![
        sent_by("m1", Some("u1"), Some("a1")),
        sent_by("m2", Some("u2"), None),
        sent_by("m3", None, Some("a1")),
        sent_by("m4", Some("u1"), None),
        sent_by("m5", Some("u1"), Some("a2")),
        sent_by("m6", Some("u2"), Some("a1")),
        sent_by("m7", Some("u1"), Some("a1")),
        sent_by("m8", None, Some("a1")),
    ]
}

fn seqs_of(conn: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Vec<i64> {
    let mut statement = conn.prepare(sql).unwrap();
    statement
        .query_map(args, |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn events_by_identifier_come_from_the_index_and_the_unindexed_tail_in_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = crate::sqlite::allocator::connection(dir.path().join("events.db")).unwrap();
    schema::migrate(&mut conn).unwrap();
    let tx = conn.transaction().unwrap();
    for (i, event) in identifier_log().iter().enumerate() {
        rows::insert_event(&tx, &EventRow::from_event(event).unwrap()).unwrap();
        if i == 3 {
            // The first four are indexed; the rest are the unindexed tail.
            assert_eq!(identifiers::index_after(&tx, 0).unwrap(), 4);
        }
    }
    tx.commit().unwrap();
    assert_eq!(identifiers::indexed_through(&conn).unwrap(), 4);

    for (limit, by_user, both, args, expected) in [
        (10, true, false, vec!["u1", "0"], vec![1, 4, 5, 7]),
        (10, true, false, vec!["u1", "4"], vec![5, 7]),
        (10, true, false, vec!["u1", "1"], vec![4, 5, 7]),
        (2, true, false, vec!["u1", "1"], vec![4, 5]),
        (10, false, false, vec!["a1", "0"], vec![1, 3, 6, 7, 8]),
        (10, true, true, vec!["u1", "0", "a1"], vec![1, 7]),
        (10, true, true, vec!["u2", "0", "a1"], vec![6]),
        (10, true, false, vec!["nobody", "0"], vec![]),
    ] {
        let sql = identifiers::events_of_identifier_sql(by_user, both, limit);
        let cursor: i64 = args[1].parse().unwrap();
        let mut bound: Vec<&dyn rusqlite::ToSql> = vec![&args[0], &cursor];
        if both {
            bound.push(&args[2]);
        }
        assert_eq!(seqs_of(&conn, &sql, &bound), expected, "{args:?}");

        let plan = seqs_plan(&conn, &sql, &bound);
        assert!(
            !plan.contains("SCAN") && !plan.contains("TEMP B-TREE"),
            "the statement reads the index and the tail's range only, in order: {plan}"
        );
    }
}

fn seqs_plan(conn: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> String {
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    statement
        .query_map(args, |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
        .join("; ")
}

/// Every `seq` of `user`'s events, read two to a page.
async fn pages_of(log: &SqliteLog, user: &str) -> Vec<i64> {
    let mut query = EventQuery {
        user_id: Some(user.into()),
        limit: 2,
        ..Default::default()
    };
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

#[tokio::test]
async fn events_by_identifier_are_indexed_in_chunks_and_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        identifier_index_chunk: 3,
        ..SqliteOptions::default()
    };
    let log = SqliteLog::open(dir.path(), options).unwrap();
    let progress = || {
        let conn = crate::sqlite::allocator::connection(dir.path().join("events.db")).unwrap();
        identifiers::indexed_through(&conn).unwrap()
    };
    let of_u1 = [1, 4, 5, 7];
    for (i, event) in identifier_log().into_iter().enumerate() {
        log.append(&AppendBatch {
            events: vec![event],
            ..Default::default()
        })
        .await
        .unwrap();
        let seq = i as i64 + 1;
        let expected: Vec<i64> = of_u1.into_iter().filter(|s| *s <= seq).collect();
        assert_eq!(pages_of(&log, "u1").await, expected, "after event {seq}");
    }
    assert!(
        progress() >= 6,
        "a chunk of three is indexed after its commit"
    );
    let mut waited = 0;
    while progress() < 8 && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(progress(), 8, "the writer indexes the rest once idle");
    assert_eq!(pages_of(&log, "u1").await, of_u1);
    log.close().await;
}

#[tokio::test]
async fn a_log_from_before_the_identifier_index_is_indexed_when_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = crate::sqlite::allocator::connection(dir.path().join("events.db")).unwrap();
    let tx = conn.transaction().unwrap();
    for migration in &schema::MIGRATIONS[..5] {
        tx.execute_batch(migration).unwrap();
    }
    tx.pragma_update(None, "user_version", 5).unwrap();
    for event in identifier_log() {
        rows::insert_event(&tx, &EventRow::from_event(&event).unwrap()).unwrap();
    }
    tx.commit().unwrap();
    drop(conn);

    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    assert_eq!(pages_of(&log, "u1").await, [1, 4, 5, 7]);
    let conn = crate::sqlite::allocator::connection(dir.path().join("events.db")).unwrap();
    assert_eq!(identifiers::indexed_through(&conn).unwrap(), 8);
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' \
             AND name LIKE 'events_by_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0, "the per-commit indexes are gone");
    log.close().await;
}

#[tokio::test]
async fn profile_ids_are_stored_as_text_and_one_that_is_not_is_an_error() {
    use unavoce_core::identity::ProfileId;
    use unavoce_core::policy::Outcome;

    use crate::decisions::{DecisionLog, DecisionQuery, NewDecision};
    use crate::journeys::{JourneyRun, JourneyStore, RunQuery};
    use crate::outbox::{Outbox, OutboxQuery};

    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    let at: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
    let decision = NewDecision {
        profile_id: ProfileId(42),
        message: "offer".into(),
        purpose: "promotional".into(),
        channel: "email".into(),
        journey: Some("welcome".into()),
        broadcast: None,
        decided_at: at,
        outcome: Outcome::Send,
        send_at: Some(at),
        reasons: json!([]),
    };
    let run = JourneyRun {
        key: "welcome:p-42:7".into(),
        journey: "welcome".into(),
        profile_id: ProfileId(42),
        entered_at: at,
        control: false,
        status: crate::journeys::RunStatus::Active,
        step: 1,
        wake_at: None,
        waiting_for: None,
        blocked: false,
        watching: None,
        fallbacks: Vec::new(),
        exit_reason: None,
        converted_at: None,
        updated_at: at,
        version: 2,
    };
    log.save_runs(vec![run.clone()], vec![decision.clone()])
        .await
        .unwrap();

    // The columns hold the text the API has always shown.
    let conn = crate::sqlite::allocator::connection(dir.path().join("events.db")).unwrap();
    for table in ["decisions", "outbox", "journey_runs"] {
        let stored: String = conn
            .query_row(&format!("SELECT profile_id FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, "p-42", "{table}");
    }
    let decisions = |profile_ids: Vec<ProfileId>| DecisionQuery {
        profile_ids,
        limit: 10,
        ..Default::default()
    };
    let found = log.decisions(decisions(vec![ProfileId(42)])).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].decision, decision);
    assert!(
        log.decisions(decisions(vec![ProfileId(4)]))
            .await
            .unwrap()
            .is_empty()
    );
    let runs = |profile_id: Option<ProfileId>| RunQuery {
        profile_id,
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        log.runs(runs(Some(ProfileId(42)))).await.unwrap(),
        vec![run]
    );
    assert!(log.runs(runs(Some(ProfileId(4)))).await.unwrap().is_empty());
    let entries = |profile_ids: Vec<ProfileId>| OutboxQuery {
        profile_ids,
        limit: 10,
        ..Default::default()
    };
    let entry = log.outbox(entries(vec![ProfileId(42)])).await.unwrap();
    assert_eq!(entry.len(), 1);
    assert_eq!(entry[0].profile_id, ProfileId(42));
    assert!(
        log.outbox(entries(vec![ProfileId(4)]))
            .await
            .unwrap()
            .is_empty()
    );

    // A stored value that is not a profile id is an error, never a panic.
    for table in ["decisions", "outbox", "journey_runs"] {
        conn.execute(&format!("UPDATE {table} SET profile_id = 'alice'"), [])
            .unwrap();
    }
    let not_a_profile = |e: StoreError| {
        assert!(
            matches!(&e, StoreError::Storage(m) if m.contains("\"alice\" is not a profile id")),
            "{e}"
        );
    };
    not_a_profile(log.decisions(decisions(Vec::new())).await.unwrap_err());
    not_a_profile(log.runs(runs(None)).await.unwrap_err());
    not_a_profile(log.outbox(entries(Vec::new())).await.unwrap_err());
    not_a_profile(log.outbox_entry(entry[0].id).await.unwrap_err());
    not_a_profile(log.claim("email", at, 10).await.unwrap_err());
    // The failed claim marked nothing and failed nothing else.
    log.append(&AppendBatch {
        events: vec![event("m1", "u1")],
        ..Default::default()
    })
    .await
    .unwrap();
    conn.execute("UPDATE outbox SET profile_id = 'p-42'", [])
        .unwrap();
    let claimed = log.claim("email", at, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].profile_id, claimed[0].attempts),
        (ProfileId(42), 1)
    );
}

#[tokio::test]
/// What the store contract's test of the same story cannot see: SQLite's identifier
/// index reaches past the erased positions.
async fn the_identifier_index_reaches_past_erased_newest_positions_after_a_restart() {
    use crate::erasure::{Erasing, Erasure};

    let dir = tempfile::tempdir().unwrap();
    let options = || SqliteOptions {
        identifier_index_chunk: 100,
        ..SqliteOptions::default()
    };
    let log = SqliteLog::open(dir.path(), options()).unwrap();
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
    log.close().await;

    let log = SqliteLog::open(dir.path(), options()).unwrap();
    log.append(&AppendBatch {
        events: vec![event("m4", "u2")],
        ..Default::default()
    })
    .await
    .unwrap();
    // The writer indexes up to the highest position, past the erased ones, once idle.
    let progress = || {
        let conn = crate::sqlite::allocator::connection(dir.path().join("events.db")).unwrap();
        identifiers::indexed_through(&conn).unwrap()
    };
    let mut waited = 0;
    while progress() < 4 && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(progress(), 4);
    assert_eq!(pages_of(&log, "u2").await, [4]);
    log.close().await;
}

#[tokio::test]
async fn statuses_are_stored_as_text_and_one_that_is_none_is_an_error() {
    use unavoce_core::identity::ProfileId;
    use unavoce_core::policy::Outcome;

    use crate::decisions::NewDecision;
    use crate::journeys::{JourneyRun, JourneyStore, RunCount, RunQuery, RunStatus};
    use crate::outbox::{Outbox, OutboxCount, OutboxQuery, OutboxStatus, Settlement};

    // Each status reads back as it is spelled, and only so.
    for status in OutboxStatus::ALL {
        assert_eq!(OutboxStatus::parse(status.as_str()), Some(status));
        assert_eq!(json!(status), json!(status.as_str()));
        assert_eq!(status.to_string(), status.as_str());
    }
    for status in RunStatus::ALL {
        assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        assert_eq!(json!(status), json!(status.as_str()));
        assert_eq!(status.to_string(), status.as_str());
    }
    for text in ["", "Pending", " sent", "failed", "active"] {
        assert_eq!(OutboxStatus::parse(text), None, "{text:?}");
    }
    for text in ["", "Active", "done", "pending"] {
        assert_eq!(RunStatus::parse(text), None, "{text:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    let at: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
    let decision = |profile: i64, channel: &str| NewDecision {
        profile_id: ProfileId(profile),
        message: "offer".into(),
        purpose: "promotional".into(),
        channel: channel.into(),
        journey: Some("welcome".into()),
        broadcast: None,
        decided_at: at,
        outcome: Outcome::Send,
        send_at: Some(at),
        reasons: json!([]),
    };
    let run = |profile: i64, status: RunStatus| JourneyRun {
        key: format!("welcome:p-{profile}:7"),
        journey: "welcome".into(),
        profile_id: ProfileId(profile),
        entered_at: at,
        control: false,
        status,
        step: 1,
        wake_at: None,
        waiting_for: None,
        blocked: false,
        watching: None,
        fallbacks: Vec::new(),
        exit_reason: None,
        converted_at: None,
        updated_at: at,
        version: 0,
    };
    log.save_runs(
        vec![
            run(1, RunStatus::Active),
            run(2, RunStatus::Exited),
            run(3, RunStatus::Completed),
        ],
        vec![
            decision(1, "email"),
            decision(2, "email"),
            decision(3, "sms"),
        ],
    )
    .await
    .unwrap();

    // An entry goes through the statuses as the outbox stores them.
    let claimed = log.claim("email", at, 1).await.unwrap();
    assert_eq!(claimed[0].status, OutboxStatus::Sending);
    let sending = claimed[0].id;
    log.settle(vec![Settlement::Sent {
        id: sending,
        provider_message_id: None,
        at,
    }])
    .await
    .unwrap();
    let claimed = log.claim("email", at, 1).await.unwrap();
    log.settle(vec![Settlement::Dead {
        id: claimed[0].id,
        error: "refused".into(),
        at,
    }])
    .await
    .unwrap();
    let conn = crate::sqlite::allocator::connection(dir.path().join("events.db")).unwrap();
    let stored = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    assert_eq!(
        stored("SELECT status FROM outbox ORDER BY id"),
        ["sent", "dead", "pending"]
    );
    assert_eq!(
        stored("SELECT status FROM journey_runs ORDER BY key"),
        ["active", "exited", "completed"]
    );
    let with_status = |status: OutboxStatus| OutboxQuery {
        status: Some(status),
        limit: 10,
        ..Default::default()
    };
    let dead = log.outbox(with_status(OutboxStatus::Dead)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].status, OutboxStatus::Dead);
    assert!(
        log.outbox(with_status(OutboxStatus::Cancelled))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        log.outbox_counts().await.unwrap(),
        vec![
            OutboxCount {
                channel: "email".into(),
                status: OutboxStatus::Dead,
                entries: 1,
            },
            OutboxCount {
                channel: "email".into(),
                status: OutboxStatus::Sent,
                entries: 1,
            },
            OutboxCount {
                channel: "sms".into(),
                status: OutboxStatus::Pending,
                entries: 1,
            },
        ]
    );
    let runs = |active_only: bool| RunQuery {
        active_only,
        limit: 10,
        ..Default::default()
    };
    let statuses = |runs: Vec<JourneyRun>| runs.iter().map(|r| r.status).collect::<Vec<_>>();
    assert_eq!(
        statuses(log.runs(runs(false)).await.unwrap()),
        [RunStatus::Active, RunStatus::Exited, RunStatus::Completed]
    );
    assert_eq!(
        statuses(log.runs(runs(true)).await.unwrap()),
        [RunStatus::Active]
    );
    let counts = log.run_counts("welcome").await.unwrap();
    assert_eq!(
        counts
            .iter()
            .map(|c: &RunCount| c.status)
            .collect::<Vec<_>>(),
        [RunStatus::Active, RunStatus::Completed, RunStatus::Exited],
        "ordered by the stored text"
    );

    // A stored value that spells no status is an error, never a panic.
    conn.execute(
        "UPDATE outbox SET status = 'failed' WHERE id = ?1",
        [sending],
    )
    .unwrap();
    conn.execute("UPDATE journey_runs SET status = 'done'", [])
        .unwrap();
    let unknown = |what: &str, e: StoreError| {
        assert!(
            matches!(&e, StoreError::Storage(m) if m.contains(what)),
            "{e}"
        );
    };
    let outbox = "unknown outbox status \"failed\"";
    unknown(
        outbox,
        log.outbox(OutboxQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap_err(),
    );
    unknown(outbox, log.outbox_entry(sending).await.unwrap_err());
    unknown(outbox, log.outbox_counts().await.unwrap_err());
    let run_status = "unknown journey run status \"done\"";
    unknown(run_status, log.runs(runs(false)).await.unwrap_err());
    unknown(run_status, log.run_counts("welcome").await.unwrap_err());
    // An entry whose status is none is not pending: a claim passes it over.
    assert!(log.claim("email", at, 10).await.unwrap().is_empty());
    assert_eq!(log.claim("sms", at, 10).await.unwrap().len(), 1);
}

/// Readers that never pause (projections following the log, the API) must not keep the
/// WAL from starting over: left to passive checkpoints it grew without bound (44 GB in
/// a 10-minute soak), and every read slowed as it grew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_while_readers_never_pause() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 64 << 20;
    let options = SqliteOptions {
        wal_limit: limit,
        ..SqliteOptions::default()
    };
    let log = Arc::new(SqliteLog::open(dir.path(), options).unwrap());
    let wal = dir.path().join("events.db-wal");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (log, stop) = (log.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let after = *log.committed().borrow() - 2_000 + r * 500;
                    let page = log
                        .events(EventQuery {
                            after_seq: Some(after.max(0)),
                            limit: 1_000,
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    reads += page.events.len() as u64 + 1;
                }
                reads
            })
        })
        .collect();
    // Appenders that keep the writer busy, as ingestion under load does: it never
    // waits for a batch, so a checkpoint never finds it idle.
    let appenders: Vec<_> = (0..4)
        .map(|a| {
            let log = log.clone();
            tokio::spawn(async move {
                let padding = "x".repeat(600);
                for batch in 0..100 {
                    let events = (0..500)
                        .map(|i| {
                            let mut e =
                                event(&format!("m-{a}-{batch}-{i}"), &format!("u-{}", i % 97));
                            e.message
                                .insert("properties".into(), json!({ "padding": padding, "n": i }));
                            e
                        })
                        .collect();
                    log.append(&AppendBatch {
                        events,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    let mut largest_wal = 0;
    while appenders.iter().any(|a| !a.is_finished()) {
        largest_wal = largest_wal.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for appender in appenders {
        appender.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
    let database = std::fs::metadata(dir.path().join("events.db"))
        .unwrap()
        .len();
    // The writer truncates it once past the limit, or tries again a quarter second
    // later (waiting longer for readers) when readers held older snapshots: a few
    // quarter seconds' commits more at most (this run's were up to 23 MiB more).
    assert!(
        largest_wal < limit + (48 << 20),
        "the WAL reached {} MiB beside a database of {} MiB",
        largest_wal >> 20,
        database >> 20
    );
}

/// An `events.db` truncated to nothing, or deleted, is not a new store: the marker the
/// first open left says a log was there, and the open is refused naming the file.
#[tokio::test]
async fn an_emptied_or_deleted_database_is_refused_not_started_empty() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    log.append(&AppendBatch {
        events: vec![event("a", "u")],
        ..Default::default()
    })
    .await
    .unwrap();
    log.close().await;
    drop(log);
    assert!(dir.path().join("events.db.created").exists());

    std::fs::File::create(&db).unwrap(); // truncated to 0 bytes
    let _ = std::fs::remove_file(dir.path().join("events.db-wal"));
    let refused = SqliteLog::open(dir.path(), SqliteOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(&refused, OpenError::Damaged { path, why } if path == &db && why.starts_with("it is empty")),
        "{refused}"
    );
    std::fs::remove_file(&db).unwrap();
    let refused = SqliteLog::open(dir.path(), SqliteOptions::default())
        .err()
        .unwrap();
    assert!(refused.to_string().contains("it is missing"), "{refused}");
    assert!(!db.exists(), "a refused open creates nothing");

    // The operator says it is a new store by removing the marker.
    std::fs::remove_file(dir.path().join("events.db.created")).unwrap();
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    assert_eq!(log.stats().await.unwrap().events, 0);
}

/// 5,000 events, about 2 MB.
async fn fill(log: &SqliteLog) {
    for chunk in 0..20 {
        let events = (0..250)
            .map(|i| event(&format!("m-{chunk}-{i}"), &format!("user-{i}")))
            .collect();
        log.append(&AppendBatch {
            events,
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

/// A store checked, filled and closed cleanly: its folder and database file.
async fn filled_and_closed() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    assert!(!log.opened_clean());
    log.checked().await.unwrap();
    fill(&log).await;
    log.close().await;
    drop(log);
    (dir, db)
}

/// `pages` pages of 4 KiB around the middle of `db` overwritten with garbage.
fn damage_the_middle(db: &std::path::Path, pages: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let len = std::fs::metadata(db).unwrap().len();
    assert!(len > 256 * 1024, "only {len} bytes");
    let at = (len / 2 / 4096).saturating_sub(pages / 2) * 4096;
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&vec![0xA5; (pages * 4096) as usize])
        .unwrap();
    file.sync_all().unwrap();
}

/// A store closed cleanly and not written since is not checked again at open; one
/// written after its close — damaged here, at once, in the coarse clock's same tick as
/// likely as not — or left without a close, is. The record trusts the file's length,
/// inode and modification time: damage that puts the time back goes unseen at open.
#[tokio::test]
async fn only_a_store_closed_cleanly_and_not_written_since_skips_the_check() {
    let (dir, db) = filled_and_closed().await;
    let record = dir.path().join("events.db.closed");
    assert!(record.exists());

    // Closed cleanly: not checked; the record is used up by the open.
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    assert!(log.opened_clean());
    assert!(!record.exists());
    log.checked().await.unwrap();
    log.append(&AppendBatch {
        events: vec![event("after-the-first-close", "u")],
        ..Default::default()
    })
    .await
    .unwrap();
    // Dropped without a close, after a write: checked.
    drop(log);
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    assert!(!log.opened_clean());
    log.checked().await.unwrap();
    log.close().await;
    drop(log);

    // Damaged right after a clean close: the file changed, so it is checked and refused.
    damage_the_middle(&db, 4);
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    assert!(!log.opened_clean());
    assert!(matches!(
        log.checked().await,
        Err(OpenError::Damaged { .. })
    ));
    // A damaged store leaves no record at its close.
    log.close().await;
    drop(log);
    assert!(!integrity::closed_cleanly(&db));
}

/// The limit of the record, shown: the file damaged in place with its modification time
/// put back to the recorded one passes the open unchecked.
#[tokio::test]
async fn damage_that_keeps_the_recorded_time_is_not_checked_at_open() {
    let (dir, db) = filled_and_closed().await;
    let modified = std::fs::metadata(&db).unwrap().modified().unwrap();
    damage_the_middle(&db, 4);
    std::fs::File::options()
        .write(true)
        .open(&db)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    assert!(log.opened_clean());
    log.checked().await.unwrap();
    log.close().await;
}

/// A page damaged in the middle of the file passes the open, which only reads headers:
/// the writer's check of every page finds it before its first commit, `checked` names
/// the file, and nothing is written to (or acknowledged by) the damaged store — not
/// the open's own bookkeeping, not a checkpoint, not a write sent before the verdict.
#[tokio::test]
async fn a_damaged_page_is_found_before_the_first_commit_and_every_write_refused() {
    let (dir, db) = filled_and_closed().await;
    damage_the_middle(&db, 4);

    let damaged = std::fs::read(&db).unwrap();

    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    // Sent at once: it waits for the verdict, and is refused.
    let batch = AppendBatch {
        events: vec![event("after", "u")],
        ..Default::default()
    };
    let write = log.append(&batch);
    let (write, checked) = tokio::join!(write, log.checked());
    let refused = checked.unwrap_err();
    assert!(
        matches!(&refused, OpenError::Damaged { path, why } if path == &db && why.contains("database main")),
        "{refused}"
    );
    let write = write.unwrap_err().to_string();
    assert!(
        write.contains("damaged") && write.contains(&db.display().to_string()),
        "{write}"
    );
    log.close().await;
    drop(log);
    assert!(
        std::fs::read(&db).unwrap() == damaged,
        "the damaged file was written to"
    );
    let wal = dir.path().join("events.db-wal");
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(wal_len, 0, "the WAL was written to");
}

/// A store killed with commits in its WAL, then damaged: found so, and closed, neither
/// file is written — SQLite's own checkpoint when the last connection closes would copy
/// the WAL into the damaged database.
#[tokio::test]
async fn a_damaged_store_s_wal_is_not_copied_into_it_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    fill(&log).await;
    // Closed and opened again, then one more event: the WAL holds the few pages it
    // changed, the database every other.
    log.close().await;
    drop(log);
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    log.append(&AppendBatch {
        events: vec![event("one-more", "u")],
        ..Default::default()
    })
    .await
    .unwrap();
    // What a kill leaves: the files as they are while the store is open.
    let crashed = tempfile::tempdir().unwrap();
    for name in ["events.db", "events.db-wal", "events.db.created"] {
        std::fs::copy(dir.path().join(name), crashed.path().join(name)).unwrap();
    }
    log.close().await;
    let (db, wal) = (
        crashed.path().join("events.db"),
        crashed.path().join("events.db-wal"),
    );
    let wal_len = std::fs::metadata(&wal).unwrap().len();
    assert!(wal_len > 32, "no commit left in the WAL ({wal_len} bytes)");
    damage_the_middle(&db, 64);
    let before = (std::fs::read(&db).unwrap(), std::fs::read(&wal).unwrap());

    let log = SqliteLog::open(crashed.path(), SqliteOptions::default()).unwrap();
    assert!(log.checked().await.is_err());
    log.close().await;
    drop(log);
    let after = (
        std::fs::read(&db).unwrap(),
        std::fs::read(&wal).unwrap_or_default(),
    );
    assert!(after.0 == before.0, "the damaged database was written to");
    assert!(after.1 == before.1, "the WAL was changed");
}
