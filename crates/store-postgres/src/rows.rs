//! Mapping between rows and domain values, and database errors to store errors.

use jiff::Timestamp;
use serde_json::{Map, Value};
use tokio_postgres::Row;
use unavoce_core::identity::ProfileId;
use unavoce_core::policy::Outcome;
use unavoce_core::{Event, EventType};
use unavoce_store::{OutboxStatus, QuarantineEntry, QuarantineStatus, RunStatus, StoreError};

/// A database failure as a store error. A server error keeps its code and message but
/// not its detail, which can quote the values of a row (identifiers).
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        // 53100 disk_full: nothing of the statement was written.
        Some(server) if *server.code() == tokio_postgres::error::SqlState::DISK_FULL => {
            StoreError::Full(format!("PostgreSQL 53100: {}", server.message()))
        }
        Some(server) => StoreError::Storage(format!(
            "PostgreSQL {}: {}",
            server.code().code(),
            server.message()
        )),
        None => StoreError::Storage(format!("PostgreSQL: {e}")),
    }
}

/// A pooled connection that could not be had.
pub(crate) fn pool(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db(e),
        e => StoreError::Storage(format!("PostgreSQL connection pool: {e}")),
    }
}

/// A stored value that does not read back as what it should be.
pub(crate) fn corrupt(what: String) -> StoreError {
    StoreError::Storage(format!("corrupt row: {what}"))
}

/// A timestamp as microseconds since the Unix epoch.
pub(crate) fn micros(ts: Timestamp) -> i64 {
    ts.as_microsecond()
}

/// The inverse of [`micros`].
pub(crate) fn from_micros(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Column `index` of `row`, or a storage error saying which column did not read.
pub(crate) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| corrupt(format!("column {index}: {e}")))
}

/// A value stored as its text, from column `index`: text that spells none is an error
/// naming `what` it should have been, never a panic.
fn spelled<T>(
    row: &Row,
    index: usize,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> Result<T, StoreError> {
    let text: String = get(row, index)?;
    parse(&text).ok_or_else(|| corrupt(format!("unknown {what} {text:?}")))
}

/// A decision's outcome, from column `index`.
pub(crate) fn outcome_at(row: &Row, index: usize) -> Result<Outcome, StoreError> {
    spelled(row, index, Outcome::parse, "decision outcome")
}

/// An outbox entry's status, from column `index`.
pub(crate) fn outbox_status_at(row: &Row, index: usize) -> Result<OutboxStatus, StoreError> {
    spelled(row, index, OutboxStatus::parse, "outbox status")
}

/// A journey run's status, from column `index`.
pub(crate) fn run_status_at(row: &Row, index: usize) -> Result<RunStatus, StoreError> {
    spelled(row, index, RunStatus::parse, "journey run status")
}

/// A profile id, from column `index`: stored as its text (`p-42`).
pub(crate) fn profile_id_at(row: &Row, index: usize) -> Result<ProfileId, StoreError> {
    let text: String = get(row, index)?;
    text.parse()
        .map_err(|()| corrupt(format!("{text:?} is not a profile id")))
}

pub(crate) const EVENT_COLUMNS: &str = "seq, message_id, type, name, user_id, anonymous_id, \
    timestamp, received_at, touchpoint, channel, source, message";

/// Reads a row selected with [`EVENT_COLUMNS`].
pub(crate) fn event_from_row(row: &Row) -> Result<(i64, Event), StoreError> {
    let event_type: String = get(row, 2)?;
    let message: String = get(row, 11)?;
    let message: Map<String, Value> =
        serde_json::from_str(&message).map_err(|e| corrupt(format!("message JSON: {e}")))?;
    let event = Event {
        message_id: get(row, 1)?,
        event_type: event_type
            .parse::<EventType>()
            .map_err(|e| corrupt(e.to_string()))?,
        name: get(row, 3)?,
        user_id: get(row, 4)?,
        anonymous_id: get(row, 5)?,
        timestamp: from_micros(get(row, 6)?),
        received_at: from_micros(get(row, 7)?),
        touchpoint: get(row, 8)?,
        channel: get(row, 9)?,
        source: get(row, 10)?,
        message,
    };
    Ok((get(row, 0)?, event))
}

pub(crate) const QUARANTINE_COLUMNS: &str = "id, received_at, source, code, reason, message_id, \
    payload, origin, status, replayed_at, replayed_seq";

/// Reads a row selected with [`QUARANTINE_COLUMNS`].
pub(crate) fn quarantine_from_row(row: &Row) -> Result<QuarantineEntry, StoreError> {
    let origin: String = get(row, 7)?;
    let status: String = get(row, 8)?;
    let payload: Vec<u8> = get(row, 6)?;
    Ok(QuarantineEntry {
        id: get(row, 0)?,
        received_at: from_micros(get(row, 1)?),
        source: get(row, 2)?,
        code: get(row, 3)?,
        reason: get(row, 4)?,
        message_id: get(row, 5)?,
        payload: String::from_utf8_lossy(&payload).into_owned(),
        origin: serde_json::from_str(&origin).unwrap_or(Value::String(origin)),
        status: if status == "replayed" {
            QuarantineStatus::Replayed
        } else {
            QuarantineStatus::Pending
        },
        replayed_at: get::<Option<i64>>(row, 9)?.map(from_micros),
        replayed_seq: get(row, 10)?,
    })
}
