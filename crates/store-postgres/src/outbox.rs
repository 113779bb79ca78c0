//! The outbox on PostgreSQL, for several nodes at once.
//!
//! A claim locks the rows it takes (`FOR UPDATE SKIP LOCKED`) and marks them `sending`
//! in the same transaction: nodes claiming the same lane at once each take other
//! entries, and none waits for another's. Taking early reports deletes them in the
//! statement that returns them, so each goes to one caller only.

use std::collections::HashMap;

use async_trait::async_trait;
use jiff::Timestamp;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement, Transaction};
use unavoce_store::{
    EARLY_REPORTS_KEPT_FOR, EarlyReport, Outbox, OutboxCount, OutboxEntry, OutboxQuery,
    OutboxStatus, Settlement, StoreError,
};

use crate::PgStore;
use crate::rows::{db, from_micros, get, micros, outbox_status_at, profile_id_at};

/// The columns [`entry`] reads, from `outbox o` joined with `decisions d`.
const COLUMNS: &str = "o.id, o.decision_id, o.profile_id, o.channel, o.message, d.purpose, \
     d.journey, d.broadcast, o.send_at, o.status, o.attempts, o.last_error, \
     o.provider_message_id, o.delivery, o.updated_at, coalesce(d.send_at, d.decided_at), d.reasons \
     FROM outbox o JOIN decisions d ON d.id = o.decision_id";

/// Reads a row selected with [`COLUMNS`].
fn entry(r: &Row) -> Result<OutboxEntry, StoreError> {
    Ok(OutboxEntry {
        id: get(r, 0)?,
        decision_id: get(r, 1)?,
        profile_id: profile_id_at(r, 2)?,
        channel: get(r, 3)?,
        message: get(r, 4)?,
        purpose: get(r, 5)?,
        journey: get(r, 6)?,
        broadcast: get(r, 7)?,
        send_at: from_micros(get(r, 8)?),
        status: outbox_status_at(r, 9)?,
        attempts: get::<i32>(r, 10)?.max(0) as u32,
        last_error: get(r, 11)?,
        provider_message_id: get(r, 12)?,
        delivery: get(r, 13)?,
        updated_at: get::<Option<i64>>(r, 14)?.map(from_micros),
        first_due: from_micros(get(r, 15)?),
        reasons: serde_json::from_str(get(r, 16)?).unwrap_or_default(),
    })
}

/// Statements of one transaction, each prepared the first time it runs.
struct Prepared<'a, 't> {
    tx: &'a Transaction<'t>,
    statements: HashMap<&'static str, Statement>,
}

impl Prepared<'_, '_> {
    /// Runs `sql` with `params`; how many rows it changed.
    async fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let statement = match self.statements.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = self.tx.prepare(sql).await.map_err(db)?;
                self.statements.insert(sql, statement.clone());
                statement
            }
        };
        self.tx.execute(&statement, params).await.map_err(db)
    }
}

/// Records what became of attempts, in order, inside `tx` (the appender's, or one of
/// [`Outbox::settle`]'s own).
pub(crate) async fn settle(
    tx: &Transaction<'_>,
    settlements: &[Settlement],
) -> Result<(), StoreError> {
    let mut prepared = Prepared {
        tx,
        statements: HashMap::new(),
    };
    for s in settlements {
        match s {
            Settlement::Sent {
                id,
                provider_message_id,
                at,
            } => {
                prepared
                    .execute(
                        "UPDATE outbox SET status = 'sent', provider_message_id = $2, \
                         last_error = NULL, updated_at = $3 WHERE id = $1",
                        &[id, provider_message_id, &micros(*at)],
                    )
                    .await?;
            }
            Settlement::Retry {
                id,
                retry_at,
                error,
                at,
            } => {
                prepared
                    .execute(
                        "UPDATE outbox SET status = 'pending', send_at = $2, last_error = $3, \
                         updated_at = $4 WHERE id = $1",
                        &[id, &micros(*retry_at), error, &micros(*at)],
                    )
                    .await?;
            }
            Settlement::Dead { id, error, at } => {
                prepared
                    .execute(
                        "UPDATE outbox SET status = 'dead', last_error = $2, updated_at = $3 \
                         WHERE id = $1",
                        &[id, error, &micros(*at)],
                    )
                    .await?;
            }
            Settlement::Released { id } => {
                prepared
                    .execute(
                        "UPDATE outbox SET status = 'pending', attempts = greatest(attempts - 1, 0) \
                         WHERE id = $1 AND status = 'sending'",
                        &[id],
                    )
                    .await?;
            }
            Settlement::Cancelled { id, reason, at } => {
                prepared
                    .execute(
                        "UPDATE outbox SET status = 'cancelled', last_error = $2, updated_at = $3 \
                         WHERE id = $1",
                        &[id, reason, &micros(*at)],
                    )
                    .await?;
            }
            Settlement::Reported {
                id,
                delivery,
                error,
                at,
            } => {
                prepared
                    .execute(
                        "UPDATE outbox SET delivery = $2, last_error = coalesce($3, last_error), \
                         updated_at = $4 WHERE id = $1",
                        &[id, delivery, error, &micros(*at)],
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

impl PgStore {
    /// The one entry `filter` (on `$1`) selects, the oldest if several do.
    async fn one_entry(
        &self,
        filter: &str,
        arg: &(dyn ToSql + Sync),
    ) -> Result<Option<OutboxEntry>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} WHERE {filter} ORDER BY o.id LIMIT 1"
            ))
            .await
            .map_err(db)?;
        client
            .query_opt(&statement, &[arg])
            .await
            .map_err(db)?
            .map(|row| entry(&row))
            .transpose()
    }
}

#[async_trait]
impl Outbox for PgStore {
    async fn claim(
        &self,
        channel: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let at = micros(now);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let select = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} WHERE o.channel = $1 AND o.status = 'pending' \
                 AND o.send_at <= $2 ORDER BY o.send_at, o.id LIMIT $3 \
                 FOR UPDATE OF o SKIP LOCKED"
            ))
            .await
            .map_err(db)?;
        // An entry that does not read fails the claim before any is marked: dropping
        // the transaction rolls it back, and the locks go with it.
        let mut claimed = tx
            .query(&select, &[&channel, &at, &limit])
            .await
            .map_err(db)?
            .iter()
            .map(entry)
            .collect::<Result<Vec<_>, _>>()?;
        if !claimed.is_empty() {
            let ids: Vec<i64> = claimed.iter().map(|e| e.id).collect();
            let mark = tx
                .prepare_cached(
                    "UPDATE outbox SET status = 'sending', attempts = attempts + 1, \
                     updated_at = $2 WHERE id = ANY($1)",
                )
                .await
                .map_err(db)?;
            tx.execute(&mark, &[&ids, &at]).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        for e in &mut claimed {
            e.status = OutboxStatus::Sending;
            e.attempts = e.attempts.saturating_add(1);
            e.updated_at = Some(now);
        }
        Ok(claimed)
    }

    async fn settle(&self, settlements: Vec<Settlement>) -> Result<(), StoreError> {
        if settlements.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        settle(&tx, &settlements).await?;
        tx.commit().await.map_err(db)
    }

    async fn resume_in_flight(&self, channel: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE outbox SET status = 'pending', \
                 last_error = 'interrupted: the attempt was under way when the server stopped' \
                 WHERE channel = $1 AND status = 'sending'",
                &[&channel],
            )
            .await
            .map_err(db)
    }

    async fn requeue(&self, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, send_at = $2, \
                 updated_at = $2 WHERE id = $1 AND status = 'dead'",
                &[&id, &micros(at)],
            )
            .await
            .map_err(db)?;
        Ok(changed == 1)
    }

    async fn outbox(&self, query: OutboxQuery) -> Result<Vec<OutboxEntry>, StoreError> {
        let after = query.after_id.unwrap_or(0);
        let status = query.status.map(OutboxStatus::as_str);
        let channel = query.channel.as_deref();
        let broadcast = query.broadcast.as_deref();
        let profile_ids: Vec<String> = query.profile_ids.iter().map(|p| p.to_string()).collect();
        let limit = query.limit.clamp(1, 100_000) as i64;
        let mut sql = format!("SELECT {COLUMNS} WHERE o.id > $1");
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&after];
        for (column, value) in [
            ("o.status", &status),
            ("o.channel", &channel),
            ("d.broadcast", &broadcast),
        ] {
            if let Some(value) = value {
                args.push(value);
                sql.push_str(&format!(" AND {column} = ${}", args.len()));
            }
        }
        if !profile_ids.is_empty() {
            args.push(&profile_ids);
            sql.push_str(&format!(" AND o.profile_id = ANY(${})", args.len()));
        }
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY o.id LIMIT ${}", args.len()));
        self.read_rows(&sql, &args, entry).await
    }

    async fn park_report(&self, report: EarlyReport) -> Result<(), StoreError> {
        let forget_before = report
            .received_at
            .checked_sub(EARLY_REPORTS_KEPT_FOR)
            .map_or(i64::MIN, micros);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(
            "DELETE FROM early_reports WHERE received_at < $1",
            &[&forget_before],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "INSERT INTO early_reports (provider_message_id, delivery, error, received_at) \
             VALUES ($1, $2, $3, $4)",
            &[
                &report.provider_message_id,
                &report.delivery,
                &report.error,
                &micros(report.received_at),
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn take_early_reports(
        &self,
        provider_message_ids: Vec<String>,
    ) -> Result<Vec<EarlyReport>, StoreError> {
        if provider_message_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One statement, so one transaction: a report deleted by another caller first
        // is not returned here.
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "WITH taken AS (DELETE FROM early_reports WHERE provider_message_id = ANY($1) \
                 RETURNING id, provider_message_id, delivery, error, received_at) \
                 SELECT provider_message_id, delivery, error, received_at FROM taken ORDER BY id",
            )
            .await
            .map_err(db)?;
        client
            .query(&statement, &[&provider_message_ids])
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                Ok(EarlyReport {
                    provider_message_id: get(r, 0)?,
                    delivery: get(r, 1)?,
                    error: get(r, 2)?,
                    received_at: from_micros(get(r, 3)?),
                })
            })
            .collect()
    }

    async fn early_reports_due(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT DISTINCT e.provider_message_id COLLATE \"C\" FROM early_reports e \
                 JOIN outbox o ON o.provider_message_id = e.provider_message_id ORDER BY 1",
                &[],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| get(r, 0))
            .collect()
    }

    async fn outbox_by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        self.one_entry("o.provider_message_id = $1", &provider_message_id)
            .await
    }

    async fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>, StoreError> {
        self.one_entry("o.id = $1", &id).await
    }

    async fn outbox_counts(&self) -> Result<Vec<OutboxCount>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT channel, status, count(*) FROM outbox GROUP BY channel, status \
                 ORDER BY channel COLLATE \"C\", status COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                Ok(OutboxCount {
                    channel: get(r, 0)?,
                    status: outbox_status_at(r, 1)?,
                    entries: get::<i64>(r, 2)?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn next_due(&self, channel: &str) -> Result<Option<Timestamp>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(send_at) FROM outbox WHERE channel = $1 AND status = 'pending'",
                &[&channel],
            )
            .await
            .map_err(db)?;
        Ok(get::<Option<i64>>(&row, 0)?.map(from_micros))
    }
}
