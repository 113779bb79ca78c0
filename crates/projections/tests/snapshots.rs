//! Snapshots of the projections: a start from a snapshot and the log after it gives
//! exactly what a replay of the whole log gives, and a snapshot that is not valid for
//! this log and these rules is refused, with a replay of the whole log instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use unavoce_core::analytics::Interaction;
use unavoce_core::identity::{EventLink, IdentityRules};
use unavoce_core::profile::{ComputedTrait, default_computed_traits};
use unavoce_core::{Identifier, IdentifierType};
use unavoce_intake::Intake;
use unavoce_projections::{IdentityProjection, Start};
use unavoce_store::{Erasure, Store};
use unavoce_testkit::store::TestStore;

mod support;

use support::events;

async fn open_with(
    store: &Arc<dyn Store>,
    snapshots: Option<PathBuf>,
    computed: Vec<ComputedTrait>,
) -> Arc<IdentityProjection> {
    IdentityProjection::open_with_snapshots(
        store.clone(),
        IdentityRules::default_rules(),
        Default::default(),
        Arc::new(computed),
        snapshots,
    )
    .await
    .unwrap()
}

async fn open(store: &Arc<dyn Store>, snapshots: Option<PathBuf>) -> Arc<IdentityProjection> {
    open_with(store, snapshots, default_computed_traits()).await
}

async fn send(store: &Arc<dyn Store>, messages: Vec<Value>) {
    let messages: Vec<Map<String, Value>> = messages
        .into_iter()
        .map(|m| m.as_object().unwrap().clone())
        .collect();
    let report = Intake::new(store.clone())
        .record("test", messages, json!({}))
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

fn device(value: &str) -> Identifier {
    Identifier {
        kind: IdentifierType::AnonymousId,
        value: value.into(),
    }
}

fn snapshot_file(dir: &Path) -> PathBuf {
    dir.join("identity.snapshot")
}

/// A store with events, a link decision, and a snapshot taken by a projection over it.
async fn with_snapshot() -> (TestStore, PathBuf, i64) {
    let test_store = TestStore::open().await;
    let store = test_store.store();
    let dir = test_store.dir.path().join("snapshots");
    send(&store, events(0, 60)).await;
    let first = open(&store, Some(dir.clone())).await;
    assert_eq!(first.start(), Start::Replay { refused: None });
    first
        .link(&device("kiosk-0"), &device("kiosk-10"), "review", None)
        .await
        .unwrap();
    let taken = first.take_snapshot().await.unwrap().expect("a snapshot");
    assert!(snapshot_file(&dir).exists());
    assert!(taken.bytes > 0);
    (test_store, dir, taken.seq)
}

fn refused(start: Start) -> String {
    match start {
        Start::Replay { refused: Some(why) } => why,
        other => panic!("the snapshot was used: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_and_the_tail_equal_a_replay_of_the_whole_log() {
    let (test_store, dir, seq) = with_snapshot().await;
    let store = test_store.store();
    // The tail: more of the same people (merges into profiles the snapshot holds), new
    // people, and a link decision after the snapshot's position.
    send(&store, events(30, 60)).await;
    let live = open(&store, None).await;
    live.link(&device("kiosk-70"), &device("kiosk-80"), "review", None)
        .await
        .unwrap();
    send(&store, events(85, 10)).await;

    let restarted = open(&store, Some(dir.clone())).await;
    assert_eq!(restarted.start(), Start::Snapshot { seq });
    let replayed = open(&store, None).await;
    assert!(
        restarted.same_as(&replayed),
        "a start from the snapshot differs from a full replay"
    );
    assert!(replayed.same_as(&restarted));
    // The snapshot is not silently the same as an empty state.
    let profiles = restarted.read(|g| g.profile_count());
    assert!(profiles > 20, "{profiles} profiles");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_at_the_head_of_the_log_needs_no_tail() {
    let (test_store, dir, seq) = with_snapshot().await;
    let store = test_store.store();
    let restarted = open(&store, Some(dir)).await;
    assert_eq!(restarted.start(), Start::Snapshot { seq });
    assert!(restarted.same_as(&*open(&store, None).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_under_other_rules_is_refused() {
    let (test_store, dir, _) = with_snapshot().await;
    let store = test_store.store();
    let computed = default_computed_traits()
        .into_iter()
        .skip(1)
        .collect::<Vec<_>>();
    let restarted = open_with(&store, Some(dir.clone()), computed.clone()).await;
    assert!(refused(restarted.start()).contains("other rules"));
    assert!(restarted.same_as(&*open_with(&store, None, computed).await));
    // What the comparison tells apart: states kept with other computed traits.
    assert!(!restarted.same_as(&*open(&store, None).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_from_before_an_unmerge_or_a_link_it_covers_is_refused() {
    let (test_store, dir, _) = with_snapshot().await;
    let store = test_store.store();
    let kept = std::fs::read(snapshot_file(&dir)).unwrap();
    // An unmerge removes the snapshot; put back by hand (a backup), it is refused.
    let live = open(&store, Some(dir.clone())).await;
    let profile = live
        .read(|g| {
            g.lookup(&live.rules().key_of(&device("device-5")).unwrap())
                .map(|n| n.id)
        })
        .unwrap();
    live.unmerge(profile, &device("device-5")).await.unwrap();
    assert!(
        !snapshot_file(&dir).exists(),
        "the unmerge removes the snapshot"
    );
    std::fs::write(snapshot_file(&dir), &kept).unwrap();
    let restarted = open(&store, Some(dir.clone())).await;
    assert!(refused(restarted.start()).contains("other rules"));
    assert!(restarted.same_as(&*open(&store, None).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_truncated_or_other_format_snapshot_is_refused() {
    let (test_store, dir, _) = with_snapshot().await;
    let store = test_store.store();
    let good = std::fs::read(snapshot_file(&dir)).unwrap();
    let replayed = open(&store, None).await;

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x5a;
    let mut other_format = good.clone();
    other_format[8..12].copy_from_slice(&99u32.to_le_bytes());
    for (what, bytes, says) in [
        ("a flipped byte", flipped, "damaged"),
        ("truncated", good[..good.len() - 100].to_vec(), "damaged"),
        ("no checksum", good[..good.len() - 4].to_vec(), "damaged"),
        ("empty", Vec::new(), "damaged"),
        ("another format", other_format, "format 99"),
    ] {
        std::fs::write(snapshot_file(&dir), &bytes).unwrap();
        let restarted = open(&store, Some(dir.clone())).await;
        let why = refused(restarted.start());
        assert!(why.contains(says), "{what}: {why}");
        assert!(restarted.same_as(&replayed), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_log_is_refused() {
    // A snapshot without link decisions (they are settings of the store: another store
    // without them is refused for that already).
    let first = TestStore::open().await;
    let dir = first.dir.path().join("snapshots");
    send(&first.store(), events(0, 60)).await;
    let taken = open(&first.store(), Some(dir.clone()))
        .await
        .take_snapshot()
        .await
        .unwrap();
    assert!(taken.is_some());
    // Another store: fewer events (its log does not reach the position) …
    let shorter = TestStore::open().await;
    send(&shorter.store(), events(0, 5)).await;
    let restarted = open(&shorter.store(), Some(dir.clone())).await;
    assert!(refused(restarted.start()).contains("no longer holds"));
    assert!(restarted.same_as(&*open(&shorter.store(), None).await));
    // … or as many, but others.
    let other = TestStore::open().await;
    send(&other.store(), events(500, 70)).await;
    let restarted = open(&other.store(), Some(dir.clone())).await;
    assert!(refused(restarted.start()).contains("is another"));
    assert!(restarted.same_as(&*open(&other.store(), None).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_is_never_undone_by_a_snapshot() {
    let (test_store, dir, _) = with_snapshot().await;
    let store = test_store.store();
    let kept = std::fs::read(snapshot_file(&dir)).unwrap();
    let live = open(&store, Some(dir.clone())).await;
    assert!(matches!(live.start(), Start::Snapshot { .. }));
    let key = live.rules().key_of(&device("device-10")).unwrap();
    let (node, seqs) = live
        .read(|g| g.lookup(&key).map(|n| (n.clone(), g.events(n))))
        .unwrap();
    let keys: Vec<_> = node.identifiers.iter().map(|(k, _)| k.clone()).collect();
    store
        .erase(Erasure {
            seqs,
            profile_ids: node.ids().collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    live.forget(&keys, node.id).await.unwrap();
    assert!(
        !snapshot_file(&dir).exists(),
        "the erasure removes the snapshot"
    );
    // A snapshot written meanwhile is not put in place until the rebuild is done.
    assert_eq!(live.take_snapshot().await.unwrap(), None);

    // A crash between the store's erasure and the projection's: the old snapshot is
    // still there. It is refused, and the person does not come back.
    std::fs::write(snapshot_file(&dir), &kept).unwrap();
    let restarted = open(&store, Some(dir.clone())).await;
    let why = refused(restarted.start());
    assert!(
        why.contains("removed from the log") || why.contains("no longer holds"),
        "{why}"
    );
    assert!(restarted.read(|g| g.lookup(&key).is_none()));
    assert!(restarted.same_as(&*open(&store, None).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_taken_in_the_background_and_used_at_the_next_start() {
    let test_store = TestStore::open().await;
    let store = test_store.store();
    let dir = test_store.dir.path().join("snapshots");
    send(&store, events(0, 20)).await;
    let live = open(&store, Some(dir.clone())).await;
    let task = live.snapshot_when_due(std::time::Duration::from_millis(50), 1);
    for _ in 0..100 {
        if live.last_snapshot().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    task.abort();
    let taken = live
        .last_snapshot()
        .expect("a snapshot taken in the background");
    assert!(snapshot_file(&dir).exists());
    send(&store, events(20, 5)).await;
    let restarted = open(&store, Some(dir)).await;
    assert_eq!(restarted.start(), Start::Snapshot { seq: taken.seq });
    assert!(restarted.same_as(&*open(&store, None).await));
}

/// With a folder, what grows with every event (the interaction table's rows, the graph's
/// event links) is kept in mapped files, not on the heap; and it is the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_event_rows_live_in_mapped_files_not_on_the_heap() {
    let test_store = TestStore::open().await;
    let store = test_store.store();
    send(&store, events(0, 300)).await;
    let mapped = open(&store, Some(test_store.dir.path().join("snapshots"))).await;
    let heap = open(&store, None).await;
    assert!(mapped.same_as(&heap) && heap.same_as(&mapped));
    let held = |p: &IdentityProjection| {
        p.read_with_interactions(|g, t| (t.len(), g.links_heap_bytes(), t.heap_bytes()))
    };
    let (rows, mapped_links, mapped_table) = held(&mapped);
    let (_, heap_links, heap_table) = held(&heap);
    assert!(rows > 1_500, "{rows} events");
    // Mapped, only the rows' positions are on the heap: a few runs.
    assert!(
        mapped_links < 1_024,
        "{mapped_links} bytes of event links on the heap"
    );
    assert!(
        heap_links >= rows * size_of::<EventLink>(),
        "{heap_links} bytes for {rows} links"
    );
    assert!(
        heap_table >= mapped_table + rows * size_of::<Interaction>(),
        "table on the heap: {heap_table} bytes mapped, {mapped_table} not"
    );
    // A profile's events, walked through the mapped links, are all there.
    let key = mapped.rules().key_of(&device("device-3")).unwrap();
    let events = |p: &IdentityProjection| p.read(|g| g.lookup(&key).map(|n| g.events(n)));
    let walked = events(&mapped).expect("a profile");
    assert!(walked.len() >= 8, "{walked:?}");
    assert_eq!(Some(walked), events(&heap));
}

/// Two snapshots asked for at once (the periodic one and the one at shutdown) are taken
/// one after the other: neither fails, and the one in place is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_asked_for_at_once_are_taken_one_at_a_time() {
    let test_store = TestStore::open().await;
    let store = test_store.store();
    let dir = test_store.dir.path().join("snapshots");
    send(&store, events(0, 40)).await;
    let live = open(&store, Some(dir.clone())).await;
    for round in 0..3 {
        send(&store, events(100 + round * 10, 10)).await;
        live.catch_up().await.unwrap();
        let (a, b) = tokio::join!(live.take_snapshot(), live.take_snapshot());
        let taken = [a.unwrap(), b.unwrap()];
        assert_eq!(taken.iter().flatten().count(), 1, "{taken:?}");
    }
    let restarted = open(&store, Some(dir)).await;
    assert!(matches!(restarted.start(), Start::Snapshot { .. }));
    assert!(restarted.same_as(&live));
}

/// A snapshot is written by a child process holding the state as it was when the write
/// began: meanwhile new events are applied and `catch_up` returns. Here the child is held
/// up by its file, a pipe of one page that the test reads only when it chooses.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_events_are_applied_while_a_snapshot_is_written() {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Duration;

    let test_store = TestStore::open().await;
    let store = test_store.store();
    let dir = test_store.dir.path().join("snapshots");
    send(&store, events(0, 60)).await;
    let live = open(&store, Some(dir.clone())).await;
    let before = live.catch_up().await.unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let partial = dir.join("identity.snapshot.partial");
    let path = std::ffi::CString::new(partial.as_os_str().as_bytes()).unwrap();
    // SAFETY: a plain system call on a path we own.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let mut pipe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&partial)
        .unwrap();
    // SAFETY: as above, on a descriptor we own.
    let _ = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&pipe),
            libc::F_SETPIPE_SZ,
            4096,
        )
    };
    let snapshot = tokio::spawn({
        let live = live.clone();
        async move { live.take_snapshot().await }
    });
    // Reads what is in the pipe; whether the writing end was closed (the child ended).
    let mut written = Vec::new();
    let mut read = |written: &mut Vec<u8>| {
        let mut piece = [0u8; 4096];
        match pipe.read(&mut piece) {
            Ok(0) => true,
            Ok(n) => {
                written.extend_from_slice(&piece[..n]);
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("{e}"),
        }
    };
    // The first bytes: the child runs, so the state it writes is fixed.
    for _ in 0..6_000 {
        read(&mut written);
        if !written.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!written.is_empty(), "the snapshot's child never wrote");

    send(&store, events(60, 5)).await;
    let after = tokio::time::timeout(Duration::from_secs(60), live.catch_up())
        .await
        .expect("catch_up waited for the snapshot being written")
        .unwrap();
    assert!(after > before, "{after} after {before}");
    assert!(!snapshot.is_finished(), "the snapshot was not held up");

    // The path taken away (the snapshot cannot be put in place from it), then the rest.
    std::fs::remove_file(&partial).unwrap();
    while !read(&mut written) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        written.len() > 3 * 4096,
        "{} bytes: the pipe held it all",
        written.len()
    );
    let outcome = snapshot.await.unwrap();
    assert!(
        outcome.is_err(),
        "put in place from a path taken away: {outcome:?}"
    );
    // What the child wrote is a snapshot of the state when the write began.
    std::fs::write(snapshot_file(&dir), &written).unwrap();
    let restarted = open(&store, Some(dir)).await;
    assert_eq!(restarted.start(), Start::Snapshot { seq: before });
    assert!(restarted.same_as(&*open(&store, None).await));
}
