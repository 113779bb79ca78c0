//! The event log and its quarantine on PostgreSQL: appends through the appender,
//! reads through the pool.

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use unavoce_core::Event;
use unavoce_store::{
    AppendBatch, AppendOutcome, Appended, EventLog, EventPage, EventQuery, EventRow, LogStats,
    QuarantineEntry, QuarantinePage, QuarantineQuery, QuarantineStatus, Settlement, StoreError,
    StoredEvent,
};

use crate::PgStore;
use crate::appender::AppendJob;
use crate::rows::{EVENT_COLUMNS, QUARANTINE_COLUMNS, db, event_from_row, quarantine_from_row};

/// The most rows one page reads.
const MAX_PAGE: usize = 10_000;

#[async_trait]
impl EventLog for PgStore {
    async fn append_settling(
        &self,
        batch: &AppendBatch,
        settlements: Vec<Settlement>,
    ) -> Result<AppendOutcome, StoreError> {
        if batch.is_empty() && settlements.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let events = batch.event_rows()?;
        let quarantine = batch.quarantine.clone();
        self.submit(|reply| AppendJob::Append {
            events,
            quarantine,
            settlements,
            reply,
        })
        .await
    }

    async fn replay_quarantined(
        &self,
        id: i64,
        event: Event,
        at: Timestamp,
    ) -> Result<Appended, StoreError> {
        let event = EventRow::from_event(&event)?;
        self.submit(|reply| AppendJob::Replay {
            id,
            event,
            at,
            reply,
        })
        .await
    }

    async fn events(&self, query: EventQuery) -> Result<EventPage, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let after = query.after_seq.unwrap_or(0);
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1");
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&after];
        if let Some(user_id) = &query.user_id {
            args.push(user_id);
            sql.push_str(&format!(" AND user_id = ${}", args.len()));
        }
        if let Some(anonymous_id) = &query.anonymous_id {
            args.push(anonymous_id);
            sql.push_str(&format!(" AND anonymous_id = ${}", args.len()));
        }
        sql.push_str(&format!(" ORDER BY seq LIMIT {}", limit + 1));
        let mut events = self
            .read_rows(&sql, &args, |row| {
                event_from_row(row).map(|(seq, event)| StoredEvent { seq, event })
            })
            .await?;
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
    }

    async fn events_at(&self, seqs: Vec<i64>) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq = ANY($1) ORDER BY seq"
            ))
            .await
            .map_err(db)?;
        let mut events = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(MAX_PAGE) {
            for row in client.query(&statement, &[&chunk]).await.map_err(db)? {
                let (seq, event) = event_from_row(&row)?;
                events.push(StoredEvent { seq, event });
            }
        }
        events.sort_by_key(|e| e.seq);
        events.dedup_by_key(|e| e.seq);
        Ok(events)
    }

    fn committed(&self) -> tokio::sync::watch::Receiver<i64> {
        self.committed.clone()
    }

    async fn setting(&self, name: &str) -> Result<Option<Value>, StoreError> {
        let client = self.client().await?;
        let found = client
            .query_opt("SELECT value FROM settings WHERE name = $1", &[&name])
            .await
            .map_err(db)?;
        Ok(found.and_then(|row| serde_json::from_str(row.get::<_, &str>(0)).ok()))
    }

    async fn put_setting(&self, name: &str, value: Value) -> Result<(), StoreError> {
        let client = self.client().await?;
        put_setting(&**client, name, &value.to_string()).await?;
        // No receiver (one node alone) is not an error.
        let _ = self.settings_written.send(name.to_string());
        Ok(())
    }

    async fn setting_or_insert(&self, name: &str, value: Value) -> Result<Value, StoreError> {
        // Stored already (every start but the first): no write.
        if let Some(stored) = self.setting(name).await? {
            return Ok(stored);
        }
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &value.to_string()],
            )
            .await
            .map_err(db)?;
        let stored = client
            .query_one("SELECT value FROM settings WHERE name = $1", &[&name])
            .await
            .map_err(db)?;
        serde_json::from_str(stored.get::<_, &str>(0))
            .map_err(|e| crate::rows::corrupt(format!("setting {name}: {e}")))
    }

    async fn quarantine(&self, query: QuarantineQuery) -> Result<QuarantinePage, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let after = query.after_id.unwrap_or(0);
        let status = query.status.map(|status| match status {
            QuarantineStatus::Pending => "pending",
            QuarantineStatus::Replayed => "replayed",
        });
        let mut sql = format!("SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id > $1");
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&after];
        if let Some(status) = &status {
            args.push(status);
            sql.push_str(&format!(" AND status = ${}", args.len()));
        }
        if let Some(code) = &query.code {
            args.push(code);
            sql.push_str(&format!(" AND code = ${}", args.len()));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {}", limit + 1));
        let mut entries = self.read_rows(&sql, &args, quarantine_from_row).await?;
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
    }

    async fn quarantine_entry(&self, id: i64) -> Result<Option<QuarantineEntry>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(db)?
            .map(|row| quarantine_from_row(&row))
            .transpose()
    }

    async fn stats(&self) -> Result<LogStats, StoreError> {
        let client = self.client().await?;
        let mut stats = LogStats::default();
        for row in client
            .query("SELECT name, value FROM counters", &[])
            .await
            .map_err(db)?
        {
            let value = row.get::<_, i64>(1).max(0) as u64;
            match row.get::<_, &str>(0) {
                "events" => stats.events = value,
                "duplicates" => stats.duplicates = value,
                "quarantined" => stats.quarantined = value,
                "quarantined_total" => stats.quarantined_total = value,
                _ => {}
            }
        }
        Ok(stats)
    }

    fn is_ready(&self) -> bool {
        let open = self.appender.read().map(|s| s.is_some()).unwrap_or(false);
        open && self.appender_ready()
    }

    async fn close(&self) {
        self.shut_down().await;
    }
}

/// Stores a setting (inside a transaction or not).
pub(crate) async fn put_setting(
    client: &impl tokio_postgres::GenericClient,
    name: &str,
    value: &str,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&name, &value],
        )
        .await
        .map_err(db)?;
    Ok(())
}
