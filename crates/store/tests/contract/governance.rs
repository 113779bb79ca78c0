//! The governance contract, on the store `UNAVOCE_TEST_STORE` names.

use jiff::Timestamp;
use unavoce_core::access::Role;
use unavoce_core::audit::{AuditEntry, GENESIS, verify};
use unavoce_store::*;
use unavoce_testkit::store::TestStore;

fn at() -> Timestamp {
    "2024-05-01T10:00:00Z".parse().unwrap()
}

fn key(name: &str, role: Role, hash: &str) -> ApiKey {
    ApiKey {
        name: name.into(),
        role,
        key_hash: hash.into(),
        created_at: at(),
        last_used_at: None,
    }
}

fn entry(actor: &str, action: &str, profile: Option<&str>) -> AuditEntry {
    AuditEntry {
        at: at(),
        actor: actor.into(),
        role: "owner".into(),
        action: action.into(),
        profile_id: profile.map(Into::into),
        outcome: 200,
    }
}

#[tokio::test]
async fn keys_are_kept_by_hash_and_the_audit_log_is_one_chain() {
    let log = TestStore::open().await;
    assert!(
        log.create_key(key("care", Role::Agent, "h1"))
            .await
            .unwrap()
    );
    assert!(
        !log.create_key(key("care", Role::Owner, "h2"))
            .await
            .unwrap(),
        "the name is taken"
    );
    log.put_key(key("admin", Role::Owner, "h0")).await.unwrap();
    log.put_key(key("admin", Role::Owner, "h3")).await.unwrap();
    assert_eq!(log.key_by_hash("h0").await.unwrap(), None, "replaced");
    assert_eq!(
        log.key_by_hash("h1").await.unwrap().unwrap().role,
        Role::Agent
    );
    log.touch_key("care", at()).await.unwrap();
    let names: Vec<_> = log
        .keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["admin", "care"]);
    assert_eq!(
        log.key_by_name("care").await.unwrap().unwrap().last_used_at,
        Some(at())
    );
    assert!(log.revoke_key("care").await.unwrap());
    assert!(!log.revoke_key("care").await.unwrap());
    assert_eq!(log.key_by_hash("h1").await.unwrap(), None);

    log.audit(vec![
        entry("admin", "POST /api/keys", None),
        entry("care", "GET /api/profiles/{id}/context", Some("p-1")),
    ])
    .await
    .unwrap();
    log.audit(vec![entry("care", "GET /api/profiles/{id}", Some("p-2"))])
        .await
        .unwrap();
    let chain = log.audit_chain(0, 100).await.unwrap();
    assert_eq!(verify(&chain, (0, GENESIS)).unwrap().0, 3);
    let by_care = log
        .audit_records(AuditQuery {
            actor: Some("care".into()),
            action: Some("GET /api/profiles/{id}/".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_care.len(), 1);
    assert_eq!(by_care[0].entry.profile_id.as_deref(), Some("p-1"));
    let page = log
        .audit_records(AuditQuery {
            before: Some(3),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page[0].seq, 2, "newest first, before the cursor");
}

#[tokio::test]
async fn a_key_put_in_place_takes_its_hash_from_any_other_and_a_touch_never_goes_back() {
    let log = TestStore::open().await;
    let later: Timestamp = "2024-05-02T10:00:00Z".parse().unwrap();
    assert!(
        log.create_key(key("care", Role::Agent, "h1"))
            .await
            .unwrap()
    );
    assert!(
        !log.create_key(key("other", Role::Agent, "h1"))
            .await
            .unwrap(),
        "the hash is taken"
    );
    log.touch_key("care", later).await.unwrap();
    log.touch_key("care", at()).await.unwrap();
    assert_eq!(
        log.key_by_name("care").await.unwrap().unwrap().last_used_at,
        Some(later),
        "the latest use is kept"
    );
    log.touch_key("nobody", later).await.unwrap();

    log.put_key(key("ops", Role::Owner, "h1")).await.unwrap();
    assert_eq!(log.key_by_name("care").await.unwrap(), None);
    assert_eq!(
        log.key_by_hash("h1").await.unwrap(),
        Some(key("ops", Role::Owner, "h1"))
    );
    log.put_key(key("ops", Role::Analyst, "h2")).await.unwrap();
    let log = log.reopen().await;
    assert_eq!(log.keys().await.unwrap(), [key("ops", Role::Analyst, "h2")]);
}

#[tokio::test]
async fn audit_records_are_read_by_profile_action_time_and_page() {
    let log = TestStore::open().await;
    let minute = |m: i64| at() + jiff::SignedDuration::from_secs(60 * m);
    log.audit(
        (0..6)
            .map(|m| AuditEntry {
                at: minute(m),
                outcome: 200 + m as u16,
                ..entry(
                    if m % 2 == 0 { "admin" } else { "care" },
                    if m < 3 {
                        "GET /api/profiles/{id}"
                    } else {
                        "POST /api/erasures"
                    },
                    Some(if m < 4 { "p-1" } else { "p-2" }),
                )
            })
            .collect(),
    )
    .await
    .unwrap();
    log.audit(Vec::new()).await.unwrap();
    let seqs = |records: Vec<unavoce_core::audit::AuditRecord>| {
        records.into_iter().map(|r| r.seq).collect::<Vec<_>>()
    };
    let query = |q: AuditQuery| AuditQuery { limit: 100, ..q };
    assert_eq!(
        seqs(
            log.audit_records(query(AuditQuery::default()))
                .await
                .unwrap()
        ),
        [6, 5, 4, 3, 2, 1]
    );
    let p1_posts = AuditQuery {
        profile_id: Some("p-1".into()),
        action: Some("POST".into()),
        ..Default::default()
    };
    assert_eq!(seqs(log.audit_records(query(p1_posts)).await.unwrap()), [4]);
    let window = AuditQuery {
        from: Some(minute(1)),
        to: Some(minute(4)),
        ..Default::default()
    };
    assert_eq!(
        seqs(log.audit_records(query(window)).await.unwrap()),
        [4, 3, 2]
    );
    let oldest = log.audit_chain(0, 2).await.unwrap();
    assert_eq!(oldest[1].entry.outcome, 201);
    let (seq, hash) = verify(&oldest, (0, GENESIS)).unwrap();
    let rest = log.audit_chain(seq, 100).await.unwrap();
    assert_eq!(verify(&rest, (seq, &hash)).unwrap().0, 6, "read in pieces");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_appends_from_many_tasks_at_once_make_one_chain() {
    let log = TestStore::open().await;
    let store = log.store();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for request in 0..10 {
                    let actor = format!("node-{task}");
                    let entries = (0..=request % 3)
                        .map(|i| entry(&actor, &format!("GET /api/{request}/{i}"), None))
                        .collect();
                    store.audit(entries).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let appended = 8 * (0..10).map(|request| request % 3 + 1).sum::<i64>();
    let chain = log.audit_chain(0, 100_000).await.unwrap();
    assert_eq!(chain.len() as i64, appended);
    assert_eq!(verify(&chain, (0, GENESIS)).unwrap().0, appended);
    for task in 0..8 {
        let actor = format!("node-{task}");
        let mine: Vec<_> = chain
            .iter()
            .filter(|r| r.entry.actor == actor)
            .map(|r| r.entry.action.clone())
            .collect();
        let sent: Vec<_> = (0..10)
            .flat_map(|request| (0..=request % 3).map(move |i| format!("GET /api/{request}/{i}")))
            .collect();
        assert_eq!(
            mine, sent,
            "each task's entries in the order it appended them"
        );
    }
}

#[tokio::test]
async fn an_ended_session_stays_ended_until_it_would_have_expired() {
    let log = TestStore::open().await;
    let hour = jiff::SignedDuration::from_hours(1);
    let now = at();
    assert!(!log.session_ended("sig-a").await.unwrap());
    log.end_session("sig-a", now + hour, now).await.unwrap();
    log.end_session("sig-a", now + hour, now).await.unwrap();
    assert!(log.session_ended("sig-a").await.unwrap(), "ended, twice");
    assert!(
        !log.session_ended("sig-b").await.unwrap(),
        "another session"
    );
    // Ending a session two hours later forgets the first: it has expired anyway.
    let later = now + hour * 2;
    log.end_session("sig-b", later + hour, later).await.unwrap();
    assert!(log.session_ended("sig-b").await.unwrap());
    assert!(
        !log.session_ended("sig-a").await.unwrap(),
        "forgotten once expired"
    );
}
