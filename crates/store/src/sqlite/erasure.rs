//! Erasure and retention on SQLite. The writer runs an erasure in a transaction of its own: the
//! person's events (and their rows in the identifier index), quarantined messages
//! holding their identifiers, their outbox entries, decisions and journey runs go, their
//! suppressions come; then it checkpoints the WAL (TRUNCATE), so the removed rows are
//! in neither the database (`secure_delete` zeroes them there) nor the WAL.
//!
//! Log positions are never given twice: SQLite gives a new row the newest row's `seq`
//! plus one, so when an erasure removes the newest events it records the highest `seq`
//! given (`counters.highest_seq`), and the next event is stored after it
//! ([`erased_top`]).

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, Transaction, TransactionBehavior, params, params_from_iter};
use unavoce_core::identity::ProfileId;
use unavoce_core::redact::Redacted;

use super::SqliteLog;
use super::rows::{from_micros, micros};
use super::writer::{Done, Op};
use crate::erasure::{
    Erasing, Erasure, ErasureReceipt, Expiring, ExpiryReceipt, PayloadSearch,
    QUARANTINE_EXPIRY_CHUNK, StrippedEvent, Suppression,
};
use crate::log::StoreError;

/// Rows named in one statement at most.
const CHUNK: usize = 500;

/// How often a checkpoint after an erasure is tried while it is busy (a reader on an
/// older snapshot, or the background checkpoint running), and how long each waits.
const CHECKPOINT_ATTEMPTS: u32 = 10;
const CHECKPOINT_WAIT: Duration = Duration::from_millis(20);

/// The `counters` row that keeps the highest `seq` ever given once the newest events
/// were erased.
const HIGHEST_SEQ: &str = "highest_seq";

/// What the writer learns from an erasure.
pub(crate) struct Erased {
    pub receipt: ErasureReceipt,
    /// Rows removed and added, for the commit observer.
    pub rows: usize,
}

/// The newest event's `seq`, and the highest ever given (0 when none).
fn log_top(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.prepare_cached(
        "SELECT coalesce((SELECT max(seq) FROM events), 0), \
         coalesce((SELECT value FROM counters WHERE name = ?1), 0)",
    )?
    .query_row([HIGHEST_SEQ], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// The highest `seq` ever given: the newest event's, or that of newer ones since erased.
pub(crate) fn highest_seq(conn: &Connection) -> rusqlite::Result<i64> {
    log_top(conn).map(|(newest, highest)| newest.max(highest))
}

/// When the newest events were erased, the highest `seq` given: the next event must be
/// stored after it. `None` when the newest event holds the highest `seq`.
pub(crate) fn erased_top(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    log_top(conn).map(|(newest, highest)| (highest > newest).then_some(highest))
}

/// Removes expired data (retention) in a transaction of its own.
pub(crate) fn expire(
    conn: &mut Connection,
    expiring: &Expiring,
) -> rusqlite::Result<(ExpiryReceipt, usize)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let highest = highest_seq(&tx)?;
    let events = erase_events(&tx, &expiring.removed)?;
    let stripped = strip_events(&tx, &expiring.stripped)?;
    let (quarantined, pending) = match expiring.quarantined_before {
        Some(before) => expire_quarantined(&tx, before)?,
        None => (0, 0),
    };
    count_removed(&tx, events, pending)?;
    keep_highest_seq(&tx, highest)?;
    tx.commit()?;
    let rows = usize::try_from(events + stripped + quarantined).unwrap_or(usize::MAX);
    let receipt = ExpiryReceipt {
        events,
        stripped,
        quarantined,
    };
    Ok((receipt, rows))
}

/// Replaces events by what is left of them; their ids (and so the identifier index)
/// are unchanged.
fn strip_events(tx: &Transaction<'_>, stripped: &[StrippedEvent]) -> rusqlite::Result<u64> {
    let mut update = tx.prepare_cached(
        "UPDATE events SET type = ?2, name = NULL, touchpoint = NULL, channel = NULL, \
         message = ?3 WHERE seq = ?1",
    )?;
    let mut done = 0;
    for event in stripped {
        let message = serde_json::to_string(&event.message)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        done += update.execute(params![event.seq, event.event_type.as_str(), message])? as u64;
    }
    Ok(done)
}

/// Removes up to [`QUARANTINE_EXPIRY_CHUNK`] quarantined messages received before
/// `before`, oldest first; returns how many, and how many of them were pending.
fn expire_quarantined(tx: &Transaction<'_>, before: Timestamp) -> rusqlite::Result<(u64, u64)> {
    let mut delete = tx.prepare_cached(
        "DELETE FROM quarantine WHERE id IN \
         (SELECT id FROM quarantine WHERE received_at < ?1 ORDER BY id LIMIT ?2) \
         RETURNING status",
    )?;
    let statuses = delete
        .query_map(
            params![micros(before), QUARANTINE_EXPIRY_CHUNK as i64],
            |r| r.get::<_, Option<String>>(0),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let pending = statuses
        .iter()
        .filter(|s| s.as_deref() == Some("pending"))
        .count() as u64;
    Ok((statuses.len() as u64, pending))
}

/// Runs an erasure in a transaction of its own.
pub(crate) fn commit(conn: &mut Connection, erasure: &Erasure) -> rusqlite::Result<Erased> {
    // Immediate: it reads before it writes, and another process may write meanwhile.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let erased = erase(&tx, erasure)?;
    tx.commit()?;
    Ok(erased)
}

fn erase(tx: &Transaction<'_>, erasure: &Erasure) -> rusqlite::Result<Erased> {
    let highest = highest_seq(tx)?;
    let profiles: Vec<String> = erasure
        .profile_ids
        .iter()
        .map(ProfileId::to_string)
        .collect();
    let events = erase_events(tx, &erasure.seqs)?;
    let (quarantined, pending) = erase_quarantined(tx, &erasure.identifier_values)?;
    let (outbox_entries, cancelled) = erase_outbox(tx, &profiles)?;
    let decisions = delete_by_profile(tx, "decisions", &profiles)?;
    let journey_runs = delete_by_profile(tx, "journey_runs", &profiles)?;
    let suppressed = suppress(tx, &erasure.suppress)?;
    count_removed(tx, events, pending)?;
    keep_highest_seq(tx, highest)?;
    let receipt = ErasureReceipt {
        events,
        quarantined,
        decisions,
        outbox_entries,
        cancelled,
        journey_runs,
        suppressed,
    };
    let rows = [
        events,
        quarantined,
        decisions,
        outbox_entries,
        journey_runs,
        suppressed,
    ]
    .iter()
    .sum::<u64>();
    Ok(Erased {
        receipt,
        rows: usize::try_from(rows).unwrap_or(usize::MAX),
    })
}

/// `?1, ?2, …, ?n`.
fn slots(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Removes the events at these positions, by primary key, and their index rows.
fn erase_events(tx: &Transaction<'_>, seqs: &[i64]) -> rusqlite::Result<u64> {
    let mut seqs = seqs.to_vec();
    seqs.sort_unstable();
    seqs.dedup();
    let mut erased = 0;
    for chunk in seqs.chunks(CHUNK) {
        let mut delete = tx.prepare_cached(&format!(
            "DELETE FROM events WHERE seq IN ({}) RETURNING seq, user_id, anonymous_id",
            slots(chunk.len())
        ))?;
        let removed = delete
            .query_map(params_from_iter(chunk), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (seq, user_id, anonymous_id) in &removed {
            super::identifiers::unindex(tx, *seq, user_id.as_deref(), anonymous_id.as_deref())?;
        }
        erased += removed.len() as u64;
    }
    Ok(erased)
}

/// Removes the quarantined messages whose payload holds any of `values`; returns how
/// many, and how many of them were pending.
fn erase_quarantined(tx: &Transaction<'_>, values: &[String]) -> rusqlite::Result<(u64, u64)> {
    let Some(search) = PayloadSearch::new(values) else {
        return Ok((0, 0));
    };
    let matching = quarantined_holding(tx, &search)?;
    let pending = matching.iter().filter(|(_, pending)| *pending).count() as u64;
    let ids: Vec<i64> = matching.into_iter().map(|(id, _)| id).collect();
    let mut removed = 0;
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "DELETE FROM quarantine WHERE id IN ({})",
            slots(chunk.len())
        );
        removed += tx.prepare_cached(&sql)?.execute(params_from_iter(chunk))? as u64;
    }
    Ok((removed, pending))
}

/// The quarantined messages whose payload holds any needle, with whether each is
/// pending. A payload is read as bytes, so one that is not UTF-8 is searched too.
fn quarantined_holding(
    tx: &Transaction<'_>,
    search: &PayloadSearch,
) -> rusqlite::Result<Vec<(i64, bool)>> {
    let mut scan = tx.prepare("SELECT id, payload, status FROM quarantine")?;
    let mut rows = scan.query([])?;
    let mut matching = Vec::new();
    while let Some(row) = rows.next()? {
        let holds = match row.get_ref(1)? {
            rusqlite::types::ValueRef::Text(bytes) | rusqlite::types::ValueRef::Blob(bytes) => {
                search.holds(bytes)
            }
            _ => false,
        };
        if holds {
            let status: Option<String> = row.get(2)?;
            matching.push((row.get(0)?, status.as_deref() == Some("pending")));
        }
    }
    Ok(matching)
}

/// Removes the outbox entries of these profiles (and of their decisions); returns how
/// many, and how many of them were still to be sent.
fn erase_outbox(tx: &Transaction<'_>, profiles: &[String]) -> rusqlite::Result<(u64, u64)> {
    let (mut removed, mut cancelled) = (0, 0);
    for chunk in profiles.chunks(CHUNK) {
        let slots = slots(chunk.len());
        let mut delete = tx.prepare_cached(&format!(
            "DELETE FROM outbox WHERE profile_id IN ({slots}) \
             OR decision_id IN (SELECT id FROM decisions WHERE profile_id IN ({slots})) \
             RETURNING status"
        ))?;
        let statuses = delete
            .query_map(params_from_iter(chunk), |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        removed += statuses.len() as u64;
        cancelled += statuses
            .iter()
            .filter(|s| matches!(s.as_str(), "pending" | "sending"))
            .count() as u64;
    }
    Ok((removed, cancelled))
}

/// Removes the rows of `table` kept under these profiles; returns how many.
fn delete_by_profile(
    tx: &Transaction<'_>,
    table: &str,
    profiles: &[String],
) -> rusqlite::Result<u64> {
    let mut removed = 0;
    for chunk in profiles.chunks(CHUNK) {
        let sql = format!(
            "DELETE FROM {table} WHERE profile_id IN ({})",
            slots(chunk.len())
        );
        removed += tx.prepare_cached(&sql)?.execute(params_from_iter(chunk))? as u64;
    }
    Ok(removed)
}

/// Adds suppressions (an existing hash is kept); returns how many were added.
fn suppress(tx: &Transaction<'_>, suppressions: &[Suppression]) -> rusqlite::Result<u64> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO suppressions (hash, kind, at) VALUES (?1, ?2, ?3)",
    )?;
    let mut added = 0;
    for s in suppressions {
        added += insert.execute(params![s.hash, s.kind, micros(s.at)])? as u64;
    }
    Ok(added)
}

/// Takes what was removed off the log's counts.
fn count_removed(tx: &Transaction<'_>, events: u64, pending: u64) -> rusqlite::Result<()> {
    let mut lower =
        tx.prepare_cached("UPDATE counters SET value = max(value - ?2, 0) WHERE name = ?1")?;
    for (name, removed) in [("events", events), ("quarantined", pending)] {
        if removed > 0 {
            lower.execute(params![name, i64::try_from(removed).unwrap_or(i64::MAX)])?;
        }
    }
    Ok(())
}

/// Records `highest` (the highest `seq` given before the erasure) when the erasure
/// removed the newest events, so their positions are not given again.
fn keep_highest_seq(tx: &Transaction<'_>, highest: i64) -> rusqlite::Result<()> {
    let (newest, _) = log_top(tx)?;
    if newest < highest {
        tx.prepare_cached(
            "INSERT INTO counters (name, value) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
        )?
        .execute(params![HIGHEST_SEQ, highest])?;
    }
    Ok(())
}

/// Copies the WAL into the database and truncates it, so nothing an erasure removed
/// stays in it; returns whether it did. While it is busy it is tried again briefly, then
/// left to the background checkpointer: an erasure never fails for it.
pub(crate) fn truncate_wal(conn: &Connection) -> bool {
    // Short waits: the writer's queue waits meanwhile.
    if let Err(e) = conn.busy_timeout(CHECKPOINT_WAIT) {
        tracing::warn!(error = %Redacted(&e), "cannot shorten the wait for the checkpoint after an erasure");
    }
    let truncated = (0..CHECKPOINT_ATTEMPTS).any(|attempt| {
        if attempt > 0 {
            std::thread::sleep(CHECKPOINT_WAIT);
        }
        checkpoint_once(conn)
    });
    if let Err(e) = conn.busy_timeout(super::schema::BUSY_TIMEOUT) {
        tracing::error!(error = %Redacted(&e), "cannot restore the writer's wait for locks");
    }
    if !truncated {
        tracing::warn!(
            "the WAL could not be truncated after an erasure (readers busy); \
             the background checkpointer will copy it back"
        );
    }
    truncated
}

/// One `wal_checkpoint(TRUNCATE)`: whether it completed.
fn checkpoint_once(conn: &Connection) -> bool {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(busy) => busy == 0,
        Err(e) => {
            tracing::debug!(error = %Redacted(&e), "checkpoint after an erasure busy");
            false
        }
    }
}

fn unexpected() -> StoreError {
    StoreError::Storage("writer answered out of turn".into())
}

#[async_trait]
impl Erasing for SqliteLog {
    async fn erase(&self, erasure: Erasure) -> Result<ErasureReceipt, StoreError> {
        if erasure.is_empty() {
            return Ok(ErasureReceipt::default());
        }
        match self.submit(Op::Erase(erasure)).await? {
            Done::Erased(receipt) => Ok(receipt),
            _ => Err(unexpected()),
        }
    }

    async fn suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT hash, kind, at FROM suppressions ORDER BY hash")?;
            let found = stmt.query_map([], |r| {
                Ok(Suppression {
                    hash: r.get(0)?,
                    kind: r.get(1)?,
                    at: from_micros(r.get(2)?),
                })
            })?;
            found.collect()
        })
        .await
    }

    async fn lift_suppression(&self, hash: &str) -> Result<bool, StoreError> {
        match self.submit(Op::LiftSuppression(hash.to_string())).await? {
            Done::SuppressionLifted(found) => Ok(found),
            _ => Err(unexpected()),
        }
    }

    async fn expire(&self, expiring: Expiring) -> Result<ExpiryReceipt, StoreError> {
        if expiring.removed.is_empty()
            && expiring.stripped.is_empty()
            && expiring.quarantined_before.is_none()
        {
            return Ok(ExpiryReceipt::default());
        }
        match self.submit(Op::Expire(expiring)).await? {
            Done::Expired(receipt) => Ok(receipt),
            _ => Err(unexpected()),
        }
    }
}

/// The writer's part: a suppression lifted.
pub(crate) fn lift(tx: &Transaction<'_>, hash: &str) -> rusqlite::Result<bool> {
    Ok(tx.execute("DELETE FROM suppressions WHERE hash = ?1", [hash])? == 1)
}
