//! The embedded implementation of [`EventLog`]: SQLite in WAL mode, one writer thread
//! doing group commit, a small pool of reader connections.

mod allocator;
mod checkpoint;
mod erasure;
mod governance;
mod identifiers;
mod integrity;
mod leases;
mod outbox;
mod rows;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use unavoce_core::redact::Redacted;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, params_from_iter};
use tokio::sync::oneshot;
use unavoce_core::Event;

pub use rows::EventRow;

/// The schema version this build writes: `PRAGMA user_version` of an up-to-date
/// `events.db`.
pub fn schema_version() -> usize {
    schema::latest_version()
}

/// Bytes SQLite holds in this process (page caches, statements: every connection's),
/// from `sqlite3_memory_used`, plus the header the allocator route adds to each of its
/// blocks (`allocator.rs`), which SQLite does not count — memory the store keeps
/// itself, bounded by the caches' sizes.
pub fn memory_used() -> u64 {
    // SAFETY: reads SQLite's global allocation counters; thread-safe at any time.
    let (used, blocks) = unsafe {
        let (mut blocks, mut highest) = (0i64, 0i64);
        rusqlite::ffi::sqlite3_status64(
            rusqlite::ffi::SQLITE_STATUS_MALLOC_COUNT,
            &mut blocks,
            &mut highest,
            0,
        );
        (rusqlite::ffi::sqlite3_memory_used(), blocks)
    };
    let headers = if allocator::routed() {
        blocks.max(0) as u64 * allocator::HEADER as u64
    } else {
        0
    };
    u64::try_from(used).unwrap_or(0) + headers
}

use self::writer::{Done, Job, Op};
use crate::commits::CommitObserver;
use crate::log::*;

/// How hard a commit tries to survive failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is fsynced: acknowledged data survives a process crash and a power
    /// loss. The default.
    #[default]
    Full,
    /// Commits survive a process crash (`kill -9`) but the last ones may be lost on
    /// power loss or an OS crash.
    Normal,
}

/// Settings of the embedded event log.
#[derive(Clone)]
pub struct SqliteOptions {
    pub durability: Durability,
    /// Write requests that may wait for the writer before appends answer
    /// [`StoreError::Overloaded`].
    pub queue_capacity: usize,
    /// Rows gathered into one commit at most.
    pub max_rows_per_commit: usize,
    /// Called after each commit, e.g. to record its latency.
    pub on_commit: Option<CommitObserver>,
    /// Events left unindexed by identifier before the writer indexes them (it also
    /// does when idle); see `identifiers.rs`.
    pub identifier_index_chunk: usize,
    /// The WAL's size past which the writer makes it start over (see `checkpoint.rs`).
    pub wal_limit: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Full,
            queue_capacity: 512,
            max_rows_per_commit: 20_000,
            on_commit: None,
            identifier_index_chunk: 10_000,
            wal_limit: checkpoint::WAL_LIMIT,
        }
    }
}

/// Why the embedded log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the data folder {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Marker {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the event log at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The database or its write-ahead log is damaged (truncated, overwritten): starting
    /// on it could lose acknowledged events without a word.
    #[error(
        "the event log's file {path} is damaged: {why}. Unavoce does not start on a damaged store: restore the data folder from a backup"
    )]
    Damaged { path: PathBuf, why: String },
    #[error(
        "the event log's file {path} could not be checked: {why}. Nothing was written to it; Unavoce does not start on a store it could not check"
    )]
    Unchecked { path: PathBuf, why: String },
    #[error(
        "the event log at {path} was written by a newer Unavoce (schema {found}, this build knows {known})"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
}

/// The embedded event log. See the module docs.
pub struct SqliteLog {
    path: PathBuf,
    durability: Durability,
    sender: RwLock<Option<writer::Senders>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<checkpoint::Checkpointer>>,
    /// Empties the WAL after erasures.
    truncation: Option<checkpoint::Truncation>,
    queue_capacity: usize,
    readers: Arc<Mutex<Vec<Connection>>>,
    committed: tokio::sync::watch::Receiver<i64>,
    /// The writer's check of every page at open: `None` until it is done, then whether
    /// it passed (sound, damaged, or not run).
    checked: tokio::sync::watch::Receiver<integrity::Verdict>,
    /// Whether the store was as a clean close left it, so its pages were not checked
    /// at this open.
    closed_cleanly: bool,
    /// The work this process holds leases on.
    held: crate::leases::HeldHere,
    /// What every lease watches: it never turns true (see `leases.rs`).
    never_lost: tokio::sync::watch::Sender<bool>,
}

impl SqliteLog {
    /// Opens (creating if needed) the log in `dir/events.db` and starts its writer.
    pub fn open(dir: &Path, options: SqliteOptions) -> Result<Self, OpenError> {
        allocator::route_to_global_allocator();
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("events.db");
        integrity::check_not_lost(&path)
            .and_then(|()| integrity::check_files(&path))
            .map_err(|integrity::Damage { path, why }| OpenError::Damaged { path, why })?;
        // Read before SQLite opens the file: nothing has written to it since.
        let closed_cleanly = integrity::closed_cleanly(&path);
        let open_err = |source: rusqlite::Error| {
            if integrity::is_damage(&source) {
                OpenError::Damaged {
                    path: path.clone(),
                    why: source.to_string(),
                }
            } else {
                OpenError::Open {
                    path: path.clone(),
                    source,
                }
            }
        };
        let mut conn = crate::sqlite::allocator::connection(&path).map_err(open_err)?;
        schema::configure(&conn, options.durability).map_err(open_err)?;
        schema::configure_writer(&conn).map_err(open_err)?;
        let found = schema::user_version(&conn).map_err(open_err)?;
        if found > schema::latest_version() {
            return Err(OpenError::TooNew {
                path,
                found,
                known: schema::latest_version(),
            });
        }
        // A migration writes: a store it would change is checked first. Otherwise the
        // writer checks it before its first commit, while the node starts beside it.
        let migrating = found < schema::latest_version();
        if migrating && let Some(why) = integrity::check_every_page(&path).map_err(open_err)? {
            return Err(OpenError::Damaged { path, why });
        }
        // Only a store that needs it is written to before the writer's check.
        let ran = if migrating {
            schema::migrate(&mut conn).map_err(open_err)?
        } else {
            0
        };
        if ran > 0 {
            tracing::info!(path = %path.display(), migrations = ran, "event log schema migrated");
        }
        integrity::mark_created(&path).map_err(|source| OpenError::Marker {
            path: integrity::marker_path(&path),
            source,
        })?;

        // A store checked before a migration, or closed cleanly and not written since,
        // is not checked (again).
        let checked_already = migrating || closed_cleanly;
        if closed_cleanly && !migrating {
            tracing::info!(path = %path.display(), "event log closed cleanly and not written since: its pages are not checked again");
        }
        // Checkpoints run on their own thread; only if it cannot start does the writer
        // checkpoint inside its commits, as SQLite does by default.
        let (checked, checked_rx) = tokio::sync::watch::channel(checked_already.then_some(Ok(())));
        let checkpointer = match checkpoint::Checkpointer::start(
            &path,
            options.durability,
            checked_rx.clone(),
        ) {
            Ok(checkpointer) => {
                conn.pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(open_err)?;
                Some(checkpointer)
            }
            Err(e) => {
                tracing::warn!(error = %Redacted(&e), "cannot start background checkpoints; the writer will checkpoint");
                None
            }
        };

        // The highest position given, even if its event was erased since.
        let last_seq = erasure::highest_seq(&conn).map_err(open_err)?;
        let (committed, committed_rx) = tokio::sync::watch::channel(last_seq);
        let truncation = checkpointer
            .as_ref()
            .map(checkpoint::Checkpointer::truncation);
        let (sender, receiver) = writer::lanes(options.queue_capacity);
        let writer = {
            let writer_truncation = truncation.clone();
            let max_rows = options.max_rows_per_commit.max(1);
            let observer = options.on_commit.clone();
            let index = identifiers::IdentifierIndex::load(&conn, options.identifier_index_chunk)
                .map_err(open_err)?;
            let writer_path = path.clone();
            let wal_limit = checkpoint::WalLimit::new(&path, options.wal_limit);
            std::thread::Builder::new()
                .name("event-log-writer".into())
                .spawn(move || {
                    writer::run(
                        writer::Writer {
                            conn,
                            path: writer_path,
                            max_rows_per_commit: max_rows,
                            observer,
                            committed,
                            index,
                            truncation: writer_truncation,
                            wal_limit,
                            checked,
                        },
                        receiver,
                    )
                })
                .map_err(|e| OpenError::CreateDir {
                    path: dir.to_path_buf(),
                    source: e,
                })?
        };
        Ok(SqliteLog {
            path,
            durability: options.durability,
            sender: RwLock::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            checkpointer: Mutex::new(checkpointer),
            truncation,
            queue_capacity: options.queue_capacity.max(1),
            readers: Arc::new(Mutex::new(Vec::new())),
            committed: committed_rx,
            checked: checked_rx,
            closed_cleanly,
            held: Default::default(),
            never_lost: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Waits for the check of every page that the writer runs at open, before its first
    /// commit (SQLite's `quick_check`: seconds for millions of events), unless the store
    /// was opened as a clean close left it ([`Self::opened_clean`]). Nothing is written
    /// before it passes; a damaged store refuses every write. A node's start runs beside
    /// it and must not serve before it passes.
    pub async fn checked(&self) -> Result<(), OpenError> {
        let mut checked = self.checked.clone();
        // The writer tells its verdict before it could stop: a closed channel without
        // one means it never ran.
        let verdict = checked
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|verdict| verdict.clone());
        let path = self.path.clone();
        match verdict {
            Some(Ok(())) => Ok(()),
            Some(Err(integrity::CheckFailed::Damaged(why))) => {
                Err(OpenError::Damaged { path, why })
            }
            Some(Err(integrity::CheckFailed::NotRun(why))) => {
                Err(OpenError::Unchecked { path, why })
            }
            None => Err(OpenError::Unchecked {
                path,
                why: "the writer stopped before it could check it".into(),
            }),
        }
    }

    /// Whether the store was opened as a clean close left it — the database file not
    /// written since, its write-ahead log empty — so that its pages were not checked
    /// again at this open (see [`Self::checked`]).
    pub fn opened_clean(&self) -> bool {
        self.closed_cleanly
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until the WAL has been emptied after every erasure so far (at once when
    /// the writer does it itself).
    pub async fn wal_truncated(&self) {
        if let Some(truncation) = &self.truncation {
            truncation.done().await;
        }
    }

    /// A plain aggregate over the log — per touchpoint, events and distinct senders
    /// (`user_id`, else `anonymous_id`) with timestamps in `[from, to)` microseconds —
    /// straight from the table's columns: the baseline the report benchmark compares
    /// the touchpoint KPI and path reports against.
    /// Without `distinct`, only the events are counted.
    pub async fn touchpoint_counts_baseline(
        &self,
        from: i64,
        to: i64,
        distinct: bool,
    ) -> Result<Vec<(Option<String>, u64, u64)>, StoreError> {
        self.read(move |conn| {
            let senders = if distinct {
                "count(DISTINCT coalesce(user_id, anonymous_id))"
            } else {
                "0"
            };
            let mut statement = conn.prepare(&format!(
                "SELECT touchpoint, count(*), {senders}
                 FROM events WHERE timestamp >= ?1 AND timestamp < ?2 GROUP BY touchpoint"
            ))?;
            let rows = statement.query_map([from, to], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })?;
            rows.collect()
        })
        .await
    }

    async fn submit(&self, op: Op) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let guard = self.sender.read().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender.send(Job { op, reply })?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        let durability = self.durability;
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => open_reader(&path, durability)?,
            };
            let result = f(&conn);
            if let Ok(mut pool) = readers.lock()
                && pool.len() < 8
            {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Storage(format!("reader task failed: {e}")))?
        .map_err(|e| integrity::store_error(&e, &self.path))
    }
}

/// Has SQLite allocate through the process's global allocator, if it has not started yet
/// (see `allocator.rs`). The store's own connections do it first; code that opens a
/// SQLite connection of its own calls this before, so that no thread initialises SQLite
/// while another is routing it.
pub fn prepare_sqlite() {
    allocator::route_to_global_allocator();
}

fn open_reader(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    allocator::route_to_global_allocator();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    schema::configure(&conn, durability)?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append_settling(
        &self,
        batch: &AppendBatch,
        settlements: Vec<crate::outbox::Settlement>,
    ) -> Result<AppendOutcome, StoreError> {
        if batch.is_empty() && settlements.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let events = batch.event_rows()?;
        match self
            .submit(Op::Append {
                events,
                quarantine: batch.quarantine.clone(),
                settlements,
            })
            .await?
        {
            Done::Appended(outcome) => Ok(outcome),
            _ => Err(StoreError::Storage("writer answered out of turn".into())),
        }
    }

    async fn replay_quarantined(
        &self,
        id: i64,
        event: Event,
        at: Timestamp,
    ) -> Result<Appended, StoreError> {
        let event = EventRow::from_event(&event)?;
        match self.submit(Op::Replay { id, event, at }).await? {
            Done::Replayed(appended) => Ok(appended),
            _ => Err(StoreError::Storage("writer answered out of turn".into())),
        }
    }

    async fn events_at(&self, seqs: Vec<i64>) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM events WHERE seq = ?1",
                rows::EVENT_COLUMNS
            ))?;
            let mut sorted = seqs;
            sorted.sort_unstable();
            sorted.dedup();
            let mut events = Vec::with_capacity(sorted.len());
            for seq in sorted {
                match stmt.query_row([seq], rows::event_from_row) {
                    Ok((seq, event)) => events.push(StoredEvent { seq, event }),
                    Err(rusqlite::Error::QueryReturnedNoRows) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(events)
        })
        .await
    }

    fn committed(&self) -> tokio::sync::watch::Receiver<i64> {
        self.committed.clone()
    }

    async fn setting(&self, name: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            let found = conn.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get::<_, String>(0)
            });
            match found {
                Ok(text) => Ok(serde_json::from_str(&text).ok()),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn setting_or_insert(
        &self,
        name: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        // Stored already (every start but the first): no write.
        if let Some(stored) = self.setting(name).await? {
            return Ok(stored);
        }
        let op = Op::SettingOrInsert {
            name: name.to_string(),
            value: value.to_string(),
        };
        match self.submit(op).await? {
            Done::Setting(stored) => serde_json::from_str(&stored)
                .map_err(|e| StoreError::Storage(format!("setting {name} is not JSON: {e}"))),
            _ => Err(StoreError::Storage("writer answered out of turn".into())),
        }
    }

    async fn put_setting(&self, name: &str, value: serde_json::Value) -> Result<(), StoreError> {
        let op = Op::PutSetting {
            name: name.to_string(),
            value: value.to_string(),
        };
        match self.submit(op).await? {
            Done::SettingStored => Ok(()),
            _ => Err(StoreError::Storage("writer answered out of turn".into())),
        }
    }

    async fn events(&self, query: EventQuery) -> Result<EventPage, StoreError> {
        let limit = query.limit.clamp(1, 10_000);
        self.read(move |conn| {
            let after: rusqlite::types::Value = query.after_seq.unwrap_or(0).into();
            let (sql, args) = match (query.user_id, query.anonymous_id) {
                (None, None) => (
                    format!(
                        "SELECT {} FROM events WHERE seq > ?1 ORDER BY seq LIMIT {}",
                        rows::EVENT_COLUMNS,
                        limit + 1
                    ),
                    vec![after],
                ),
                (Some(user_id), anonymous_id) => {
                    let both = anonymous_id.is_some();
                    let mut args = vec![user_id.into(), after];
                    args.extend(anonymous_id.map(Into::into));
                    (
                        identifiers::events_of_identifier_sql(true, both, limit + 1),
                        args,
                    )
                }
                (None, Some(anonymous_id)) => (
                    identifiers::events_of_identifier_sql(false, false, limit + 1),
                    vec![anonymous_id.into(), after],
                ),
            };
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut events = stmt
                .query_map(params_from_iter(args), rows::event_from_row)?
                .map(|r| r.map(|(seq, event)| StoredEvent { seq, event }))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let next_cursor = if events.len() > limit {
                events.truncate(limit);
                events.last().map(|e| e.seq)
            } else {
                None
            };
            Ok(EventPage {
                events,
                next_cursor,
            })
        })
        .await
    }

    async fn quarantine(&self, query: QuarantineQuery) -> Result<QuarantinePage, StoreError> {
        let limit = query.limit.clamp(1, 10_000);
        self.read(move |conn| {
            let mut sql = format!(
                "SELECT {} FROM quarantine WHERE id > ?1",
                rows::QUARANTINE_COLUMNS
            );
            let mut args: Vec<rusqlite::types::Value> = vec![query.after_id.unwrap_or(0).into()];
            if let Some(status) = query.status {
                args.push(
                    match status {
                        QuarantineStatus::Pending => "pending",
                        QuarantineStatus::Replayed => "replayed",
                    }
                    .to_string()
                    .into(),
                );
                sql.push_str(&format!(" AND status = ?{}", args.len()));
            }
            if let Some(code) = query.code {
                args.push(code.into());
                sql.push_str(&format!(" AND code = ?{}", args.len()));
            }
            sql.push_str(&format!(" ORDER BY id LIMIT {}", limit + 1));
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut entries = stmt
                .query_map(params_from_iter(args), rows::quarantine_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let next_cursor = if entries.len() > limit {
                entries.truncate(limit);
                entries.last().map(|e| e.id)
            } else {
                None
            };
            Ok(QuarantinePage {
                entries,
                next_cursor,
            })
        })
        .await
    }

    async fn quarantine_entry(&self, id: i64) -> Result<Option<QuarantineEntry>, StoreError> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {} FROM quarantine WHERE id = ?1",
                rows::QUARANTINE_COLUMNS
            );
            match conn.query_row(&sql, [id], rows::quarantine_from_row) {
                Ok(entry) => Ok(Some(entry)),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn stats(&self) -> Result<LogStats, StoreError> {
        self.read(|conn| {
            let mut stats = LogStats::default();
            let mut stmt = conn.prepare_cached("SELECT name, value FROM counters")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let name: String = row.get(0)?;
                let value = row.get::<_, i64>(1)?.max(0) as u64;
                match name.as_str() {
                    "events" => stats.events = value,
                    "duplicates" => stats.duplicates = value,
                    "quarantined" => stats.quarantined = value,
                    "quarantined_total" => stats.quarantined_total = value,
                    _ => {}
                }
            }
            Ok(stats)
        })
        .await
    }

    fn is_ready(&self) -> bool {
        self.sender.read().is_ok_and(|s| {
            s.as_ref()
                .is_some_and(|s| s.appends_queued() < self.queue_capacity)
        })
    }

    async fn close(&self) {
        if let Ok(mut sender) = self.sender.write() {
            sender.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        let checkpointer = self.checkpointer.lock().ok().and_then(|mut c| c.take());
        let readers = self.readers.clone();
        let sound = matches!(*self.checked.borrow(), Some(Ok(())));
        let path = self.path.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(handle) = handle {
                let _ = handle.join();
            }
            if let Some(mut checkpointer) = checkpointer {
                checkpointer.stop();
            }
            if let Ok(mut pool) = readers.lock() {
                pool.clear();
            }
            // The last commit is in the database file (the final checkpoint emptied the
            // WAL): the next open need not check its pages unless it changes meanwhile.
            if sound && let Err(e) = integrity::record_clean_close(&path) {
                tracing::warn!(error = %Redacted(&e), "cannot record the event log's clean close; the next start checks every page");
            }
        })
        .await;
    }
}

/// The store's own raw bulk-insert path, the baseline of the ingestion benchmark:
/// the same rows, the same schema and durability, inserted by one connection in
/// large transactions with no queue, no parsing and no HTTP. It keeps the events
/// counter as the writer does (a start from a snapshot checks the log's count).
pub fn bulk_insert_baseline(
    dir: &Path,
    rows: &[EventRow],
    rows_per_transaction: usize,
    durability: Durability,
) -> Result<(), StoreError> {
    let storage = |e: rusqlite::Error| StoreError::Storage(e.to_string());
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Storage(e.to_string()))?;
    let mut conn = crate::sqlite::allocator::connection(dir.join("events.db")).map_err(storage)?;
    schema::configure(&conn, durability).map_err(storage)?;
    schema::configure_writer(&conn).map_err(storage)?;
    schema::migrate(&mut conn).map_err(storage)?;
    let mut indexed = identifiers::indexed_through(&conn).map_err(storage)?;
    for chunk in rows.chunks(rows_per_transaction.max(1)) {
        let tx = conn.transaction().map_err(storage)?;
        let mut stored = 0i64;
        for row in chunk {
            if let Appended::Stored { .. } = rows::insert_event(&tx, row).map_err(storage)? {
                stored += 1;
            }
        }
        tx.execute(
            "UPDATE counters SET value = value + ?1 WHERE name = 'events'",
            [stored],
        )
        .map_err(storage)?;
        indexed = identifiers::index_after(&tx, indexed).map_err(storage)?;
        tx.commit().map_err(storage)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[async_trait]
impl crate::decisions::DecisionLog for SqliteLog {
    async fn record_decisions(
        &self,
        decisions: Vec<crate::decisions::NewDecision>,
    ) -> Result<Vec<i64>, StoreError> {
        if decisions.is_empty() {
            return Ok(Vec::new());
        }
        match self.submit(Op::Decide(decisions, None)).await? {
            Done::Decided(ids) => Ok(ids),
            _ => Err(StoreError::Storage("writer answered out of turn".into())),
        }
    }

    async fn record_decisions_with_setting(
        &self,
        decisions: Vec<crate::decisions::NewDecision>,
        name: &str,
        value: serde_json::Value,
    ) -> Result<Vec<i64>, StoreError> {
        let setting = Some((name.to_string(), value.to_string()));
        match self.submit(Op::Decide(decisions, setting)).await? {
            Done::Decided(ids) => Ok(ids),
            _ => Err(StoreError::Storage("writer answered out of turn".into())),
        }
    }

    async fn decision_counts(&self, except: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let except = except.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT outcome, count(*) FROM decisions WHERE purpose != ?1 \
                 GROUP BY outcome ORDER BY outcome",
            )?;
            let found = stmt.query_map([&except], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?;
            found.collect()
        })
        .await
    }

    async fn decisions(
        &self,
        query: crate::decisions::DecisionQuery,
    ) -> Result<Vec<crate::decisions::StoredDecision>, StoreError> {
        self.read(move |conn| {
            let mut sql = String::from(
                "SELECT id, profile_id, message, purpose, channel, journey, broadcast, decided_at, \
                 outcome, send_at, reasons FROM decisions WHERE ",
            );
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if query.newest_first {
                sql.push_str("id < ?1");
                args.push(query.after_id.unwrap_or(i64::MAX).into());
            } else {
                sql.push_str("id > ?1");
                args.push(query.after_id.unwrap_or(0).into());
            }
            if !query.profile_ids.is_empty() {
                let mut slots = Vec::new();
                for profile in &query.profile_ids {
                    args.push(profile.to_string().into());
                    slots.push(format!("?{}", args.len()));
                }
                sql.push_str(&format!(" AND profile_id IN ({})", slots.join(", ")));
            }
            if let Some(broadcast) = &query.broadcast {
                args.push(broadcast.clone().into());
                sql.push_str(&format!(" AND broadcast = ?{}", args.len()));
            }
            if let Some(since) = query.sends_since {
                args.push(rows::micros(since).into());
                sql.push_str(&format!(
                    " AND outcome IN ('send', 'hold') AND decided_at >= ?{}",
                    args.len()
                ));
            }
            args.push((query.limit.clamp(1, 100_000) as i64).into());
            let order = if query.newest_first { "DESC" } else { "ASC" };
            sql.push_str(&format!(" ORDER BY id {order} LIMIT ?{}", args.len()));
            let mut stmt = conn.prepare_cached(&sql)?;
            let found = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok(crate::decisions::StoredDecision {
                    id: r.get(0)?,
                    decision: crate::decisions::NewDecision {
                        profile_id: rows::profile_id_at(r, 1)?,
                        message: r.get(2)?,
                        purpose: r.get(3)?,
                        channel: r.get(4)?,
                        journey: r.get(5)?,
                        broadcast: r.get(6)?,
                        decided_at: rows::from_micros(r.get(7)?),
                        outcome: rows::outcome_at(r, 8)?,
                        send_at: r.get::<_, Option<i64>>(9)?.map(rows::from_micros),
                        reasons: serde_json::from_str(&r.get::<_, String>(10)?)
                            .unwrap_or(serde_json::Value::Null),
                    },
                })
            })?;
            found.collect()
        })
        .await
    }
}

#[async_trait]
impl crate::journeys::JourneyStore for SqliteLog {
    async fn save_runs(
        &self,
        runs: Vec<crate::journeys::JourneyRun>,
        decisions: Vec<crate::decisions::NewDecision>,
    ) -> Result<(), StoreError> {
        if runs.is_empty() && decisions.is_empty() {
            return Ok(());
        }
        match self.submit(Op::SaveRuns(runs, decisions)).await? {
            Done::RunsSaved => Ok(()),
            _ => Err(StoreError::Storage("writer answered out of turn".into())),
        }
    }

    async fn runs(
        &self,
        query: crate::journeys::RunQuery,
    ) -> Result<Vec<crate::journeys::JourneyRun>, StoreError> {
        self.read(move |conn| {
            let mut sql = String::from(
                "SELECT key, journey, profile_id, entered_at, control, status, step, wake_at, \
                 waiting_for, blocked, watching, fallbacks, exit_reason, converted_at, updated_at, \
                 version FROM journey_runs \
                 WHERE key > ?1",
            );
            let mut args: Vec<rusqlite::types::Value> =
                vec![query.after.clone().unwrap_or_default().into()];
            if let Some(journey) = &query.journey {
                args.push(journey.clone().into());
                sql.push_str(&format!(" AND journey = ?{}", args.len()));
            }
            if let Some(profile) = &query.profile_id {
                args.push(profile.to_string().into());
                sql.push_str(&format!(" AND profile_id = ?{}", args.len()));
            }
            if query.active_only {
                sql.push_str(" AND status = 'active'");
            }
            args.push((query.limit.clamp(1, 100_000) as i64).into());
            sql.push_str(&format!(" ORDER BY key LIMIT ?{}", args.len()));
            let mut stmt = conn.prepare_cached(&sql)?;
            let found = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok(crate::journeys::JourneyRun {
                    key: r.get(0)?,
                    journey: r.get(1)?,
                    profile_id: rows::profile_id_at(r, 2)?,
                    entered_at: rows::from_micros(r.get(3)?),
                    control: r.get(4)?,
                    status: rows::run_status_at(r, 5)?,
                    step: r.get::<_, i64>(6)?.max(0) as usize,
                    wake_at: r.get::<_, Option<i64>>(7)?.map(rows::from_micros),
                    waiting_for: r.get(8)?,
                    blocked: r.get(9)?,
                    watching: r.get(10)?,
                    fallbacks: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
                    exit_reason: r.get(12)?,
                    converted_at: r.get::<_, Option<i64>>(13)?.map(rows::from_micros),
                    updated_at: rows::from_micros(r.get(14)?),
                    version: r.get::<_, i64>(15)?.clamp(0, u32::MAX.into()) as u32,
                })
            })?;
            found.collect()
        })
        .await
    }

    async fn run_counts(
        &self,
        journey: &str,
    ) -> Result<Vec<crate::journeys::RunCount>, StoreError> {
        let journey = journey.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT status, step, control, converted_at IS NOT NULL, version, count(*) \
                 FROM journey_runs WHERE journey = ?1 \
                 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
            )?;
            let found = stmt.query_map(rusqlite::params![journey], |r| {
                Ok(crate::journeys::RunCount {
                    status: rows::run_status_at(r, 0)?,
                    step: r.get::<_, i64>(1)?.max(0) as usize,
                    control: r.get(2)?,
                    converted: r.get(3)?,
                    version: r.get::<_, i64>(4)?.clamp(0, u32::MAX.into()) as u32,
                    runs: r.get::<_, i64>(5)?.max(0) as u64,
                })
            })?;
            found.collect()
        })
        .await
    }
}
