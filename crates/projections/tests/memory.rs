//! What the projections hold per profile (issue 17, target 5): generated journeys are
//! stored, the projections built from the log as at start-up, and the bytes they hold
//! on the heap counted by this binary's own global allocator (its own test binary, so
//! nothing else allocates meanwhile). The per-event rows (the interaction table's and
//! the event links) live in mapped files as in production, and are counted at their size.
//!
//! Prints the breakdown (`cargo test -p unavoce-projections --test memory -- --nocapture`)
//! and fails when the total per profile grows past what it was last measured at.

use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use unavoce_core::analytics::Interaction;
use unavoce_core::identity::{EventLink, IdentityRules};
use unavoce_core::profile::default_computed_traits;
use unavoce_core::segment::{IntakeContext, TouchpointChannels, normalise};
use unavoce_projections::{IdentityProjection, Start};
use unavoce_store::sqlite::{bulk_insert_baseline, memory_used as sqlite_memory_used};
use unavoce_store::{Durability, EventLog, EventRow, SqliteLog, SqliteOptions};
use unavoce_synthetic::sdk_message;
use unavoce_testkit::counting::{Counting, held};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes per profile held by the projections over generated journeys, last measured
/// (with a little room): a change that makes profiles dearer fails here.
const MAX_BYTES_PER_PROFILE: usize = 1_500;

const PEOPLE: usize = 20_000;

/// Bytes per event outside the heap: an interaction row and an event link.
const ROW_BYTES: usize = size_of::<Interaction>() + size_of::<EventLink>();

/// The tests here count the same global allocator: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_held_per_profile() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // SQLite allocates through this allocator once a store opened first (its caches are
    // then counted, and taken off the projections' count below).
    let first = tempfile::tempdir().unwrap();
    SqliteLog::open(first.path(), SqliteOptions::default())
        .unwrap()
        .close()
        .await;
    let end: Timestamp = "2025-03-31T00:00:00Z".parse().unwrap();
    let data = unavoce_synthetic::touchpoint_histories_of(0..PEOPLE, 11, end);
    let channels: TouchpointChannels = data
        .touchpoints
        .iter()
        .map(|t| {
            let t: unavoce_core::Touchpoint = serde_json::from_value(t.clone()).unwrap();
            (t.id, t.channel)
        })
        .collect();
    let mut ctx = IntakeContext::new(end, "memory");
    ctx.touchpoint_channels = Some(&channels);
    let rows: Vec<EventRow> = data
        .messages
        .into_iter()
        .map(|(message, _)| {
            let event = normalise(message, &ctx, || "x".into()).unwrap();
            EventRow::from_event(&event).unwrap()
        })
        .collect();
    let events = rows.len();
    bulk_insert_baseline(dir.path(), &rows, 50_000, Durability::Normal).unwrap();
    drop(rows);

    let log: Arc<dyn EventLog> =
        Arc::new(SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap());
    // SQLite's caches fill on a first build; what a second build adds is the projections.
    let rows_folder = dir.path().join("snapshots");
    let warm = open(&log, &rows_folder).await;
    drop(warm);
    let before = held() - sqlite_memory_used() as usize;
    let projection = open(&log, &rows_folder).await;
    let heap = held() - sqlite_memory_used() as usize - before;
    let rows = events * ROW_BYTES;
    let total = heap + rows;

    // Each part measured as a copy of it: a copy holds no spare room, and shares the
    // identifier texts (reference-counted) with the original, so what the whole holds
    // beyond the parts is their spare room and the identifier texts.
    let (profiles, graph) = projection.read(|g| {
        // The copy holds the event links on the heap: they are counted with the rows.
        let links = g.event_links().len() * size_of::<EventLink>();
        (g.profile_count(), bytes_of_copy(g) - links)
    });
    let people = projection.read_people(|_, people| bytes_of_copy(people));
    let table = projection
        .read_with_interactions(|_, t| bytes_of_copy(t) - t.len() * size_of::<Interaction>());
    let per = |bytes: usize| bytes as f64 / profiles as f64;
    println!(
        "{events} events, {profiles} profiles ({:.1} events each): {:.0} bytes per profile all \
         told: per-event rows {:.0}; on the heap {:.0}: identity graph {:.0}, profile states \
         {:.0}, interaction table's names {:.0}, identifier texts and spare room {:.0}",
        events as f64 / profiles as f64,
        per(total),
        per(rows),
        per(heap),
        per(graph),
        per(people),
        per(table),
        per(heap.saturating_sub(graph + people + table)),
    );
    assert!(profiles > PEOPLE / 2, "{profiles} profiles");
    assert!(
        per(total) <= MAX_BYTES_PER_PROFILE as f64,
        "{:.0} bytes per profile, over the {MAX_BYTES_PER_PROFILE} last measured",
        per(total)
    );

    // A restart from a snapshot holds what the replay held: the identifier texts the
    // snapshot writes once per place are shared again as they are read.
    projection
        .take_snapshot()
        .await
        .unwrap()
        .expect("a snapshot");
    let replayed = projection.read(|g| g.clone());
    drop(projection);
    let before = held() - sqlite_memory_used() as usize;
    let restarted = open(&log, &rows_folder).await;
    let restarted_heap = held() - sqlite_memory_used() as usize - before;
    assert!(
        matches!(restarted.start(), Start::Snapshot { .. }),
        "{:?}",
        restarted.start()
    );
    assert!(restarted.read(|g| *g == replayed));
    println!(
        "after a start from a snapshot: {:.0} bytes per profile all told ({:.0} on the heap)",
        per(restarted_heap + rows),
        per(restarted_heap)
    );
    assert!(
        restarted_heap <= heap + heap / 50,
        "a start from a snapshot holds {restarted_heap} bytes, a replay {heap}"
    );
    log.close().await;
}

/// A fixed population's state levels off (issue 16's soak, without the HTTP edge): once
/// every person has been seen, more of the same people's SDK-shaped events — identify,
/// page, screen, product views, orders with fresh ids — add nothing on the heap but the
/// per-event rows' mapped files, which are not on it. (SQLite's share, subtracted, counts
/// its blocks' headers: without them its page cache, filling as the file grows, looked
/// like 2.3 bytes per event held.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_population_s_state_levels_off() {
    const PEOPLE: usize = 2_000;
    const PHASE: u64 = 60_000;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap());
    let projection = open(&log, &dir.path().join("snapshots")).await;
    let start: Timestamp = "2026-12-07T08:00:00Z".parse().unwrap();
    let heap = || held() - sqlite_memory_used() as usize;
    // The soak's traffic (`unavoce bench soak`), from a seed.
    let mut rng = fastrand::Rng::with_seed(16);
    let mut after = Vec::new();
    for phase in 0..3 {
        for batch in (phase * PHASE..(phase + 1) * PHASE).step_by(500) {
            let events = (batch..batch + 500)
                .map(|n| {
                    let at = start + jiff::SignedDuration::from_millis(n as i64 * 10);
                    let ctx = IntakeContext::new(at, "memory");
                    let mut message = sdk_message(&mut rng, PEOPLE);
                    message["messageId"] = format!("m-{n}").into();
                    message["timestamp"] = at.to_string().into();
                    let serde_json::Value::Object(message) = message else {
                        unreachable!("a message is an object")
                    };
                    normalise(message, &ctx, || "x".into()).unwrap()
                })
                .collect();
            log.append(&unavoce_store::AppendBatch {
                events,
                ..Default::default()
            })
            .await
            .unwrap();
            projection.catch_up().await.unwrap();
            projection.settle();
        }
        after.push(heap());
    }
    let profiles = projection.read(|g| g.profile_count());
    let grew = |i: usize| after[i] as i64 - after[i - 1] as i64;
    println!(
        "{PEOPLE} people, {profiles} profiles: heap after each {PHASE} events {after:?}; the last two phases added {} and {} bytes",
        grew(1),
        grew(2)
    );
    assert_eq!(profiles, PEOPLE);
    // Maps keep their capacity; what may still move is a list's spare room.
    let slack = after[0] as i64 / 100;
    assert!(
        grew(2) <= slack,
        "the last {PHASE} events added {} bytes: the state grows with the events",
        grew(2)
    );
    log.close().await;
}

/// The bytes a copy of `value` holds.
fn bytes_of_copy<T: Clone>(value: &T) -> usize {
    let before = held();
    let copy = value.clone();
    let bytes = held() - before;
    drop(copy);
    bytes
}

async fn open(log: &Arc<dyn EventLog>, rows: &Path) -> Arc<IdentityProjection> {
    let projection = IdentityProjection::open_with_snapshots(
        log.clone(),
        IdentityRules::default_rules(),
        Default::default(),
        Arc::new(default_computed_traits()),
        Some(rows.to_path_buf()),
    )
    .await
    .unwrap();
    // The events it read are freed on its helper thread: done before anything is counted.
    projection.settle();
    projection
}
