//! Connection settings and schema migrations.

use rusqlite::Connection;

use super::Durability;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    message_id   TEXT    NOT NULL UNIQUE,
    type         TEXT    NOT NULL,
    name         TEXT,
    user_id      TEXT,
    anonymous_id TEXT,
    timestamp    INTEGER NOT NULL, -- microseconds since the Unix epoch
    received_at  INTEGER NOT NULL,
    touchpoint   TEXT,
    channel      TEXT,
    source       TEXT    NOT NULL,
    message      TEXT    NOT NULL  -- the whole normalised message, JSON
);
CREATE INDEX events_by_user_id ON events (user_id, seq) WHERE user_id IS NOT NULL;
CREATE INDEX events_by_anonymous_id ON events (anonymous_id, seq) WHERE anonymous_id IS NOT NULL;

CREATE TABLE quarantine (
    id           INTEGER PRIMARY KEY,
    received_at  INTEGER NOT NULL,
    source       TEXT    NOT NULL,
    code         TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    message_id   TEXT,
    payload      TEXT    NOT NULL,
    origin       TEXT    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'pending',
    replayed_at  INTEGER,
    replayed_seq INTEGER
);
CREATE INDEX quarantine_by_status ON quarantine (status, id);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES
    ('events', 0), ('duplicates', 0), ('quarantined', 0), ('quarantined_total', 0);
"#,
    r#"
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL -- JSON
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE decisions (
    id         INTEGER PRIMARY KEY,
    profile_id TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    purpose    TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    journey    TEXT,
    broadcast  TEXT,
    decided_at INTEGER NOT NULL,
    outcome    TEXT    NOT NULL, -- send | hold | suppress
    send_at    INTEGER,
    reasons    TEXT    NOT NULL  -- JSON
);
CREATE INDEX decisions_by_profile ON decisions (profile_id, id);
CREATE INDEX decisions_by_broadcast ON decisions (broadcast, id) WHERE broadcast IS NOT NULL;

CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    decision_id INTEGER NOT NULL REFERENCES decisions (id),
    profile_id  TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    send_at     INTEGER NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'pending' -- pending | sent | failed | dead
);
CREATE INDEX outbox_due ON outbox (status, send_at);
"#,
    r#"
CREATE TABLE journey_runs (
    key          TEXT    PRIMARY KEY, -- journey:profile:trigger position
    journey      TEXT    NOT NULL,
    profile_id   TEXT    NOT NULL,
    entered_at   INTEGER NOT NULL,
    control      INTEGER NOT NULL,
    status       TEXT    NOT NULL, -- active | exited | completed
    step         INTEGER NOT NULL,
    wake_at      INTEGER,
    waiting_for  TEXT,
    blocked      INTEGER NOT NULL,
    watching     TEXT,
    fallbacks    TEXT    NOT NULL, -- JSON array of channels
    exit_reason  TEXT,
    converted_at INTEGER,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX journey_runs_by_journey ON journey_runs (journey, status);
CREATE INDEX journey_runs_by_profile ON journey_runs (profile_id);
"#,
    r#"
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN provider_message_id TEXT;
ALTER TABLE outbox ADD COLUMN delivery TEXT; -- the provider's report: delivered | read | failed
ALTER TABLE outbox ADD COLUMN updated_at INTEGER;
DROP INDEX outbox_due;
CREATE INDEX outbox_lane ON outbox (channel, status, send_at);
CREATE INDEX outbox_by_provider_message ON outbox (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
"#,
    // Events by identifier move from indexes on the table, updated at every commit, to
    // an index table the writer fills in chunks (see `identifiers.rs`).
    r#"
DROP INDEX events_by_user_id;
DROP INDEX events_by_anonymous_id;
CREATE TABLE event_identifiers (
    kind  INTEGER NOT NULL, -- 0 userId, 1 anonymousId
    value TEXT    NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (kind, value, seq)
) WITHOUT ROWID;
CREATE TABLE index_progress (
    name    TEXT PRIMARY KEY,
    through INTEGER NOT NULL -- every event up to this seq is indexed
) WITHOUT ROWID;
INSERT INTO event_identifiers (kind, value, seq)
    SELECT 0, user_id, seq FROM events WHERE user_id IS NOT NULL;
INSERT INTO event_identifiers (kind, value, seq)
    SELECT 1, anonymous_id, seq FROM events WHERE anonymous_id IS NOT NULL;
INSERT INTO index_progress (name, through)
    SELECT 'event_identifiers', coalesce(max(seq), 0) FROM events;
"#,
    // Providers' reports that came before their message's send was settled.
    r#"
CREATE TABLE early_reports (
    id                  INTEGER PRIMARY KEY,
    provider_message_id TEXT    NOT NULL,
    delivery            TEXT    NOT NULL,
    error               TEXT,
    received_at         INTEGER NOT NULL
);
CREATE INDEX early_reports_by_provider_message ON early_reports (provider_message_id);
CREATE INDEX early_reports_by_age ON early_reports (received_at);
"#,
    // Named API keys (as hashes) and the hash-chained audit log.
    r#"
CREATE TABLE api_keys (
    name         TEXT PRIMARY KEY,
    role         TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) WITHOUT ROWID;
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    profile_id TEXT,
    outcome    INTEGER NOT NULL,
    hash       TEXT    NOT NULL
);
CREATE INDEX audit_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_by_profile ON audit_log (profile_id, seq) WHERE profile_id IS NOT NULL;
"#,
    // Identifiers of erased people that must not be contacted again, as hashes.
    r#"
CREATE TABLE suppressions (
    hash TEXT    PRIMARY KEY,
    kind TEXT    NOT NULL, -- the identifier type, e.g. email
    at   INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // A person's outbox entries, found by profile (export and erasure) and by decision
    // (erasure, and the foreign-key check when a decision is deleted).
    r#"
CREATE INDEX outbox_by_profile ON outbox (profile_id);
CREATE INDEX outbox_by_decision ON outbox (decision_id);
"#,
    // Dashboard sessions signed out before they expired, by signature.
    r#"
CREATE TABLE ended_sessions (
    signature TEXT    PRIMARY KEY,
    expires   INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // The version of its journey a run follows (0: whichever is in force).
    r#"
ALTER TABLE journey_runs ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
"#,
];

/// How long a connection waits for a lock before it answers busy.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sets the pragmas every connection uses.
pub(crate) fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    no_checkpoint_on_close(conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -32_000)?; // 32 MiB; the writer's is larger
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    // Deleted content is overwritten with zeros, in its page and in freed pages, so an
    // erased person's data does not linger in the file's free space. The cost: a delete
    // or an update that moves a row writes the zeroed pages too (more pages to the WAL
    // and to checkpoint, and freed pages are written instead of just listed). Appends,
    // which only insert, hardly pay it; deletes and rewrites of large rows do.
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

/// SQLite copies the WAL into the database when a store's last connection closes: on a
/// store found damaged, that would write to it. Checkpoints are the checkpoint thread's
/// (or, without one, the writer's), after the store's check has passed.
pub(crate) fn no_checkpoint_on_close(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    Ok(())
}

/// Gives the writer's connection its larger page cache. Its indexes take scattered
/// keys (`messageId`s, identifiers), so each commit dirties about a page per row; with
/// 32 MiB, a large store's commits spilled dirty pages to the WAL mid-transaction and
/// read index pages back from the file — a third of the writer's time in the 70 %
/// soak (see BENCHMARKS.md).
pub(crate) fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "cache_size", -(WRITER_CACHE_MIB * 1024))
}

/// The writer's page cache, in MiB.
pub(crate) const WRITER_CACHE_MIB: i64 = 256;

/// Brings the schema up to date; returns how many migrations ran.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<usize> {
    let applied = user_version(conn)?;
    let tx = conn.transaction()?;
    for migration in MIGRATIONS.iter().skip(applied) {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    Ok(MIGRATIONS.len().saturating_sub(applied))
}

/// How many migrations this build knows.
pub(crate) fn latest_version() -> usize {
    MIGRATIONS.len()
}

/// The schema version recorded in the database.
pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<usize> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(usize::try_from(version).unwrap_or(usize::MAX))
}
