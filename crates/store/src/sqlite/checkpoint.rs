//! Background checkpoints.
//!
//! In WAL mode every commit appends pages to the write-ahead log, and a checkpoint
//! copies them back into the database file. Left to SQLite, checkpoints run inside
//! the writer's commits and stall it; small commits rewrite the same index pages many
//! times, so that copying is a large share of the writer's work (see BENCHMARKS.md).
//! Here a separate thread checkpoints passively, on the other core, while the writer
//! keeps writing.
//!
//! After an erasure the WAL must not keep the removed rows: the writer asks this thread
//! to truncate it ([`Truncation`]), which it does at its next turn (within a quarter of
//! a second) once no reader holds an older snapshot, trying again at each turn
//! meanwhile — one truncation for the erasures of a turn, and never a wait in the
//! writer. A truncation holds the writer back while it waits for readers, so it is
//! tried once a turn, briefly.
//!
//! A passive checkpoint never makes the WAL start over by itself: SQLite restarts the
//! log only when a write begins after every frame was copied back, and a writer kept
//! busy by ingestion (or readers on older snapshots) never leaves such a moment, so
//! the WAL grew without bound under sustained load (44 GB in a 10-minute soak), and
//! every read slowed with it. Nor can this thread truncate it then: the writer takes
//! its lock again at once after each commit, and a checkpoint waiting for that lock
//! never gets it. So the writer itself truncates the WAL between commits once it is
//! larger than [`WAL_LIMIT`] ([`WalLimit`]), waiting only for readers on older
//! snapshots; the copying is mostly done by this thread's passive checkpoints before.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use unavoce_core::redact::Redacted;

use rusqlite::Connection;

use super::{Durability, schema};

/// How often the WAL is copied back into the database.
const INTERVAL: Duration = Duration::from_millis(250);
/// How long a truncation waits for readers before it gives way to the writer.
const TRUNCATE_WAIT: Duration = Duration::from_millis(10);
/// The WAL's size past which the writer makes it start over, by default. Each time
/// holds the writer back while it waits for readers and copies what the passive
/// checkpoints had not; at 64 MiB that was once a second in the 70 % soak.
pub(crate) const WAL_LIMIT: u64 = 256 << 20;
/// How long that truncation waits for readers on older snapshots at first, doubled
/// after each one that could not finish (readers that overlap without a pause, each
/// longer than the wait, would otherwise hold it off for ever) up to the most ...
const WAL_LIMIT_WAIT: Duration = Duration::from_millis(100);
const WAL_LIMIT_MAX_WAIT: Duration = Duration::from_millis(800);
/// ... and how long after one that could not finish the next is tried.
const WAL_LIMIT_RETRY: Duration = Duration::from_millis(250);

/// What the checkpoint thread is asked to do.
#[derive(Default)]
struct Signals {
    stopped: bool,
    /// Truncations asked for so far.
    truncations_asked: u64,
}

/// Asks the checkpoint thread to truncate the WAL, and tells when it has.
#[derive(Clone)]
pub(crate) struct Truncation {
    signals: Arc<(Mutex<Signals>, Condvar)>,
    done: tokio::sync::watch::Receiver<u64>,
}

impl Truncation {
    /// Asks for a truncation after what is committed now.
    pub(crate) fn ask(&self) {
        lock(&self.signals.0).truncations_asked += 1;
    }

    /// Waits until every truncation asked for so far is done.
    pub(crate) async fn done(&self) {
        let asked = lock(&self.signals.0).truncations_asked;
        let mut done = self.done.clone();
        let _ = done.wait_for(|done| *done >= asked).await;
    }
}

fn lock(signals: &Mutex<Signals>) -> MutexGuard<'_, Signals> {
    signals.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running checkpoint thread; [`Checkpointer::stop`] runs a final full checkpoint.
pub(crate) struct Checkpointer {
    signals: Arc<(Mutex<Signals>, Condvar)>,
    done: tokio::sync::watch::Receiver<u64>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` once `checked` says every page of it
    /// is sound; a store found damaged, or not checked, is never checkpointed.
    pub(crate) fn start(
        path: &Path,
        durability: Durability,
        checked: tokio::sync::watch::Receiver<super::integrity::Verdict>,
    ) -> rusqlite::Result<Self> {
        let conn = crate::sqlite::allocator::connection(path)?;
        schema::configure(&conn, durability)?;
        let signals = Arc::new((Mutex::new(Signals::default()), Condvar::new()));
        let (done_tx, done) = tokio::sync::watch::channel(0);
        let signal = signals.clone();
        let handle = std::thread::Builder::new()
            .name("event-log-checkpoint".into())
            .spawn(move || run(conn, signal, done_tx, checked))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Checkpointer {
            signals,
            done,
            handle: Some(handle),
        })
    }

    /// The handle the writer asks for truncations with.
    pub(crate) fn truncation(&self) -> Truncation {
        Truncation {
            signals: self.signals.clone(),
            done: self.done.clone(),
        }
    }

    /// Stops the thread after a final checkpoint that empties the WAL.
    pub(crate) fn stop(&mut self) {
        lock(&self.signals.0).stopped = true;
        self.signals.1.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    conn: Connection,
    signals: Arc<(Mutex<Signals>, Condvar)>,
    done: tokio::sync::watch::Sender<u64>,
    checked: tokio::sync::watch::Receiver<super::integrity::Verdict>,
) {
    let (state, wake) = &*signals;
    let mut truncated = 0;
    let mut failing = super::integrity::Repeating::new("event log checkpoint");
    loop {
        let (stopped, asked) = {
            let guard = lock(state);
            let guard = match wake.wait_timeout_while(guard, INTERVAL, |s| !s.stopped) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            (guard.stopped, guard.truncations_asked)
        };
        // Nothing is written to a store before its check passes.
        let sound = matches!(*checked.borrow(), Some(Ok(())));
        if !sound {
            if stopped {
                return;
            }
            continue;
        }
        if stopped {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::warn!(error = %Redacted(&e), "final event log checkpoint failed");
            }
            done.send_replace(asked);
            return;
        }
        // Passive first: it copies what it can without holding the writer back, so the
        // truncation that follows has little left to copy.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => failing.succeeded(),
            Err(e) => failing.failed(&e),
        }
        if asked > truncated && truncate(&conn, TRUNCATE_WAIT) {
            truncated = asked;
            done.send_replace(asked);
        }
    }
}

/// One `wal_checkpoint(TRUNCATE)`, waiting at most `wait` for the writer and readers;
/// whether it completed.
fn truncate(conn: &Connection, wait: Duration) -> bool {
    if let Err(e) = conn.busy_timeout(wait) {
        tracing::warn!(error = %Redacted(&e), "cannot shorten the checkpoint's wait");
    }
    let truncated = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok_and(|busy| busy == 0);
    if let Err(e) = conn.busy_timeout(schema::BUSY_TIMEOUT) {
        tracing::warn!(error = %Redacted(&e), "cannot restore the checkpoint's wait");
    }
    truncated
}

/// Keeps the WAL from growing past [`WAL_LIMIT`]: run by the writer between commits.
pub(crate) struct WalLimit {
    wal: std::path::PathBuf,
    limit: u64,
    /// When a truncation last could not finish (readers held older snapshots).
    busy_at: Option<std::time::Instant>,
    /// How long the next truncation waits for readers.
    wait: Duration,
}

impl WalLimit {
    pub(crate) fn new(db: &Path, limit: u64) -> Self {
        WalLimit {
            wal: super::integrity::wal_path(db),
            limit,
            busy_at: None,
            wait: WAL_LIMIT_WAIT,
        }
    }

    /// Truncates the WAL when it has grown past the limit; the writer's connection
    /// holds the write lock meanwhile, so only readers are waited for.
    pub(crate) fn check(&mut self, conn: &Connection) {
        if self
            .busy_at
            .is_some_and(|at| at.elapsed() < WAL_LIMIT_RETRY)
        {
            return;
        }
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if size <= self.limit {
            return;
        }
        if truncate(conn, self.wait) {
            (self.busy_at, self.wait) = (None, WAL_LIMIT_WAIT);
        } else {
            tracing::debug!(
                size,
                wait_ms = self.wait.as_millis(),
                "the WAL could not start over yet: readers on older snapshots"
            );
            self.busy_at = Some(std::time::Instant::now());
            self.wait = (self.wait * 2).min(WAL_LIMIT_MAX_WAIT);
        }
    }
}
