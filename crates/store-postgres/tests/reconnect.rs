//! A node whose connections to PostgreSQL are cut connects again: appends and reads
//! work after the next attempt.

use serde_json::json;
use unavoce_core::segment::{IntakeContext, normalise};
use unavoce_store::{AppendBatch, EventLog};
use unavoce_store_postgres::testing::TestDatabase;
use unavoce_store_postgres::{PgOptions, PgStore};

fn one(id: &str) -> AppendBatch {
    let event = normalise(
        json!({"type": "track", "userId": "u", "event": "Tapped", "messageId": id})
            .as_object()
            .unwrap()
            .clone(),
        &IntakeContext::new("2024-05-01T10:00:00Z".parse().unwrap(), "test"),
        || unreachable!(),
    )
    .unwrap();
    AppendBatch {
        events: vec![event],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_and_reads_go_on_after_the_connections_were_cut() {
    let database = TestDatabase::create().await.unwrap();
    let store = PgStore::open(&database.url, PgOptions::default())
        .await
        .unwrap();
    store.append(&one("before")).await.unwrap();
    let (admin, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let cut = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(!cut.is_empty(), "the store's connections were cut");
    // The first attempt may meet the dead connection; the next ones connect again.
    let mut appended = None;
    for attempt in 0..5 {
        match store.append(&one(&format!("after-{attempt}"))).await {
            Ok(outcome) => {
                appended = Some(outcome);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    assert!(appended.is_some(), "appends work again");
    let mut stats = None;
    for _ in 0..5 {
        if let Ok(read) = store.stats().await {
            stats = Some(read);
            break;
        }
    }
    assert_eq!(stats.expect("reads work again").events, 2);
}
