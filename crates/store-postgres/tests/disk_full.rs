//! PostgreSQL's "disk full" (SQLSTATE 53100) is the store's `Full`, as SQLite's
//! `SQLITE_FULL` is: the server answers 507 with `Retry-After`, not a 500. The server
//! raises it here from a trigger on the events table, on the real append path (COPY).

use serde_json::json;
use unavoce_core::segment::{IntakeContext, normalise};
use unavoce_store::{AppendBatch, Appended, EventLog, StoreError};
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
async fn a_full_disk_refuses_the_append_as_full_and_stores_nothing_of_it() {
    let database = TestDatabase::create().await.unwrap();
    let store = PgStore::open(&database.url, PgOptions::default())
        .await
        .unwrap();
    store.append(&one("before")).await.unwrap();
    let (admin, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(
            "CREATE FUNCTION no_space() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               RAISE EXCEPTION 'could not extend file: No space left on device' \
               USING ERRCODE = 'disk_full'; END $$; \
             CREATE TRIGGER no_space BEFORE INSERT ON events \
               FOR EACH ROW EXECUTE FUNCTION no_space();",
        )
        .await
        .unwrap();
    let refused = store.append(&one("while-full")).await;
    assert!(
        matches!(&refused, Err(StoreError::Full(reason)) if reason.contains("53100")),
        "{refused:?}"
    );

    admin
        .batch_execute("DROP TRIGGER no_space ON events")
        .await
        .unwrap();
    let again = store.append(&one("while-full")).await.unwrap();
    assert!(
        matches!(again.events[..], [Appended::Stored { .. }]),
        "the refused event was not stored: {again:?}"
    );
    assert_eq!(store.stats().await.unwrap().events, 2);
}
