//! Erasure, retention and the suppression list on PostgreSQL.
//!
//! An erasure (and an expiry) runs in one transaction on a pooled connection, and
//! first locks the log's head row, as every append does: it commits in the log's order
//! with the appends of every node and cannot deadlock with one, and appends wait while
//! it runs, as they wait for the writer on SQLite. It never changes the head's `seq`,
//! so a removed position is never given again, after a restart too.
//!
//! A quarantined payload is kept as the bytes received, so it is searched here, not in
//! SQL: as SQLite's store does, each is read as UTF-8 (invalid bytes replaced) and
//! lowercased with Unicode's rules, which `lower()` would leave to the database's locale.
//!
//! **What stays after an erasure.** Once it commits, `VACUUM (INDEX_CLEANUP ON)` runs
//! on the tables it removed rows from. Afterwards no query, snapshot or index reaches a
//! removed row: their index entries are gone (without `INDEX_CLEANUP ON` a large table
//! keeps them) and their space is free for new rows.
//! Unlike SQLite's `secure_delete` and WAL truncation, this does not promise that no
//! removed byte stays in a file: PostgreSQL does not zero freed space, so bytes of a
//! removed row can stay in a table's or an index's pages until new rows overwrite them,
//! and in WAL segments until they are recycled. A transaction older than the erasure (on
//! any node, or a standby's with `hot_standby_feedback`) keeps VACUUM from removing the
//! rows until it ends. WAL archives, base backups and replicas are the operator's
//! retention; `VACUUM FULL` (which locks the table while it rewrites it) leaves none of
//! the bytes in the tables' current files.

use async_trait::async_trait;
use jiff::Timestamp;
use tokio_postgres::Transaction;
use unavoce_core::redact::Redacted;
use unavoce_store::{
    Erasing, Erasure, ErasureReceipt, Expiring, ExpiryReceipt, PayloadSearch,
    QUARANTINE_EXPIRY_CHUNK, StoreError, StrippedEvent, Suppression,
};

use crate::PgStore;
use crate::rows::{db, from_micros, get, micros};

/// Quarantined messages read at a time while an erasure looks for identifiers.
const SCAN_CHUNK: i32 = 1_000;

#[async_trait]
impl Erasing for PgStore {
    async fn erase(&self, erasure: Erasure) -> Result<ErasureReceipt, StoreError> {
        if erasure.is_empty() {
            return Ok(ErasureReceipt::default());
        }
        let receipt = {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            let receipt = erase(&tx, &erasure).await?;
            tx.commit().await.map_err(db)?;
            receipt
        };
        self.vacuum(&receipt).await;
        Ok(receipt)
    }

    async fn suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        let client = self.client().await?;
        client
            .query("SELECT hash, kind, at FROM suppressions ORDER BY hash", &[])
            .await
            .map_err(db)?
            .iter()
            .map(|row| {
                Ok(Suppression {
                    hash: get(row, 0)?,
                    kind: get(row, 1)?,
                    at: from_micros(get(row, 2)?),
                })
            })
            .collect()
    }

    async fn lift_suppression(&self, hash: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let lifted = client
            .execute("DELETE FROM suppressions WHERE hash = $1", &[&hash])
            .await
            .map_err(db)?;
        Ok(lifted == 1)
    }

    async fn expire(&self, expiring: Expiring) -> Result<ExpiryReceipt, StoreError> {
        if expiring.removed.is_empty()
            && expiring.stripped.is_empty()
            && expiring.quarantined_before.is_none()
        {
            return Ok(ExpiryReceipt::default());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_log(&tx).await?;
        let events = erase_events(&tx, &expiring.removed).await?;
        let stripped = strip_events(&tx, &expiring.stripped).await?;
        let (quarantined, pending) = match expiring.quarantined_before {
            Some(before) => expire_quarantined(&tx, before).await?,
            None => (0, 0),
        };
        count_removed(&tx, events, pending).await?;
        tx.commit().await.map_err(db)?;
        Ok(ExpiryReceipt {
            events,
            stripped,
            quarantined,
        })
    }
}

impl PgStore {
    /// Vacuums the tables an erasure removed rows from (see the module docs). Its
    /// failure is logged, not returned: the erasure is committed by then.
    async fn vacuum(&self, receipt: &ErasureReceipt) {
        let tables: Vec<&str> = [
            ("events", receipt.events),
            ("quarantine", receipt.quarantined),
            ("outbox", receipt.outbox_entries),
            ("decisions", receipt.decisions),
            ("journey_runs", receipt.journey_runs),
        ]
        .into_iter()
        .filter(|(_, removed)| *removed > 0)
        .map(|(table, _)| table)
        .collect();
        if tables.is_empty() {
            return;
        }
        // One statement, sent alone: VACUUM cannot run inside a transaction.
        let sql = format!("VACUUM (INDEX_CLEANUP ON) {}", tables.join(", "));
        let vacuumed = match self.client().await {
            Ok(client) => client.batch_execute(&sql).await.map_err(db),
            Err(e) => Err(e),
        };
        if let Err(e) = vacuumed {
            tracing::warn!(
                error = %Redacted(&e),
                "VACUUM after an erasure failed; the erasure is committed, and autovacuum \
                 will free the removed rows"
            );
        }
    }
}

/// Removes what the erasure names; its receipt.
async fn erase(tx: &Transaction<'_>, erasure: &Erasure) -> Result<ErasureReceipt, StoreError> {
    lock_log(tx).await?;
    let profiles: Vec<String> = erasure.profile_ids.iter().map(|p| p.to_string()).collect();
    let events = erase_events(tx, &erasure.seqs).await?;
    let (quarantined, pending) = erase_quarantined(tx, &erasure.identifier_values).await?;
    let (outbox_entries, cancelled) = erase_outbox(tx, &profiles).await?;
    let decisions = delete_by_profile(tx, "decisions", &profiles).await?;
    let journey_runs = delete_by_profile(tx, "journey_runs", &profiles).await?;
    let suppressed = suppress(tx, &erasure.suppress).await?;
    count_removed(tx, events, pending).await?;
    Ok(ErasureReceipt {
        events,
        quarantined,
        decisions,
        outbox_entries,
        cancelled,
        journey_runs,
        suppressed,
    })
}

/// Locks the log's head row until the transaction ends, as an append does.
async fn lock_log(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("SELECT seq FROM log_head WHERE id = 1 FOR UPDATE", &[])
        .await
        .map_err(db)?;
    Ok(())
}

/// Removes the events at these positions; how many there were.
async fn erase_events(tx: &Transaction<'_>, seqs: &[i64]) -> Result<u64, StoreError> {
    if seqs.is_empty() {
        return Ok(0);
    }
    tx.execute("DELETE FROM events WHERE seq = ANY($1)", &[&seqs])
        .await
        .map_err(db)
}

/// Replaces events by what is left of them, at their positions; their identifiers are
/// unchanged.
async fn strip_events(tx: &Transaction<'_>, stripped: &[StrippedEvent]) -> Result<u64, StoreError> {
    if stripped.is_empty() {
        return Ok(0);
    }
    let update = tx
        .prepare(
            "UPDATE events SET type = $2, name = NULL, touchpoint = NULL, channel = NULL, \
             message = $3 WHERE seq = $1",
        )
        .await
        .map_err(db)?;
    let mut done = 0;
    for event in stripped {
        let message = serde_json::to_string(&event.message)
            .map_err(|e| StoreError::Storage(format!("cannot serialise a stripped event: {e}")))?;
        done += tx
            .execute(&update, &[&event.seq, &event.event_type.as_str(), &message])
            .await
            .map_err(db)?;
    }
    Ok(done)
}

/// Removes up to [`QUARANTINE_EXPIRY_CHUNK`] quarantined messages received before
/// `before`, oldest first; how many, and how many of them were pending.
async fn expire_quarantined(
    tx: &Transaction<'_>,
    before: Timestamp,
) -> Result<(u64, u64), StoreError> {
    let statuses = tx
        .query(
            "DELETE FROM quarantine WHERE id IN \
             (SELECT id FROM quarantine WHERE received_at < $1 ORDER BY id LIMIT $2) \
             RETURNING status",
            &[&micros(before), &(QUARANTINE_EXPIRY_CHUNK as i64)],
        )
        .await
        .map_err(db)?;
    pending_of(&statuses)
}

/// How many rows `statuses` holds, and how many of them were pending.
fn pending_of(statuses: &[tokio_postgres::Row]) -> Result<(u64, u64), StoreError> {
    let mut pending = 0;
    for row in statuses {
        if get::<&str>(row, 0)? == "pending" {
            pending += 1;
        }
    }
    Ok((statuses.len() as u64, pending))
}

/// Removes the quarantined messages whose payload holds any of `values`; how many, and
/// how many of them were pending.
async fn erase_quarantined(
    tx: &Transaction<'_>,
    values: &[String],
) -> Result<(u64, u64), StoreError> {
    let Some(search) = PayloadSearch::new(values) else {
        return Ok((0, 0));
    };
    let scan = tx
        .bind("SELECT id, payload FROM quarantine", &[])
        .await
        .map_err(db)?;
    let mut holding: Vec<i64> = Vec::new();
    loop {
        let rows = tx.query_portal(&scan, SCAN_CHUNK).await.map_err(db)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            if search.holds(get::<&[u8]>(row, 1)?) {
                holding.push(get(row, 0)?);
            }
        }
    }
    if holding.is_empty() {
        return Ok((0, 0));
    }
    let statuses = tx
        .query(
            "DELETE FROM quarantine WHERE id = ANY($1) RETURNING status",
            &[&holding],
        )
        .await
        .map_err(db)?;
    pending_of(&statuses)
}

/// Removes the outbox entries of these profiles (and of their decisions); how many, and
/// how many of them were still to be sent.
async fn erase_outbox(tx: &Transaction<'_>, profiles: &[String]) -> Result<(u64, u64), StoreError> {
    if profiles.is_empty() {
        return Ok((0, 0));
    }
    let statuses = tx
        .query(
            "DELETE FROM outbox WHERE profile_id = ANY($1) \
             OR decision_id IN (SELECT id FROM decisions WHERE profile_id = ANY($1)) \
             RETURNING status",
            &[&profiles],
        )
        .await
        .map_err(db)?;
    let mut cancelled = 0;
    for row in &statuses {
        if matches!(get::<&str>(row, 0)?, "pending" | "sending") {
            cancelled += 1;
        }
    }
    Ok((statuses.len() as u64, cancelled))
}

/// Removes the rows of `table` kept under these profiles; how many.
async fn delete_by_profile(
    tx: &Transaction<'_>,
    table: &str,
    profiles: &[String],
) -> Result<u64, StoreError> {
    if profiles.is_empty() {
        return Ok(0);
    }
    tx.execute(
        &format!("DELETE FROM {table} WHERE profile_id = ANY($1)"),
        &[&profiles],
    )
    .await
    .map_err(db)
}

/// Adds suppressions (an existing hash is kept as it is); how many were added.
async fn suppress(tx: &Transaction<'_>, suppressions: &[Suppression]) -> Result<u64, StoreError> {
    if suppressions.is_empty() {
        return Ok(0);
    }
    let hashes: Vec<&str> = suppressions.iter().map(|s| s.hash.as_str()).collect();
    let kinds: Vec<&str> = suppressions.iter().map(|s| s.kind.as_str()).collect();
    let ats: Vec<i64> = suppressions.iter().map(|s| micros(s.at)).collect();
    tx.execute(
        "INSERT INTO suppressions (hash, kind, at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) \
         ON CONFLICT (hash) DO NOTHING",
        &[&hashes, &kinds, &ats],
    )
    .await
    .map_err(db)
}

/// Takes what was removed off the log's counts (never below zero).
async fn count_removed(tx: &Transaction<'_>, events: u64, pending: u64) -> Result<(), StoreError> {
    if events == 0 && pending == 0 {
        return Ok(());
    }
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    tx.execute(
        "UPDATE counters SET value = greatest(value - CASE name \
           WHEN 'events' THEN $1::bigint ELSE $2::bigint END, 0) \
         WHERE name IN ('events', 'quarantined')",
        &[&count(events), &count(pending)],
    )
    .await
    .map_err(db)?;
    Ok(())
}
