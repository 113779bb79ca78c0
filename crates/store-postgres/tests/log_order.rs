//! One log order for every node: while two nodes append concurrently, a reader that
//! follows the log with a cursor (as every node's projections do) never skips an event
//! that commits later with a lower position.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use unavoce_core::segment::{IntakeContext, normalise};
use unavoce_store::{AppendBatch, EventLog, EventQuery};
use unavoce_store_postgres::testing::TestDatabase;
use unavoce_store_postgres::{PgOptions, PgStore};

const NODES: usize = 2;
const WRITERS_PER_NODE: usize = 4;
const BATCHES_PER_WRITER: usize = 40;
const EVENTS_PER_BATCH: usize = 25;

fn batch(writer: usize, batch: usize) -> AppendBatch {
    let events = (0..EVENTS_PER_BATCH)
        .map(|i| {
            let id = format!("w{writer}-b{batch}-e{i}");
            normalise(
                json!({"type": "track", "userId": format!("u{writer}"), "event": "Tapped",
                    "messageId": id})
                .as_object()
                .unwrap()
                .clone(),
                &IntakeContext::new("2024-05-01T10:00:00Z".parse().unwrap(), "test"),
                || unreachable!(),
            )
            .unwrap()
        })
        .collect();
    AppendBatch {
        events,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_following_the_log_never_skips_an_event_while_nodes_append_at_once() {
    let database = TestDatabase::create().await.unwrap();
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Arc::new(
            PgStore::open(&database.url, PgOptions::default())
                .await
                .unwrap(),
        ));
    }
    let mut writers = Vec::new();
    for w in 0..NODES * WRITERS_PER_NODE {
        let node = nodes[w % NODES].clone();
        writers.push(tokio::spawn(async move {
            for b in 0..BATCHES_PER_WRITER {
                node.append(&batch(w, b)).await.unwrap();
            }
        }));
    }
    // The reader: a third node following the log from position 0, page by page,
    // while the appends go on; it keeps every position it saw, in the order seen.
    let reader = PgStore::open(&database.url, PgOptions::default())
        .await
        .unwrap();
    let total = NODES * WRITERS_PER_NODE * BATCHES_PER_WRITER * EVENTS_PER_BATCH;
    let mut seen = Vec::with_capacity(total);
    let mut cursor = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reader saw {} of {total}",
            seen.len()
        );
        let page = reader
            .events(EventQuery {
                after_seq: Some(cursor),
                limit: 97,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.events.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        for event in &page.events {
            seen.push(event.seq);
        }
        cursor = page.events.last().map(|e| e.seq).unwrap_or(cursor);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    // Every position from 1 to the total exactly once, in order: had an event committed
    // after the reader passed its position, the reader would never have seen it.
    let expected: Vec<i64> = (1..=total as i64).collect();
    assert_eq!(seen, expected);
}
