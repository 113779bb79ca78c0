//! Moving a data folder's embedded store (`events.db`) into an empty PostgreSQL
//! database, row for row: every event at its log position, every id, the audit chain
//! with its hashes, and the log's head (the highest position ever given, which an
//! erasure of the newest events leaves above the newest event's), so the next event
//! is stored after every position the SQLite store gave.
//!
//! The source is read in one read transaction (one snapshot, even if a process still
//! writes to it) on a read-only connection, on a thread of its own, and streamed in
//! chunks: memory does not grow with the log. The target is written in **one
//! transaction** with binary `COPY`: a migration that fails leaves the database as it
//! found it (empty, with the schema), and one that succeeded is refused when run again,
//! because the database then holds data.
//!
//! Not copied: SQLite's identifier index (`event_identifiers`, `index_progress`), which
//! PostgreSQL keeps as indexes on `events`.

use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Transaction};
use unavoce_store::StoreError;

use crate::rows::db;
use crate::schema;

/// Rows sent from the reader to the writer at once, at most.
const CHUNK_ROWS: usize = 5_000;
/// Bytes of text sent at once, about, at most (events can be large).
const CHUNK_BYTES: usize = 4 << 20;
/// Chunks read ahead of the writer.
const CHUNKS_AHEAD: usize = 4;
/// The SQLite counter that keeps the highest position given when the newest events
/// were erased (see `unavoce_store`'s `sqlite/erasure.rs`); PostgreSQL keeps it in
/// `log_head`.
const HIGHEST_SEQ: &str = "highest_seq";

/// A PostgreSQL failure, as said without the values of a row (see [`db`]).
fn pg(e: tokio_postgres::Error) -> String {
    match db(e) {
        StoreError::Storage(reason) => reason,
        other => other.to_string(),
    }
}

/// Why a migration did not happen. Nothing names a stored value: messages carry
/// tables, columns and counts only.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("no event log at {0}")]
    NoSource(PathBuf),
    #[error("cannot read the event log at {path}: {reason}")]
    Source { path: PathBuf, reason: String },
    #[error(
        "the event log at {path} has schema {found}, this build knows {known}: {}",
        if found < known {
            "open it once with this build (e.g. `unavoce keys list --data FOLDER`) to bring it up to date, then migrate"
        } else {
            "it was written by a newer Unavoce; migrate with that version"
        }
    )]
    SourceVersion {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("the event log's table {table}, column {column}, holds {problem}")]
    SourceValue {
        table: &'static str,
        column: &'static str,
        problem: &'static str,
    },
    #[error("the PostgreSQL URL is not a connection string: {0}")]
    Url(tokio_postgres::Error),
    #[error("cannot reach PostgreSQL: {0}")]
    Connect(String),
    #[error("cannot prepare the PostgreSQL database: {0}")]
    Target(String),
    #[error(
        "the PostgreSQL database was written by a newer Unavoce (schema {found}, this build knows {known})"
    )]
    TargetTooNew { found: usize, known: usize },
    #[error(
        "refused: the PostgreSQL database already holds data ({}); migrate into an empty database",
        .holding.join(", ")
    )]
    TargetNotEmpty { holding: Vec<&'static str> },
    #[error(
        "refused: {0} Unavoce node(s) are connected to the PostgreSQL database; stop them first (they hold its secrets in memory, which the migration replaces)"
    )]
    NodesRunning(i64),
    #[error("cannot write {table} to PostgreSQL (nothing was kept): {error}")]
    Write { table: &'static str, error: String },
    #[error(
        "{table} holds {in_postgres} rows in PostgreSQL for {in_sqlite} in SQLite (nothing was kept)"
    )]
    CountMismatch {
        table: &'static str,
        in_sqlite: u64,
        in_postgres: u64,
    },
    #[error(
        "the migration's commit failed: {0} (if it went through after all, running it again is refused)"
    )]
    Commit(String),
    #[error("the event log's reader stopped: {0}")]
    Reader(String),
}

/// How far a table's copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub table: &'static str,
    /// Rows written so far.
    pub copied: u64,
    /// Rows the source holds.
    pub of: u64,
}

/// Rows of one table, in the source and (after the copy, before the commit) the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub in_sqlite: u64,
    pub in_postgres: u64,
}

/// A finished migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Every table copied, in copy order.
    pub tables: Vec<TableCount>,
    /// The highest log position ever given: the target's `log_head`.
    pub highest_seq: i64,
}

impl Migration {
    /// Rows copied, over every table.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.in_postgres).sum()
    }
}

/// A column's type: how it is read from SQLite and written to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int8,
    Int4,
    /// An SQLite integer, 0 or 1.
    Bool,
    Text,
    /// SQLite text (or blob), as bytes.
    Bytea,
}

impl Kind {
    fn pg_type(self) -> Type {
        match self {
            Kind::Int8 => Type::INT8,
            Kind::Int4 => Type::INT4,
            Kind::Bool => Type::BOOL,
            Kind::Text => Type::TEXT,
            Kind::Bytea => Type::BYTEA,
        }
    }
}

/// How a table reaches PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// `COPY`, ids included; the identity sequence of `id` (if any) moved past them.
    Copy { identity: bool },
    /// Inserted over the rows the schema made (`counters`).
    Upsert,
}

/// One table to copy: its columns (the same names on both sides) and order.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    order_by: &'static str,
    /// Rows of the source left out (an SQL condition).
    only: Option<&'static str>,
    write: Write,
}

use Kind::{Bool, Bytea, Int4, Int8, Text};

const COPY: Write = Write::Copy { identity: false };
const COPY_IDS: Write = Write::Copy { identity: true };

/// Every table, in an order the foreign keys accept (decisions before the outbox).
const TABLES: &[Table] = &[
    Table {
        name: "events",
        columns: &[
            ("seq", Int8),
            ("message_id", Text),
            ("type", Text),
            ("name", Text),
            ("user_id", Text),
            ("anonymous_id", Text),
            ("timestamp", Int8),
            ("received_at", Int8),
            ("touchpoint", Text),
            ("channel", Text),
            ("source", Text),
            ("message", Text),
        ],
        order_by: "seq",
        only: None,
        write: COPY,
    },
    Table {
        name: "quarantine",
        columns: &[
            ("id", Int8),
            ("received_at", Int8),
            ("source", Text),
            ("code", Text),
            ("reason", Text),
            ("message_id", Text),
            ("payload", Bytea),
            ("origin", Text),
            ("status", Text),
            ("replayed_at", Int8),
            ("replayed_seq", Int8),
        ],
        order_by: "id",
        only: None,
        write: COPY_IDS,
    },
    Table {
        name: "counters",
        columns: &[("name", Text), ("value", Int8)],
        order_by: "name",
        only: Some("name <> 'highest_seq'"), // HIGHEST_SEQ: `log_head` in PostgreSQL
        write: Write::Upsert,
    },
    Table {
        name: "settings",
        columns: &[("name", Text), ("value", Text)],
        order_by: "name",
        only: None,
        write: COPY,
    },
    Table {
        name: "decisions",
        columns: &[
            ("id", Int8),
            ("profile_id", Text),
            ("message", Text),
            ("purpose", Text),
            ("channel", Text),
            ("journey", Text),
            ("broadcast", Text),
            ("decided_at", Int8),
            ("outcome", Text),
            ("send_at", Int8),
            ("reasons", Text),
        ],
        order_by: "id",
        only: None,
        write: COPY_IDS,
    },
    Table {
        name: "outbox",
        columns: &[
            ("id", Int8),
            ("decision_id", Int8),
            ("profile_id", Text),
            ("channel", Text),
            ("message", Text),
            ("send_at", Int8),
            ("status", Text),
            ("attempts", Int4),
            ("last_error", Text),
            ("provider_message_id", Text),
            ("delivery", Text),
            ("updated_at", Int8),
        ],
        order_by: "id",
        only: None,
        write: COPY_IDS,
    },
    Table {
        name: "early_reports",
        columns: &[
            ("id", Int8),
            ("provider_message_id", Text),
            ("delivery", Text),
            ("error", Text),
            ("received_at", Int8),
        ],
        order_by: "id",
        only: None,
        write: COPY_IDS,
    },
    Table {
        name: "journey_runs",
        columns: &[
            ("key", Text),
            ("journey", Text),
            ("profile_id", Text),
            ("entered_at", Int8),
            ("control", Bool),
            ("status", Text),
            ("step", Int8),
            ("wake_at", Int8),
            ("waiting_for", Text),
            ("blocked", Bool),
            ("watching", Text),
            ("fallbacks", Text),
            ("exit_reason", Text),
            ("converted_at", Int8),
            ("updated_at", Int8),
            ("version", Int8),
        ],
        order_by: "key",
        only: None,
        write: COPY,
    },
    Table {
        name: "api_keys",
        columns: &[
            ("name", Text),
            ("role", Text),
            ("key_hash", Text),
            ("created_at", Int8),
            ("last_used_at", Int8),
        ],
        order_by: "name",
        only: None,
        write: COPY,
    },
    Table {
        name: "audit_log",
        columns: &[
            ("seq", Int8),
            ("at", Int8),
            ("actor", Text),
            ("role", Text),
            ("action", Text),
            ("profile_id", Text),
            ("outcome", Int4),
            ("hash", Text),
        ],
        order_by: "seq",
        only: None,
        write: COPY,
    },
    Table {
        name: "suppressions",
        columns: &[("hash", Text), ("kind", Text), ("at", Int8)],
        order_by: "hash",
        only: None,
        write: COPY,
    },
    Table {
        name: "ended_sessions",
        columns: &[("signature", Text), ("expires", Int8)],
        order_by: "signature",
        only: None,
        write: COPY,
    },
];

impl Table {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| format!("\"{name}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn condition(&self) -> String {
        self.only.map(|c| format!(" WHERE {c}")).unwrap_or_default()
    }
}

/// One value on its way.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Int8(Option<i64>),
    Int4(Option<i32>),
    Bool(Option<bool>),
    Text(Option<String>),
    Bytea(Option<Vec<u8>>),
}

impl Cell {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Int8(v) => v,
            Cell::Int4(v) => v,
            Cell::Bool(v) => v,
            Cell::Text(v) => v,
            Cell::Bytea(v) => v,
        }
    }

    /// Bytes it holds, about (for chunk sizes).
    fn size(&self) -> usize {
        match self {
            Cell::Text(Some(t)) => t.len(),
            Cell::Bytea(Some(b)) => b.len(),
            _ => 8,
        }
    }

    /// An SQLite value as `kind`, or what is wrong with it.
    fn read(value: ValueRef<'_>, kind: Kind) -> Result<Cell, &'static str> {
        Ok(match (kind, value) {
            (Kind::Int8, ValueRef::Null) => Cell::Int8(None),
            (Kind::Int4, ValueRef::Null) => Cell::Int4(None),
            (Kind::Bool, ValueRef::Null) => Cell::Bool(None),
            (Kind::Text, ValueRef::Null) => Cell::Text(None),
            (Kind::Bytea, ValueRef::Null) => Cell::Bytea(None),
            (Kind::Int8, ValueRef::Integer(i)) => Cell::Int8(Some(i)),
            (Kind::Int4, ValueRef::Integer(i)) => Cell::Int4(Some(
                i32::try_from(i).map_err(|_| "an integer out of range")?,
            )),
            (Kind::Bool, ValueRef::Integer(i)) => Cell::Bool(Some(i != 0)),
            (Kind::Text, ValueRef::Text(bytes)) => Cell::Text(Some(
                std::str::from_utf8(bytes)
                    .map_err(|_| "text that is not UTF-8")?
                    .to_owned(),
            )),
            (Kind::Bytea, ValueRef::Text(bytes) | ValueRef::Blob(bytes)) => {
                Cell::Bytea(Some(bytes.to_vec()))
            }
            _ => return Err("a value of an unexpected type"),
        })
    }
}

/// What the source holds, read in the same snapshot as its rows.
struct SourceFacts {
    /// Rows per table of [`TABLES`].
    counts: Vec<u64>,
    highest_seq: i64,
}

/// What the reader sends the writer, in order: the facts, then each table's rows.
enum Feed {
    Facts(SourceFacts),
    Rows { table: usize, rows: Vec<Vec<Cell>> },
    End { table: usize },
}

/// Copies the embedded store at `source` (a data folder's `events.db`) into the empty
/// PostgreSQL database at `target_url`, creating its schema; calls `progress` after
/// each chunk. In one transaction (see the module docs): on any error the target is
/// left as it was. Refused when the target holds data already, or when the source's
/// schema is not the one this build writes.
pub async fn from_sqlite(
    source: &Path,
    target_url: &str,
    mut progress: impl FnMut(Progress),
) -> Result<Migration, MigrateError> {
    if !source.is_file() {
        return Err(MigrateError::NoSource(source.to_path_buf()));
    }
    let config: tokio_postgres::Config = target_url.parse().map_err(MigrateError::Url)?;
    let (sender, mut feed) = mpsc::channel(CHUNKS_AHEAD);
    let path = source.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || read_source(&path, &sender));
    let facts = match feed.recv().await {
        Some(Ok(Feed::Facts(facts))) => facts,
        Some(Err(e)) => return Err(e),
        _ => return Err(reader_gone(reader).await),
    };

    let (mut client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| MigrateError::Connect(pg(e)))?;
    let connection = tokio::spawn(connection);
    let result = async {
        match schema::migrate(&mut client)
            .await
            .map_err(|e| MigrateError::Target(pg(e)))?
        {
            schema::Migrated::TooNew { found } => {
                return Err(MigrateError::TargetTooNew {
                    found,
                    known: schema::MIGRATIONS.len(),
                });
            }
            schema::Migrated::Ran(_) => {}
        }
        let tx = client
            .transaction()
            .await
            .map_err(|e| MigrateError::Target(pg(e)))?;
        refuse_unless_empty(&tx).await?;
        // A node started on the empty database wrote some (its secrets): the source's
        // replace them.
        tx.execute("DELETE FROM settings", &[])
            .await
            .map_err(|e| MigrateError::Write {
                table: "settings",
                error: pg(e),
            })?;
        let mut tables = Vec::with_capacity(TABLES.len());
        for (index, table) in TABLES.iter().enumerate() {
            let of = facts.counts[index];
            progress(Progress {
                table: table.name,
                copied: 0,
                of,
            });
            write_table(&tx, index, table, of, &mut feed, &mut progress).await?;
            let in_postgres = count(&tx, table).await?;
            if in_postgres != of {
                return Err(MigrateError::CountMismatch {
                    table: table.name,
                    in_sqlite: of,
                    in_postgres,
                });
            }
            tables.push(TableCount {
                table: table.name,
                in_sqlite: of,
                in_postgres,
            });
        }
        tx.execute(
            "UPDATE log_head SET seq = $1 WHERE id = 1",
            &[&facts.highest_seq],
        )
        .await
        .map_err(|error| MigrateError::Write {
            table: "log_head",
            error: pg(error),
        })?;
        tx.commit().await.map_err(|e| MigrateError::Commit(pg(e)))?;
        Ok(Migration {
            tables,
            highest_seq: facts.highest_seq,
        })
    }
    .await;
    drop(client);
    let _ = connection.await;
    drop(feed);
    let _ = reader.await;
    result
}

/// The reader's error when it stopped without saying why (it panicked).
async fn reader_gone(reader: tokio::task::JoinHandle<()>) -> MigrateError {
    match reader.await {
        Ok(()) => MigrateError::Reader("it ended early".into()),
        Err(e) => MigrateError::Reader(e.to_string()),
    }
}

/// Locks the log's head (so appends of a node running on the target wait, and a second
/// migration waits and is then refused) and refuses a target that holds data. Settings
/// and counters alone do not count: a node started on the empty database writes
/// settings, and the schema makes the counters.
async fn refuse_unless_empty(tx: &Transaction<'_>) -> Result<(), MigrateError> {
    let read = |e| MigrateError::Target(pg(e));
    let head: i64 = tx
        .query_one("SELECT seq FROM log_head WHERE id = 1 FOR UPDATE", &[])
        .await
        .map_err(read)?
        .get(0);
    let mut holding = Vec::new();
    if head > 0 {
        holding.push("log positions given");
    }
    for table in TABLES {
        if matches!(table.name, "settings" | "counters") {
            continue;
        }
        let held: bool = tx
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {})", table.name),
                &[],
            )
            .await
            .map_err(read)?
            .get(0);
        if held {
            holding.push(table.name);
        }
    }
    if !holding.is_empty() {
        return Err(MigrateError::TargetNotEmpty { holding });
    }
    let nodes: i64 = tx
        .query_one(
            "SELECT count(DISTINCT application_name) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND (application_name = 'unavoce' OR application_name LIKE 'unavoce %')",
            &[],
        )
        .await
        .map_err(read)?
        .get(0);
    if nodes > 0 {
        return Err(MigrateError::NodesRunning(nodes));
    }
    Ok(())
}

/// Writes one table's rows as the reader sends them.
async fn write_table(
    tx: &Transaction<'_>,
    index: usize,
    table: &Table,
    of: u64,
    feed: &mut mpsc::Receiver<Result<Feed, MigrateError>>,
    progress: &mut impl FnMut(Progress),
) -> Result<(), MigrateError> {
    let failed = |error: tokio_postgres::Error| MigrateError::Write {
        table: table.name,
        error: pg(error),
    };
    let mut copied = 0u64;
    let mut writer = match table.write {
        Write::Copy { .. } => {
            let sink = tx
                .copy_in(&format!(
                    "COPY {} ({}) FROM STDIN (FORMAT binary)",
                    table.name,
                    table.column_list()
                ))
                .await
                .map_err(failed)?;
            let types: Vec<Type> = table.columns.iter().map(|(_, k)| k.pg_type()).collect();
            Some(Box::pin(BinaryCopyInWriter::new(sink, &types)))
        }
        Write::Upsert => None,
    };
    loop {
        let rows = match feed.recv().await {
            Some(Ok(Feed::Rows { table: at, rows })) if at == index => rows,
            Some(Ok(Feed::End { table: at })) if at == index => break,
            Some(Err(e)) => return Err(e),
            Some(Ok(_)) => return Err(MigrateError::Reader("it sent rows out of order".into())),
            None => return Err(MigrateError::Reader("it ended early".into())),
        };
        match writer.as_mut() {
            Some(writer) => {
                for row in &rows {
                    writer
                        .as_mut()
                        .write_raw(row.iter().map(Cell::as_sql))
                        .await
                        .map_err(failed)?;
                }
            }
            None => {
                let upsert = format!(
                    "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (\"{}\") DO UPDATE SET {}",
                    table.name,
                    table.column_list(),
                    (1..=table.columns.len())
                        .map(|i| format!("${i}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    table.columns[0].0,
                    table.columns[1..]
                        .iter()
                        .map(|(c, _)| format!("\"{c}\" = excluded.\"{c}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
                for row in &rows {
                    let values: Vec<&(dyn ToSql + Sync)> = row.iter().map(Cell::as_sql).collect();
                    tx.execute(&upsert, &values).await.map_err(failed)?;
                }
            }
        }
        copied += rows.len() as u64;
        progress(Progress {
            table: table.name,
            copied,
            of,
        });
    }
    if let Some(mut writer) = writer {
        writer.as_mut().finish().await.map_err(failed)?;
    }
    if table.write == COPY_IDS {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), max(id)) FROM {0} \
                 HAVING max(id) IS NOT NULL",
                table.name
            ),
            &[],
        )
        .await
        .map_err(failed)?;
    }
    Ok(())
}

/// Rows of `table` in the target.
async fn count(tx: &Transaction<'_>, table: &Table) -> Result<u64, MigrateError> {
    let n: i64 = tx
        .query_one(&format!("SELECT count(*) FROM {}", table.name), &[])
        .await
        .map_err(|e| MigrateError::Write {
            table: table.name,
            error: pg(e),
        })?
        .get(0);
    Ok(n.max(0) as u64)
}

/// The reader thread: opens the source, sends its facts, then every table's rows in
/// chunks; stops at the first error (sent on) or when the writer is gone.
fn read_source(path: &Path, feed: &mpsc::Sender<Result<Feed, MigrateError>>) {
    let fail = |reason: rusqlite::Error| MigrateError::Source {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let result = (|| {
        unavoce_store::sqlite::prepare_sqlite();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(fail)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(fail)?;
        let known = unavoce_store::sqlite::schema_version();
        let found = usize::try_from(found).unwrap_or(usize::MAX);
        if found != known {
            return Err(MigrateError::SourceVersion {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
        // One snapshot for the facts and every row.
        conn.execute_batch("BEGIN").map_err(fail)?;
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let n: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM {}{}", table.name, table.condition()),
                    [],
                    |r| r.get(0),
                )
                .map_err(fail)?;
            counts.push(n.max(0) as u64);
        }
        let highest_seq: i64 = conn
            .query_row(
                "SELECT max(coalesce((SELECT max(seq) FROM events), 0), \
                 coalesce((SELECT value FROM counters WHERE name = ?1), 0))",
                [HIGHEST_SEQ],
                |r| r.get(0),
            )
            .map_err(fail)?;
        if feed
            .blocking_send(Ok(Feed::Facts(SourceFacts {
                counts,
                highest_seq,
            })))
            .is_err()
        {
            return Ok(());
        }
        for (index, table) in TABLES.iter().enumerate() {
            if !send_rows(&conn, index, table, feed).map_err(fail)? {
                return Ok(());
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = feed.blocking_send(Err(e));
    }
}

/// Sends one table's rows; false when the writer is gone.
fn send_rows(
    conn: &Connection,
    index: usize,
    table: &'static Table,
    feed: &mpsc::Sender<Result<Feed, MigrateError>>,
) -> rusqlite::Result<bool> {
    let mut statement = conn.prepare(&format!(
        "SELECT {} FROM {}{} ORDER BY {}",
        table.column_list(),
        table.name,
        table.condition(),
        table.order_by
    ))?;
    let mut rows = statement.query([])?;
    let mut chunk = Vec::with_capacity(CHUNK_ROWS);
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(table.columns.len());
        for (i, (column, kind)) in table.columns.iter().enumerate() {
            let cell = match Cell::read(row.get_ref(i)?, *kind) {
                Ok(cell) => cell,
                Err(problem) => {
                    let _ = feed.blocking_send(Err(MigrateError::SourceValue {
                        table: table.name,
                        column,
                        problem,
                    }));
                    return Ok(false);
                }
            };
            bytes += cell.size();
            cells.push(cell);
        }
        chunk.push(cells);
        if chunk.len() >= CHUNK_ROWS || bytes >= CHUNK_BYTES {
            let rows = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
            bytes = 0;
            if feed
                .blocking_send(Ok(Feed::Rows { table: index, rows }))
                .is_err()
            {
                return Ok(false);
            }
        }
    }
    if !chunk.is_empty()
        && feed
            .blocking_send(Ok(Feed::Rows {
                table: index,
                rows: chunk,
            }))
            .is_err()
    {
        return Ok(false);
    }
    Ok(feed.blocking_send(Ok(Feed::End { table: index })).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_values_read_as_their_column_kind() {
        assert_eq!(
            Cell::read(ValueRef::Integer(1), Kind::Bool),
            Ok(Cell::Bool(Some(true)))
        );
        assert_eq!(
            Cell::read(ValueRef::Text(b"{}"), Kind::Bytea),
            Ok(Cell::Bytea(Some(b"{}".to_vec())))
        );
        assert_eq!(Cell::read(ValueRef::Null, Kind::Text), Ok(Cell::Text(None)));
        assert!(Cell::read(ValueRef::Integer(1 << 40), Kind::Int4).is_err());
        assert!(Cell::read(ValueRef::Text(b"\xff"), Kind::Text).is_err());
        assert!(Cell::read(ValueRef::Real(1.5), Kind::Int8).is_err());
    }

    /// A table or column added to the SQLite schema without being added here would
    /// be left behind by a migration: this fails first.
    #[tokio::test]
    async fn every_table_and_column_of_the_sqlite_schema_is_copied() {
        use unavoce_store::EventLog;
        let dir =
            std::env::temp_dir().join(format!("unavoce-migrate-{}", uuid::Uuid::new_v4().simple()));
        let log = unavoce_store::SqliteLog::open(&dir, Default::default()).unwrap();
        log.close().await;
        unavoce_store::sqlite::prepare_sqlite();
        let conn = Connection::open(dir.join("events.db")).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for name in &tables {
            if matches!(name.as_str(), "event_identifiers" | "index_progress") {
                continue; // derived: PostgreSQL indexes `events` instead
            }
            let table = TABLES
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| panic!("table {name} is not migrated"));
            let mut columns: Vec<String> = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{name}') ORDER BY cid"
                ))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut migrated: Vec<String> =
                table.columns.iter().map(|(c, _)| c.to_string()).collect();
            columns.sort();
            migrated.sort();
            assert_eq!(columns, migrated, "the columns of {name}");
        }
        assert_eq!(tables.len(), TABLES.len() + 2, "{tables:?}");
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Binary `COPY` sends each value as the type this module says: it must be the
    /// column's type in the PostgreSQL schema, for every column there.
    #[tokio::test]
    async fn every_column_is_written_as_its_postgresql_type() {
        let database = crate::testing::TestDatabase::create().await.unwrap();
        let store = crate::PgStore::open(&database.url, Default::default())
            .await
            .unwrap();
        let client = store.client().await.unwrap();
        for table in TABLES {
            let rows = client
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = $1",
                    &[&table.name],
                )
                .await
                .unwrap();
            let mut in_postgres: Vec<(String, String)> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            let mut written: Vec<(String, String)> = table
                .columns
                .iter()
                .map(|(name, kind)| {
                    let pg = match kind {
                        Kind::Int8 => "bigint",
                        Kind::Int4 => "integer",
                        Kind::Bool => "boolean",
                        Kind::Text => "text",
                        Kind::Bytea => "bytea",
                    };
                    (name.to_string(), pg.to_string())
                })
                .collect();
            in_postgres.sort();
            written.sort();
            assert_eq!(in_postgres, written, "{}", table.name);
        }
        drop(client);
        unavoce_store::EventLog::close(&store).await;
    }
}
