//! The decision log and the journey runs on PostgreSQL.

use async_trait::async_trait;
use serde_json::Value;
use tokio_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use unavoce_store::{
    DecisionLog, DecisionQuery, JourneyRun, JourneyStore, NewDecision, RunCount, RunQuery,
    StoreError, StoredDecision,
};

use crate::PgStore;
use crate::rows::{db, from_micros, get, micros, outcome_at, profile_id_at, run_status_at};

/// Inserts decisions, and an outbox entry for each one that goes out; their ids. Both
/// are copied in: the ids are taken from the table's sequence first.
pub(crate) async fn insert_decisions(
    tx: &Transaction<'_>,
    decisions: &[NewDecision],
) -> Result<Vec<i64>, StoreError> {
    if decisions.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = tx
        .query(
            "SELECT nextval(pg_get_serial_sequence('decisions', 'id')) \
             FROM generate_series(1, $1::bigint)",
            &[&(decisions.len() as i64)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let sink = tx
        .copy_in(
            "COPY decisions (id, profile_id, message, purpose, channel, journey, broadcast, \
             decided_at, outcome, send_at, reasons) FROM STDIN (FORMAT binary)",
        )
        .await
        .map_err(db)?;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
    ];
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    let mut outbox = Vec::new();
    for (id, d) in ids.iter().zip(decisions) {
        let profile_id = d.profile_id.to_string();
        let columns: [&(dyn ToSql + Sync); 11] = [
            id,
            &profile_id,
            &d.message,
            &d.purpose,
            &d.channel,
            &d.journey,
            &d.broadcast,
            &micros(d.decided_at),
            &d.outcome.as_str(),
            &d.send_at.map(micros),
            &d.reasons.to_string(),
        ];
        writer.as_mut().write(&columns).await.map_err(db)?;
        if let Some(send_at) = d.send_at.filter(|_| d.outcome.goes_out()) {
            outbox.push((*id, profile_id, d, micros(send_at)));
        }
    }
    writer.finish().await.map_err(db)?;
    if !outbox.is_empty() {
        let sink = tx
            .copy_in(
                "COPY outbox (decision_id, profile_id, channel, message, send_at) \
                 FROM STDIN (FORMAT binary)",
            )
            .await
            .map_err(db)?;
        let types = [Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8];
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        for (id, profile_id, d, send_at) in &outbox {
            let columns: [&(dyn ToSql + Sync); 5] =
                [id, profile_id, &d.channel, &d.message, send_at];
            writer.as_mut().write(&columns).await.map_err(db)?;
        }
        writer.finish().await.map_err(db)?;
    }
    Ok(ids)
}

#[async_trait]
impl DecisionLog for PgStore {
    async fn record_decisions(&self, decisions: Vec<NewDecision>) -> Result<Vec<i64>, StoreError> {
        if decisions.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let ids = insert_decisions(&tx, &decisions).await?;
        tx.commit().await.map_err(db)?;
        Ok(ids)
    }

    async fn record_decisions_with_setting(
        &self,
        decisions: Vec<NewDecision>,
        name: &str,
        value: Value,
    ) -> Result<Vec<i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let ids = insert_decisions(&tx, &decisions).await?;
        crate::log::put_setting(&*tx, name, &value.to_string()).await?;
        tx.commit().await.map_err(db)?;
        Ok(ids)
    }

    async fn decision_counts(&self, except: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT outcome, count(*) FROM decisions WHERE purpose != $1 \
                 GROUP BY outcome ORDER BY outcome COLLATE \"C\"",
                &[&except],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|row| Ok((get(row, 0)?, get::<i64>(row, 1)?.max(0) as u64)))
            .collect()
    }

    async fn decisions(&self, query: DecisionQuery) -> Result<Vec<StoredDecision>, StoreError> {
        let mut sql = String::from(
            "SELECT id, profile_id, message, purpose, channel, journey, broadcast, decided_at, \
             outcome, send_at, reasons FROM decisions WHERE ",
        );
        let after = if query.newest_first {
            sql.push_str("id < $1");
            query.after_id.unwrap_or(i64::MAX)
        } else {
            sql.push_str("id > $1");
            query.after_id.unwrap_or(0)
        };
        let profile_ids: Vec<String> = query.profile_ids.iter().map(|p| p.to_string()).collect();
        let since = query.sends_since.map(micros);
        let limit = query.limit.clamp(1, 100_000) as i64;
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&after];
        if !profile_ids.is_empty() {
            args.push(&profile_ids);
            sql.push_str(&format!(" AND profile_id = ANY(${})", args.len()));
        }
        if let Some(broadcast) = &query.broadcast {
            args.push(broadcast);
            sql.push_str(&format!(" AND broadcast = ${}", args.len()));
        }
        if let Some(since) = &since {
            args.push(since);
            sql.push_str(&format!(
                " AND outcome IN ('send', 'hold') AND decided_at >= ${}",
                args.len()
            ));
        }
        args.push(&limit);
        let order = if query.newest_first { "DESC" } else { "ASC" };
        sql.push_str(&format!(" ORDER BY id {order} LIMIT ${}", args.len()));
        self.read_rows(&sql, &args, |r| {
            Ok(StoredDecision {
                id: get(r, 0)?,
                decision: NewDecision {
                    profile_id: profile_id_at(r, 1)?,
                    message: get(r, 2)?,
                    purpose: get(r, 3)?,
                    channel: get(r, 4)?,
                    journey: get(r, 5)?,
                    broadcast: get(r, 6)?,
                    decided_at: from_micros(get(r, 7)?),
                    outcome: outcome_at(r, 8)?,
                    send_at: get::<Option<i64>>(r, 9)?.map(from_micros),
                    reasons: serde_json::from_str(get(r, 10)?).unwrap_or(Value::Null),
                },
            })
        })
        .await
    }
}

#[async_trait]
impl JourneyStore for PgStore {
    async fn save_runs(
        &self,
        runs: Vec<JourneyRun>,
        decisions: Vec<NewDecision>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        insert_decisions(&tx, &decisions).await?;
        let save = tx
            .prepare(
                "INSERT INTO journey_runs (key, journey, profile_id, entered_at, control, status, \
                 step, wake_at, waiting_for, blocked, watching, fallbacks, exit_reason, \
                 converted_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                 ON CONFLICT (key) DO UPDATE SET journey = excluded.journey, \
                 profile_id = excluded.profile_id, entered_at = excluded.entered_at, \
                 control = excluded.control, status = excluded.status, step = excluded.step, \
                 wake_at = excluded.wake_at, waiting_for = excluded.waiting_for, \
                 blocked = excluded.blocked, watching = excluded.watching, \
                 fallbacks = excluded.fallbacks, exit_reason = excluded.exit_reason, \
                 converted_at = excluded.converted_at, updated_at = excluded.updated_at, \
                 version = excluded.version",
            )
            .await
            .map_err(db)?;
        for r in &runs {
            let fallbacks = serde_json::to_string(&r.fallbacks).unwrap_or_else(|_| "[]".into());
            let version = i64::from(r.version);
            tx.execute(
                &save,
                &[
                    &r.key,
                    &r.journey,
                    &r.profile_id.to_string(),
                    &micros(r.entered_at),
                    &r.control,
                    &r.status.as_str(),
                    &(r.step as i64),
                    &r.wake_at.map(micros),
                    &r.waiting_for,
                    &r.blocked,
                    &r.watching,
                    &fallbacks,
                    &r.exit_reason,
                    &r.converted_at.map(micros),
                    &micros(r.updated_at),
                    &version,
                ],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn runs(&self, query: RunQuery) -> Result<Vec<JourneyRun>, StoreError> {
        let mut sql = String::from(
            "SELECT key, journey, profile_id, entered_at, control, status, step, wake_at, \
             waiting_for, blocked, watching, fallbacks, exit_reason, converted_at, updated_at, \
             version FROM journey_runs WHERE key > $1",
        );
        let after = query.after.clone().unwrap_or_default();
        let profile_id = query.profile_id.map(|p| p.to_string());
        let limit = query.limit.clamp(1, 100_000) as i64;
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&after];
        if let Some(journey) = &query.journey {
            args.push(journey);
            sql.push_str(&format!(" AND journey = ${}", args.len()));
        }
        if let Some(profile) = &profile_id {
            args.push(profile);
            sql.push_str(&format!(" AND profile_id = ${}", args.len()));
        }
        if query.active_only {
            sql.push_str(" AND status = 'active'");
        }
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY key LIMIT ${}", args.len()));
        self.read_rows(&sql, &args, |r| {
            Ok(JourneyRun {
                key: get(r, 0)?,
                journey: get(r, 1)?,
                profile_id: profile_id_at(r, 2)?,
                entered_at: from_micros(get(r, 3)?),
                control: get(r, 4)?,
                status: run_status_at(r, 5)?,
                step: get::<i64>(r, 6)?.max(0) as usize,
                wake_at: get::<Option<i64>>(r, 7)?.map(from_micros),
                waiting_for: get(r, 8)?,
                blocked: get(r, 9)?,
                watching: get(r, 10)?,
                fallbacks: serde_json::from_str(get(r, 11)?).unwrap_or_default(),
                exit_reason: get(r, 12)?,
                converted_at: get::<Option<i64>>(r, 13)?.map(from_micros),
                updated_at: from_micros(get(r, 14)?),
                version: get::<i64>(r, 15)?.clamp(0, u32::MAX.into()) as u32,
            })
        })
        .await
    }

    async fn run_counts(&self, journey: &str) -> Result<Vec<RunCount>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT status, step, control, converted_at IS NOT NULL, version, count(*) \
                 FROM journey_runs WHERE journey = $1 GROUP BY 1, 2, 3, 4, 5 \
                 ORDER BY status COLLATE \"C\", step, control, 4, 5",
                &[&journey],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                Ok(RunCount {
                    status: run_status_at(r, 0)?,
                    step: get::<i64>(r, 1)?.max(0) as usize,
                    control: get(r, 2)?,
                    converted: get(r, 3)?,
                    version: get::<i64>(r, 4)?.clamp(0, u32::MAX.into()) as u32,
                    runs: get::<i64>(r, 5)?.max(0) as u64,
                })
            })
            .collect()
    }
}
