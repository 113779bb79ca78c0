//! The outbox on SQLite: claims and settlements go through the writer, reads through
//! the reader pool.

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, Row, Transaction, params};

use super::SqliteLog;
use super::rows::{from_micros, micros, outbox_status_at, profile_id_at};
use super::writer::{Done, Op};
use crate::log::StoreError;
use crate::outbox::{
    EARLY_REPORTS_KEPT_FOR, EarlyReport, Outbox, OutboxCount, OutboxEntry, OutboxQuery,
    OutboxStatus, Settlement,
};

/// The columns [`entry`] reads, from `outbox o` joined with `decisions d`.
const COLUMNS: &str = "o.id, o.decision_id, o.profile_id, o.channel, o.message, d.purpose, \
     d.journey, d.broadcast, o.send_at, o.status, o.attempts, o.last_error, \
     o.provider_message_id, o.delivery, o.updated_at, coalesce(d.send_at, d.decided_at), d.reasons \
     FROM outbox o JOIN decisions d ON d.id = o.decision_id";

fn entry(r: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    Ok(OutboxEntry {
        id: r.get(0)?,
        decision_id: r.get(1)?,
        profile_id: profile_id_at(r, 2)?,
        channel: r.get(3)?,
        message: r.get(4)?,
        purpose: r.get(5)?,
        journey: r.get(6)?,
        broadcast: r.get(7)?,
        send_at: from_micros(r.get(8)?),
        status: outbox_status_at(r, 9)?,
        attempts: r.get::<_, i64>(10)?.clamp(0, i64::from(u32::MAX)) as u32,
        last_error: r.get(11)?,
        provider_message_id: r.get(12)?,
        delivery: r.get(13)?,
        updated_at: r.get::<_, Option<i64>>(14)?.map(from_micros),
        first_due: from_micros(r.get(15)?),
        reasons: serde_json::from_str(&r.get::<_, String>(16)?).unwrap_or_default(),
    })
}

/// The writer's part: claims entries (they become `sending`, one more attempt).
pub(crate) fn claim(
    tx: &Transaction<'_>,
    channel: &str,
    now: Timestamp,
    limit: usize,
) -> rusqlite::Result<Vec<OutboxEntry>> {
    let mut select = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} WHERE o.channel = ?1 AND o.status = 'pending' AND o.send_at <= ?2 \
         ORDER BY o.send_at, o.id LIMIT ?3"
    ))?;
    let mut claimed: Vec<OutboxEntry> = select
        .query_map(params![channel, micros(now), limit as i64], entry)?
        .collect::<rusqlite::Result<_>>()?;
    let mut mark = tx.prepare_cached(
        "UPDATE outbox SET status = 'sending', attempts = attempts + 1, updated_at = ?2 \
         WHERE id = ?1",
    )?;
    for e in &mut claimed {
        mark.execute(params![e.id, micros(now)])?;
        e.status = OutboxStatus::Sending;
        e.attempts += 1;
        e.updated_at = Some(now);
    }
    Ok(claimed)
}

/// The writer's part: records settlements.
pub(crate) fn settle(tx: &Transaction<'_>, settlements: &[Settlement]) -> rusqlite::Result<()> {
    for s in settlements {
        match s {
            Settlement::Sent {
                id,
                provider_message_id,
                at,
            } => {
                tx.prepare_cached(
                    "UPDATE outbox SET status = 'sent', provider_message_id = ?2, \
                     last_error = NULL, updated_at = ?3 WHERE id = ?1",
                )?
                .execute(params![id, provider_message_id, micros(*at)])?;
            }
            Settlement::Retry {
                id,
                retry_at,
                error,
                at,
            } => {
                tx.prepare_cached(
                    "UPDATE outbox SET status = 'pending', send_at = ?2, last_error = ?3, \
                     updated_at = ?4 WHERE id = ?1",
                )?
                .execute(params![id, micros(*retry_at), error, micros(*at)])?;
            }
            Settlement::Dead { id, error, at } => {
                tx.prepare_cached(
                    "UPDATE outbox SET status = 'dead', last_error = ?2, updated_at = ?3 \
                     WHERE id = ?1",
                )?
                .execute(params![id, error, micros(*at)])?;
            }
            Settlement::Released { id } => {
                tx.prepare_cached(
                    "UPDATE outbox SET status = 'pending', attempts = max(attempts - 1, 0) \
                     WHERE id = ?1 AND status = 'sending'",
                )?
                .execute(params![id])?;
            }
            Settlement::Cancelled { id, reason, at } => {
                tx.prepare_cached(
                    "UPDATE outbox SET status = 'cancelled', last_error = ?2, updated_at = ?3 \
                     WHERE id = ?1",
                )?
                .execute(params![id, reason, micros(*at)])?;
            }
            Settlement::Reported {
                id,
                delivery,
                error,
                at,
            } => {
                tx.prepare_cached(
                    "UPDATE outbox SET delivery = ?2, last_error = coalesce(?3, last_error), \
                     updated_at = ?4 WHERE id = ?1",
                )?
                .execute(params![id, delivery, error, micros(*at)])?;
            }
        }
    }
    Ok(())
}

/// The writer's part: a lane's entries left `sending` by a crash go back to `pending`.
pub(crate) fn resume_in_flight(tx: &Transaction<'_>, channel: &str) -> rusqlite::Result<u64> {
    let n = tx.execute(
        "UPDATE outbox SET status = 'pending', \
         last_error = 'interrupted: the attempt was under way when the server stopped' \
         WHERE channel = ?1 AND status = 'sending'",
        [channel],
    )?;
    Ok(n as u64)
}

/// The writer's part: a dead letter back in line.
pub(crate) fn requeue(tx: &Transaction<'_>, id: i64, at: Timestamp) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, send_at = ?2, updated_at = ?2 \
         WHERE id = ?1 AND status = 'dead'",
        params![id, micros(at)],
    )?;
    Ok(n == 1)
}

/// The writer's part: an early report kept, and those too old to wait forgotten.
pub(crate) fn park(tx: &Transaction<'_>, report: &EarlyReport) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM early_reports WHERE received_at < ?1")?
        .execute(params![micros(report.received_at - EARLY_REPORTS_KEPT_FOR)])?;
    tx.prepare_cached(
        "INSERT INTO early_reports (provider_message_id, delivery, error, received_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        report.provider_message_id,
        report.delivery,
        report.error,
        micros(report.received_at)
    ])?;
    Ok(())
}

/// The writer's part: the early reports on these provider ids, removed.
pub(crate) fn take_early(
    tx: &Transaction<'_>,
    provider_message_ids: &[String],
) -> rusqlite::Result<Vec<EarlyReport>> {
    let mut taken = Vec::new();
    let mut take = tx.prepare_cached(
        "DELETE FROM early_reports WHERE provider_message_id = ?1 \
         RETURNING id, provider_message_id, delivery, error, received_at",
    )?;
    for id in provider_message_ids {
        let rows = take.query_map(params![id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                EarlyReport {
                    provider_message_id: r.get(1)?,
                    delivery: r.get(2)?,
                    error: r.get(3)?,
                    received_at: from_micros(r.get(4)?),
                },
            ))
        })?;
        for row in rows {
            taken.push(row?);
        }
    }
    taken.sort_by_key(|(id, _)| *id);
    Ok(taken.into_iter().map(|(_, report)| report).collect())
}

fn one(
    conn: &Connection,
    filter: &str,
    arg: rusqlite::types::Value,
) -> rusqlite::Result<Option<OutboxEntry>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} WHERE {filter} LIMIT 1"))?;
    let mut rows = stmt.query_map([arg], entry)?;
    rows.next().transpose()
}

fn unexpected() -> StoreError {
    StoreError::Storage("writer answered out of turn".into())
}

#[async_trait]
impl Outbox for SqliteLog {
    async fn claim(
        &self,
        channel: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let op = Op::Claim {
            channel: channel.to_string(),
            now,
            limit: limit.max(1),
        };
        match self.submit(op).await? {
            Done::Claimed(entries) => Ok(entries),
            _ => Err(unexpected()),
        }
    }

    async fn settle(&self, settlements: Vec<Settlement>) -> Result<(), StoreError> {
        if settlements.is_empty() {
            return Ok(());
        }
        match self.submit(Op::Settle(settlements)).await? {
            Done::Settled => Ok(()),
            _ => Err(unexpected()),
        }
    }

    async fn resume_in_flight(&self, channel: &str) -> Result<u64, StoreError> {
        match self.submit(Op::ResumeInFlight(channel.to_string())).await? {
            Done::Resumed(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    async fn requeue(&self, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        match self.submit(Op::Requeue { id, at }).await? {
            Done::Requeued(found) => Ok(found),
            _ => Err(unexpected()),
        }
    }

    async fn outbox(&self, query: OutboxQuery) -> Result<Vec<OutboxEntry>, StoreError> {
        self.read(move |conn| {
            let mut sql = format!("SELECT {COLUMNS} WHERE o.id > ?1");
            let mut args: Vec<rusqlite::types::Value> = vec![query.after_id.unwrap_or(0).into()];
            for (column, value) in [
                ("o.status", query.status.map(OutboxStatus::as_str)),
                ("o.channel", query.channel.as_deref()),
                ("d.broadcast", query.broadcast.as_deref()),
            ] {
                if let Some(value) = value {
                    args.push(value.to_string().into());
                    sql.push_str(&format!(" AND {column} = ?{}", args.len()));
                }
            }
            if !query.profile_ids.is_empty() {
                let mut slots = Vec::new();
                for profile in &query.profile_ids {
                    args.push(profile.to_string().into());
                    slots.push(format!("?{}", args.len()));
                }
                sql.push_str(&format!(" AND o.profile_id IN ({})", slots.join(", ")));
            }
            args.push((query.limit.clamp(1, 100_000) as i64).into());
            sql.push_str(&format!(" ORDER BY o.id LIMIT ?{}", args.len()));
            let mut stmt = conn.prepare_cached(&sql)?;
            let found = stmt.query_map(rusqlite::params_from_iter(args), entry)?;
            found.collect()
        })
        .await
    }

    async fn park_report(&self, report: EarlyReport) -> Result<(), StoreError> {
        match self.submit(Op::Park(report)).await? {
            Done::Parked => Ok(()),
            _ => Err(unexpected()),
        }
    }

    async fn take_early_reports(
        &self,
        provider_message_ids: Vec<String>,
    ) -> Result<Vec<EarlyReport>, StoreError> {
        if provider_message_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Nearly always none wait: a read answers that without the writer.
        let ids = provider_message_ids.clone();
        let waiting = self
            .read(move |conn| {
                let mut any = conn.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM early_reports WHERE provider_message_id = ?1)",
                )?;
                for id in &ids {
                    if any.query_row(params![id], |r| r.get::<_, bool>(0))? {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .await?;
        if !waiting {
            return Ok(Vec::new());
        }
        match self.submit(Op::TakeEarly(provider_message_ids)).await? {
            Done::TakenEarly(reports) => Ok(reports),
            _ => Err(unexpected()),
        }
    }

    async fn early_reports_due(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT e.provider_message_id FROM early_reports e \
                 JOIN outbox o ON o.provider_message_id = e.provider_message_id",
            )?;
            let found = stmt.query_map([], |r| r.get(0))?;
            found.collect()
        })
        .await
    }

    async fn outbox_by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        let id = provider_message_id.to_string();
        self.read(move |conn| one(conn, "o.provider_message_id = ?1", id.into()))
            .await
    }

    async fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>, StoreError> {
        self.read(move |conn| one(conn, "o.id = ?1", id.into()))
            .await
    }

    async fn outbox_counts(&self) -> Result<Vec<OutboxCount>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT channel, status, count(*) FROM outbox GROUP BY 1, 2 ORDER BY 1, 2",
            )?;
            let found = stmt.query_map([], |r| {
                Ok(OutboxCount {
                    channel: r.get(0)?,
                    status: outbox_status_at(r, 1)?,
                    entries: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?;
            found.collect()
        })
        .await
    }

    async fn next_due(&self, channel: &str) -> Result<Option<Timestamp>, StoreError> {
        let channel = channel.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT min(send_at) FROM outbox WHERE channel = ?1 AND status = 'pending'",
                params![channel],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|at| at.map(from_micros))
        })
        .await
    }
}
