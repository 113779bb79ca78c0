//! Keys and the audit log on SQLite: changes through the writer (the audit chain is
//! extended in the writer's transaction, so concurrent requests chain in one order),
//! reads through the reader pool.

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use unavoce_core::audit::{self, AuditEntry, AuditRecord};

use super::SqliteLog;
use super::rows::{from_micros, micros};
use super::writer::{Done, Op};
use crate::governance::{ApiKey, AuditQuery, Governance};
use crate::log::StoreError;

const KEY_COLUMNS: &str = "name, role, key_hash, created_at, last_used_at FROM api_keys";
const AUDIT_COLUMNS: &str =
    "seq, at, actor, role, action, profile_id, outcome, hash FROM audit_log";

fn key(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let role: String = r.get(1)?;
    Ok(ApiKey {
        name: r.get(0)?,
        role: role
            .parse()
            .map_err(|e: unavoce_core::access::UnknownRole| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
        key_hash: r.get(2)?,
        created_at: from_micros(r.get(3)?),
        last_used_at: r.get::<_, Option<i64>>(4)?.map(from_micros),
    })
}

fn record(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        entry: AuditEntry {
            at: from_micros(r.get(1)?),
            actor: r.get(2)?,
            role: r.get(3)?,
            action: r.get(4)?,
            profile_id: r.get(5)?,
            outcome: r.get::<_, i64>(6)?.clamp(0, i64::from(u16::MAX)) as u16,
        },
        hash: r.get(7)?,
    })
}

/// The writer's part: a key added (false if its name is taken), or put in place.
pub(crate) fn put_key(tx: &Transaction<'_>, key: &ApiKey, replace: bool) -> rusqlite::Result<bool> {
    let verb = if replace {
        "INSERT OR REPLACE"
    } else {
        "INSERT OR IGNORE"
    };
    let n = tx.execute(
        &format!(
            "{verb} INTO api_keys (name, role, key_hash, created_at, last_used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)"
        ),
        params![
            key.name,
            key.role.as_str(),
            key.key_hash,
            micros(key.created_at),
            key.last_used_at.map(micros)
        ],
    )?;
    Ok(n == 1)
}

/// The writer's part: a key removed.
pub(crate) fn revoke_key(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<bool> {
    Ok(tx.execute("DELETE FROM api_keys WHERE name = ?1", params![name])? == 1)
}

/// The writer's part: a session ended, and the ended sessions that expired forgotten.
pub(crate) fn end_session(
    tx: &Transaction<'_>,
    signature: &str,
    expires: Timestamp,
    now: Timestamp,
) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM ended_sessions WHERE expires < ?1",
        params![micros(now)],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO ended_sessions (signature, expires) VALUES (?1, ?2)",
        params![signature, micros(expires)],
    )?;
    Ok(())
}

/// The writer's part: a key's last use.
pub(crate) fn touch_key(tx: &Transaction<'_>, name: &str, at: Timestamp) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE name = ?1",
    )?
    .execute(params![name, micros(at)])?;
    Ok(())
}

/// The writer's part: entries appended to the chain.
pub(crate) fn append_audit(tx: &Transaction<'_>, entries: &[AuditEntry]) -> rusqlite::Result<()> {
    let (mut seq, mut previous) = tx
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()?
        .unwrap_or_else(|| (0, audit::GENESIS.to_string()));
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit_log (seq, at, actor, role, action, profile_id, outcome, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for entry in entries {
        seq += 1;
        previous = audit::link(&previous, seq, entry);
        insert.execute(params![
            seq,
            micros(entry.at),
            entry.actor,
            entry.role,
            entry.action,
            entry.profile_id,
            entry.outcome,
            previous
        ])?;
    }
    Ok(())
}

fn unexpected() -> StoreError {
    StoreError::Storage("writer answered out of turn".into())
}

fn one_key(conn: &Connection, filter: &str, arg: String) -> rusqlite::Result<Option<ApiKey>> {
    conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} WHERE {filter}"))?
        .query_row([arg], key)
        .optional()
}

#[async_trait]
impl Governance for SqliteLog {
    async fn create_key(&self, key: ApiKey) -> Result<bool, StoreError> {
        match self
            .submit(Op::PutKey {
                key,
                replace: false,
            })
            .await?
        {
            Done::KeyPut(created) => Ok(created),
            _ => Err(unexpected()),
        }
    }

    async fn put_key(&self, key: ApiKey) -> Result<(), StoreError> {
        match self.submit(Op::PutKey { key, replace: true }).await? {
            Done::KeyPut(_) => Ok(()),
            _ => Err(unexpected()),
        }
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = key_hash.to_string();
        self.read(move |conn| one_key(conn, "key_hash = ?1", hash))
            .await
    }

    async fn key_by_name(&self, name: &str) -> Result<Option<ApiKey>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| one_key(conn, "name = ?1", name))
            .await
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} ORDER BY name"))?;
            let found = stmt.query_map([], key)?;
            found.collect()
        })
        .await
    }

    async fn revoke_key(&self, name: &str) -> Result<bool, StoreError> {
        match self.submit(Op::RevokeKey(name.to_string())).await? {
            Done::KeyRevoked(found) => Ok(found),
            _ => Err(unexpected()),
        }
    }

    async fn end_session(
        &self,
        signature: &str,
        expires: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let op = Op::EndSession {
            signature: signature.to_string(),
            expires,
            now,
        };
        match self.submit(op).await? {
            Done::SessionEnded => Ok(()),
            _ => Err(unexpected()),
        }
    }

    async fn session_ended(&self, signature: &str) -> Result<bool, StoreError> {
        let signature = signature.to_string();
        self.read(move |conn| {
            conn.prepare_cached("SELECT 1 FROM ended_sessions WHERE signature = ?1")?
                .exists([signature])
        })
        .await
    }

    async fn touch_key(&self, name: &str, at: Timestamp) -> Result<(), StoreError> {
        let op = Op::TouchKey {
            name: name.to_string(),
            at,
        };
        match self.submit(op).await? {
            Done::KeyTouched => Ok(()),
            _ => Err(unexpected()),
        }
    }

    async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        match self.submit(Op::Audit(entries)).await? {
            Done::Audited => Ok(()),
            _ => Err(unexpected()),
        }
    }

    async fn audit_records(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |conn| {
            let mut sql = format!("SELECT {AUDIT_COLUMNS} WHERE seq < ?1");
            let mut args: Vec<rusqlite::types::Value> =
                vec![query.before.unwrap_or(i64::MAX).into()];
            // Each condition, `{n}` standing for its argument's number.
            let conditions: [(&str, Option<rusqlite::types::Value>); 5] = [
                ("actor = ?{n}", query.actor.map(Into::into)),
                ("profile_id = ?{n}", query.profile_id.map(Into::into)),
                (
                    "substr(action, 1, length(?{n})) = ?{n}",
                    query.action.map(Into::into),
                ),
                ("at >= ?{n}", query.from.map(|t| micros(t).into())),
                ("at < ?{n}", query.to.map(|t| micros(t).into())),
            ];
            for (condition, value) in conditions {
                if let Some(value) = value {
                    args.push(value);
                    let n = args.len().to_string();
                    sql.push_str(" AND ");
                    sql.push_str(&condition.replace("{n}", &n));
                }
            }
            args.push((query.limit.clamp(1, 10_000) as i64).into());
            sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
            let mut stmt = conn.prepare(&sql)?;
            let found = stmt.query_map(rusqlite::params_from_iter(args), record)?;
            found.collect()
        })
        .await
    }

    async fn audit_chain(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let found = stmt.query_map(params![after, limit.clamp(1, 100_000) as i64], record)?;
            found.collect()
        })
        .await
    }
}
