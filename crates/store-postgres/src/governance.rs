//! Keys and the audit log on PostgreSQL.
//!
//! The audit log is one hash chain however many nodes append to it: an append takes a
//! transaction-level advisory lock ([`AUDIT_CHAIN_LOCK`]) before it reads the newest
//! record, and holds it until its records are committed. A row lock would not do:
//! `SELECT … ORDER BY seq DESC LIMIT 1 FOR UPDATE` finds no row to lock in an empty
//! log, and a waiter that gets the lock of what was the newest record still reads it as
//! the newest (that row did not change), so two appends would take the same `seq`. With
//! the advisory lock, the newest record is read only once the lock is held, and under
//! `READ COMMITTED` that read sees every append committed before the lock was released
//! (PostgreSQL makes a commit visible before it releases its locks).

use async_trait::async_trait;
use jiff::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use unavoce_core::audit::{self, AuditEntry, AuditRecord};
use unavoce_store::{ApiKey, AuditQuery, Governance, StoreError};

use crate::PgStore;
use crate::rows::{corrupt, db, from_micros, get, micros};

/// The advisory lock an audit append holds until it commits ("unavocea"); advisory
/// locks are per database, so it orders the appends of every node on this one.
const AUDIT_CHAIN_LOCK: i64 = 0x756e_6176_6f63_6561;

const KEY_COLUMNS: &str = "name, role, key_hash, created_at, last_used_at FROM api_keys";
const AUDIT_COLUMNS: &str =
    "seq, at, actor, role, action, profile_id, outcome, hash FROM audit_log";

/// Reads a row selected with [`KEY_COLUMNS`].
fn key(row: &Row) -> Result<ApiKey, StoreError> {
    let role: String = get(row, 1)?;
    Ok(ApiKey {
        name: get(row, 0)?,
        role: role
            .parse()
            .map_err(|_| corrupt(format!("unknown role {role:?}")))?,
        key_hash: get(row, 2)?,
        created_at: from_micros(get(row, 3)?),
        last_used_at: get::<Option<i64>>(row, 4)?.map(from_micros),
    })
}

/// Reads a row selected with [`AUDIT_COLUMNS`].
fn record(row: &Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: get(row, 0)?,
        entry: AuditEntry {
            at: from_micros(get(row, 1)?),
            actor: get(row, 2)?,
            role: get(row, 3)?,
            action: get(row, 4)?,
            profile_id: get(row, 5)?,
            outcome: get::<i32>(row, 6)?.clamp(0, i32::from(u16::MAX)) as u16,
        },
        hash: get(row, 7)?,
    })
}

impl PgStore {
    /// The key whose `column` is `value`.
    async fn one_key(&self, column: &str, value: &str) -> Result<Option<ApiKey>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {KEY_COLUMNS} WHERE {column} = $1"))
            .await
            .map_err(db)?;
        client
            .query_opt(&statement, &[&value])
            .await
            .map_err(db)?
            .map(|row| key(&row))
            .transpose()
    }
}

#[async_trait]
impl Governance for PgStore {
    /// Adds the key unless its name (or its hash) is taken, as SQLite's `INSERT OR
    /// IGNORE` does.
    async fn create_key(&self, key: ApiKey) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let added = client
            .execute(
                "INSERT INTO api_keys (name, role, key_hash, created_at, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    &key.name,
                    &key.role.as_str(),
                    &key.key_hash,
                    &micros(key.created_at),
                    &key.last_used_at.map(micros),
                ],
            )
            .await
            .map_err(db)?;
        Ok(added == 1)
    }

    /// Puts the key in place of the one of its name and of any other holding its hash,
    /// as SQLite's `INSERT OR REPLACE` does.
    async fn put_key(&self, key: ApiKey) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(
            "DELETE FROM api_keys WHERE key_hash = $1 AND name <> $2",
            &[&key.key_hash, &key.name],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "INSERT INTO api_keys (name, role, key_hash, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, \
             key_hash = excluded.key_hash, created_at = excluded.created_at, \
             last_used_at = excluded.last_used_at",
            &[
                &key.name,
                &key.role.as_str(),
                &key.key_hash,
                &micros(key.created_at),
                &key.last_used_at.map(micros),
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.one_key("key_hash", key_hash).await
    }

    async fn key_by_name(&self, name: &str) -> Result<Option<ApiKey>, StoreError> {
        self.one_key("name", name).await
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let client = self.client().await?;
        client
            .query(&format!("SELECT {KEY_COLUMNS} ORDER BY name"), &[])
            .await
            .map_err(db)?
            .iter()
            .map(key)
            .collect()
    }

    async fn revoke_key(&self, name: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute("DELETE FROM api_keys WHERE name = $1", &[&name])
            .await
            .map_err(db)?;
        Ok(removed == 1)
    }

    async fn end_session(
        &self,
        signature: &str,
        expires: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(
            "DELETE FROM ended_sessions WHERE expires < $1",
            &[&micros(now)],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "INSERT INTO ended_sessions (signature, expires) VALUES ($1, $2) \
             ON CONFLICT (signature) DO NOTHING",
            &[&signature, &micros(expires)],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn session_ended(&self, signature: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT 1 FROM ended_sessions WHERE signature = $1")
            .await
            .map_err(db)?;
        let found = client
            .query_opt(&statement, &[&signature])
            .await
            .map_err(db)?;
        Ok(found.is_some())
    }

    /// Keeps the latest use: a touch that arrives late never moves it back.
    async fn touch_key(&self, name: &str, at: Timestamp) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE api_keys SET last_used_at = greatest(coalesce(last_used_at, 0), $2) \
                 WHERE name = $1",
            )
            .await
            .map_err(db)?;
        client
            .execute(&statement, &[&name, &micros(at)])
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Appends under [`AUDIT_CHAIN_LOCK`]: see the module docs.
    async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_CHAIN_LOCK])
            .await
            .map_err(db)?;
        let (mut seq, mut previous) = match tx
            .query_opt(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(db)?
        {
            Some(row) => (get::<i64>(&row, 0)?, get::<String>(&row, 1)?),
            None => (0, audit::GENESIS.to_string()),
        };
        let mut seqs = Vec::with_capacity(entries.len());
        let mut hashes = Vec::with_capacity(entries.len());
        for entry in &entries {
            seq += 1;
            previous = audit::link(&previous, seq, entry);
            seqs.push(seq);
            hashes.push(previous.clone());
        }
        let ats: Vec<i64> = entries.iter().map(|e| micros(e.at)).collect();
        let actors: Vec<&str> = entries.iter().map(|e| e.actor.as_str()).collect();
        let roles: Vec<&str> = entries.iter().map(|e| e.role.as_str()).collect();
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        let profiles: Vec<Option<&str>> = entries.iter().map(|e| e.profile_id.as_deref()).collect();
        let outcomes: Vec<i32> = entries.iter().map(|e| i32::from(e.outcome)).collect();
        tx.execute(
            "INSERT INTO audit_log (seq, at, actor, role, action, profile_id, outcome, hash) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::integer[], $8::text[])",
            &[
                &seqs, &ats, &actors, &roles, &actions, &profiles, &outcomes, &hashes,
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn audit_records(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let before = query.before.unwrap_or(i64::MAX);
        let from = query.from.map(micros);
        let to = query.to.map(micros);
        let limit = query.limit.clamp(1, 10_000) as i64;
        let mut sql = format!("SELECT {AUDIT_COLUMNS} WHERE seq < $1");
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&before];
        // Each condition, `{n}` standing for its argument's number.
        let conditions: [(&str, Option<&(dyn ToSql + Sync)>); 5] = [
            ("actor = ${n}", query.actor.as_ref().map(|v| v as _)),
            (
                "profile_id = ${n}",
                query.profile_id.as_ref().map(|v| v as _),
            ),
            (
                "starts_with(action, ${n})",
                query.action.as_ref().map(|v| v as _),
            ),
            ("at >= ${n}", from.as_ref().map(|v| v as _)),
            ("at < ${n}", to.as_ref().map(|v| v as _)),
        ];
        for (condition, value) in conditions {
            if let Some(value) = value {
                args.push(value);
                sql.push_str(" AND ");
                sql.push_str(&condition.replace("{n}", &args.len().to_string()));
            }
        }
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", args.len()));
        self.read_rows(&sql, &args, record).await
    }

    async fn audit_chain(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = limit.clamp(1, 100_000) as i64;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .await
            .map_err(db)?;
        client
            .query(&statement, &[&after, &limit])
            .await
            .map_err(db)?
            .iter()
            .map(record)
            .collect()
    }
}
