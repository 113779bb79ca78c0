//! Mapping between rows and domain values.

use jiff::Timestamp;
use rusqlite::{Row, ToSql, Transaction, params};

pub use crate::event_row::EventRow;
use serde_json::{Map, Value};
use unavoce_core::identity::ProfileId;
use unavoce_core::policy::Outcome;
use unavoce_core::{Event, EventType};

use crate::journeys::RunStatus;
use crate::log::{Appended, NewQuarantineEntry, QuarantineEntry, QuarantineStatus};
use crate::outbox::OutboxStatus;

pub(crate) const INSERT_EVENT: &str = "INSERT INTO events \
    (message_id, type, name, user_id, anonymous_id, timestamp, received_at, touchpoint, channel, source, message) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (message_id) DO NOTHING";

/// [`INSERT_EVENT`] at a given position, `?12`.
const INSERT_EVENT_AT: &str = "INSERT INTO events \
    (message_id, type, name, user_id, anonymous_id, timestamp, received_at, touchpoint, channel, source, message, seq) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (message_id) DO NOTHING";

/// Inserts one event unless its `messageId` is already in the log.
pub(crate) fn insert_event(tx: &Transaction<'_>, row: &EventRow) -> rusqlite::Result<Appended> {
    insert(tx, row, None)
}

/// Inserts one event at log position `seq` unless its `messageId` is already in the log:
/// after the newest events were erased, SQLite would give their positions again.
pub(crate) fn insert_event_at(
    tx: &Transaction<'_>,
    row: &EventRow,
    seq: i64,
) -> rusqlite::Result<Appended> {
    insert(tx, row, Some(seq))
}

fn insert(tx: &Transaction<'_>, row: &EventRow, seq: Option<i64>) -> rusqlite::Result<Appended> {
    let columns: [&dyn ToSql; 12] = [
        &row.message_id,
        &row.event_type,
        &row.name,
        &row.user_id,
        &row.anonymous_id,
        &row.timestamp,
        &row.received_at,
        &row.touchpoint,
        &row.channel,
        &row.source,
        &row.message,
        &seq,
    ];
    let changed = match seq {
        None => tx.prepare_cached(INSERT_EVENT)?.execute(&columns[..11])?,
        Some(_) => tx.prepare_cached(INSERT_EVENT_AT)?.execute(&columns[..])?,
    };
    Ok(if changed == 1 {
        Appended::Stored {
            seq: tx.last_insert_rowid(),
        }
    } else {
        Appended::Duplicate
    })
}

/// Inserts one quarantine entry and returns its id.
pub(crate) fn insert_quarantine(
    tx: &Transaction<'_>,
    entry: &NewQuarantineEntry,
) -> rusqlite::Result<i64> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO quarantine (received_at, source, code, reason, message_id, payload, origin) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    stmt.execute(params![
        micros(entry.received_at),
        entry.source,
        entry.code,
        entry.reason,
        entry.message_id,
        entry.payload,
        entry.origin.to_string(),
    ])?;
    Ok(tx.last_insert_rowid())
}

pub(crate) const EVENT_COLUMNS: &str = "seq, message_id, type, name, user_id, anonymous_id, \
    timestamp, received_at, touchpoint, channel, source, message";

/// A value stored as its text, from column `index`: text that spells none is an error
/// (naming `what` it should have been), never a panic.
fn spelled_at<T>(
    row: &Row<'_>,
    index: usize,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown {what} {text:?}").into(),
        )
    })
}

/// A decision's outcome, from column `index`.
pub(crate) fn outcome_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Outcome> {
    spelled_at(row, index, Outcome::parse, "decision outcome")
}

/// An outbox entry's status, from column `index`.
pub(crate) fn outbox_status_at(row: &Row<'_>, index: usize) -> rusqlite::Result<OutboxStatus> {
    spelled_at(row, index, OutboxStatus::parse, "outbox status")
}

/// A journey run's status, from column `index`.
pub(crate) fn run_status_at(row: &Row<'_>, index: usize) -> rusqlite::Result<RunStatus> {
    spelled_at(row, index, RunStatus::parse, "journey run status")
}

/// A profile id, from column `index`: stored as its text (`p-42`), so a value that is
/// not one is an error, never a panic.
pub(crate) fn profile_id_at(row: &Row<'_>, index: usize) -> rusqlite::Result<ProfileId> {
    let text: String = row.get(index)?;
    text.parse().map_err(|()| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("{text:?} is not a profile id").into(),
        )
    })
}

/// Reads a row selected with [`EVENT_COLUMNS`].
pub(crate) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, Event)> {
    let event_type: String = row.get(2)?;
    let message: String = row.get(11)?;
    let corrupt = |what: String| {
        rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Text, what.into())
    };
    let message: Map<String, Value> =
        serde_json::from_str(&message).map_err(|e| corrupt(format!("message JSON: {e}")))?;
    let event = Event {
        message_id: row.get(1)?,
        event_type: event_type
            .parse::<EventType>()
            .map_err(|e| corrupt(e.to_string()))?,
        name: row.get(3)?,
        user_id: row.get(4)?,
        anonymous_id: row.get(5)?,
        timestamp: from_micros(row.get(6)?),
        received_at: from_micros(row.get(7)?),
        touchpoint: row.get(8)?,
        channel: row.get(9)?,
        source: row.get(10)?,
        message,
    };
    Ok((row.get(0)?, event))
}

pub(crate) const QUARANTINE_COLUMNS: &str = "id, received_at, source, code, reason, message_id, \
    payload, origin, status, replayed_at, replayed_seq";

/// Reads a row selected with [`QUARANTINE_COLUMNS`].
pub(crate) fn quarantine_from_row(row: &Row<'_>) -> rusqlite::Result<QuarantineEntry> {
    let origin: String = row.get(7)?;
    let status: String = row.get(8)?;
    Ok(QuarantineEntry {
        id: row.get(0)?,
        received_at: from_micros(row.get(1)?),
        source: row.get(2)?,
        code: row.get(3)?,
        reason: row.get(4)?,
        message_id: row.get(5)?,
        payload: row.get(6)?,
        origin: serde_json::from_str(&origin).unwrap_or(Value::String(origin)),
        status: if status == "replayed" {
            QuarantineStatus::Replayed
        } else {
            QuarantineStatus::Pending
        },
        replayed_at: row.get::<_, Option<i64>>(9)?.map(from_micros),
        replayed_seq: row.get(10)?,
    })
}

/// A timestamp as microseconds since the Unix epoch.
pub(crate) fn micros(ts: Timestamp) -> i64 {
    ts.as_microsecond()
}

/// The inverse of [`micros`].
pub(crate) fn from_micros(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}
