//! Background checkpoints.
//!
//! In WAL mode every commit appends pages to the write-ahead log, and a checkpoint
//! copies them back into the database file. Left to SQLite, checkpoints run inside
//! the writer's commits and stall it; small commits rewrite the same index pages many
//! times, so that copying is a large share of the writer's work (see BENCHMARKS.md).
//! Here a separate thread checkpoints passively, on the other core, while the writer
//! keeps writing.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use unavoce_core::redact::Redacted;

use rusqlite::Connection;

use super::{Durability, schema};

/// How often the WAL is copied back into the database.
const INTERVAL: Duration = Duration::from_millis(250);

/// The running checkpoint thread; [`Checkpointer::stop`] runs a final full checkpoint.
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`.
    pub(crate) fn start(path: &Path, durability: Durability) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        schema::configure(&conn, durability)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let handle = std::thread::Builder::new()
            .name("event-log-checkpoint".into())
            .spawn(move || run(conn, signal))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Checkpointer {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread after a final checkpoint that empties the WAL.
    pub(crate) fn stop(&mut self) {
        if let Ok(mut stopped) = self.stop.0.lock() {
            *stopped = true;
            self.stop.1.notify_all();
        }
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

fn run(conn: Connection, stop: Arc<(Mutex<bool>, Condvar)>) {
    let (lock, wake) = &*stop;
    loop {
        let stopped = match lock.lock() {
            Ok(guard) => match wake.wait_timeout_while(guard, INTERVAL, |stopped| !*stopped) {
                Ok((guard, _)) => *guard,
                Err(_) => true,
            },
            Err(_) => true,
        };
        let mode = if stopped { "TRUNCATE" } else { "PASSIVE" };
        if let Err(e) = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
            tracing::warn!(error = %Redacted(&e), mode, "event log checkpoint failed; will retry");
        }
        if stopped {
            return;
        }
    }
}
