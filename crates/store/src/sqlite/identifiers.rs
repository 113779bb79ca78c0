//! The index of events by `userId` and `anonymousId`, kept a little behind the log.
//!
//! Indexing each commit's rows at once touches one page of each index per row, since
//! the keys are scattered; at the small commits of a server with few clients that
//! costs more than writing the rows themselves. So the writer indexes the log in
//! chunks, each in its own transaction: when a chunk's worth of events is unindexed,
//! and when it has been idle for a moment. A query reads the index for the events it
//! covers and scans the short unindexed tail, in one statement (one snapshot), so it
//! sees every committed event exactly once.

use rusqlite::{Connection, Transaction};

/// `event_identifiers.kind` of a `userId`.
const USER_ID: i64 = 0;
/// `event_identifiers.kind` of an `anonymousId`.
const ANONYMOUS_ID: i64 = 1;

/// Where the index has got to: every event up to this `seq` is indexed.
pub(crate) fn indexed_through(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT through FROM index_progress WHERE name = 'event_identifiers'",
        [],
        |r| r.get(0),
    )
}

/// Indexes every event after `from` within `tx`; returns the new position.
pub(crate) fn index_after(tx: &Transaction<'_>, from: i64) -> rusqlite::Result<i64> {
    let through: i64 = tx.query_row(
        "SELECT coalesce(max(seq), ?1) FROM events WHERE seq > ?1",
        [from],
        |r| r.get(0),
    )?;
    if through == from {
        return Ok(from);
    }
    for (kind, column) in [(USER_ID, "user_id"), (ANONYMOUS_ID, "anonymous_id")] {
        let mut statement = tx.prepare_cached(&format!(
            "INSERT INTO event_identifiers (kind, value, seq) \
             SELECT ?1, {column}, seq FROM events \
             WHERE seq > ?2 AND seq <= ?3 AND {column} IS NOT NULL"
        ))?;
        statement.execute((kind, from, through))?;
    }
    tx.execute(
        "UPDATE index_progress SET through = ?1 WHERE name = 'event_identifiers'",
        [through],
    )?;
    Ok(through)
}

/// Removes erased events from the index, each by its key: the event's `seq` and its
/// identifiers (the table is keyed by identifier, so a `seq` alone would scan it).
pub(crate) fn unindex(
    tx: &Transaction<'_>,
    seq: i64,
    user_id: Option<&str>,
    anonymous_id: Option<&str>,
) -> rusqlite::Result<()> {
    let mut delete = tx.prepare_cached(
        "DELETE FROM event_identifiers WHERE kind = ?1 AND value = ?2 AND seq = ?3",
    )?;
    for (kind, value) in [(USER_ID, user_id), (ANONYMOUS_ID, anonymous_id)] {
        if let Some(value) = value {
            delete.execute((kind, value, seq))?;
        }
    }
    Ok(())
}

/// Indexes every event after `from` within `tx`, and counts positions up to the highest
/// ever given as indexed when their events were erased (none will come there, and the
/// writer would otherwise wait for them forever); returns the new position.
fn index_through_erased(tx: &Transaction<'_>, from: i64) -> rusqlite::Result<i64> {
    let through = index_after(tx, from)?;
    match super::erasure::erased_top(tx)? {
        Some(top) if top > through => {
            tx.execute(
                "UPDATE index_progress SET through = ?1 WHERE name = 'event_identifiers'",
                [top],
            )?;
            Ok(top)
        }
        _ => Ok(through),
    }
}

/// The writer's view of the index: how far it has got and when to catch up.
pub(crate) struct IdentifierIndex {
    through: i64,
    chunk: i64,
    failing: super::integrity::Repeating,
}

impl IdentifierIndex {
    /// Reads the index's position; it catches up once `chunk` events are unindexed.
    pub(crate) fn load(conn: &Connection, chunk: usize) -> rusqlite::Result<Self> {
        Ok(IdentifierIndex {
            through: indexed_through(conn)?,
            chunk: i64::try_from(chunk.max(1)).unwrap_or(i64::MAX),
            failing: super::integrity::Repeating::new("indexing events by identifier"),
        })
    }

    /// Whether events up to `last_seq` leave anything unindexed.
    pub(crate) fn is_behind(&self, last_seq: i64) -> bool {
        last_seq > self.through
    }

    /// Whether a whole chunk is unindexed.
    pub(crate) fn is_due(&self, last_seq: i64) -> bool {
        last_seq - self.through >= self.chunk
    }

    /// Indexes every unindexed event in one transaction and says how many there were.
    /// A failure leaves them unindexed (queries still find them in the tail) and is
    /// retried next time.
    pub(crate) fn catch_up(&mut self, conn: &mut Connection) -> usize {
        // Immediate: it reads before it writes, and a checkpoint may hold the lock.
        let indexed = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .and_then(|tx| {
                let through = index_through_erased(&tx, self.through)?;
                tx.commit()?;
                Ok(through)
            });
        match indexed {
            Ok(through) => {
                self.failing.succeeded();
                let indexed = through - self.through;
                self.through = through;
                usize::try_from(indexed).unwrap_or(0)
            }
            Err(e) => {
                self.failing.failed(&e);
                0
            }
        }
    }
}

/// The statement that pages through the events of one identifier, oldest first:
/// `?1` the identifier, `?2` the page's cursor (events after it), `?3` the other
/// identifier when both are given, and at most `limit` rows.
pub(crate) fn events_of_identifier_sql(by_user_id: bool, both: bool, limit: usize) -> String {
    let (kind, column, other) = if by_user_id {
        (USER_ID, "user_id", "anonymous_id")
    } else {
        (ANONYMOUS_ID, "anonymous_id", "user_id")
    };
    let columns = super::rows::EVENT_COLUMNS;
    let joined: Vec<String> = columns
        .split(", ")
        .map(|column| match column {
            "seq" => "i.seq AS seq".to_string(),
            column => format!("e.{column}"),
        })
        .collect();
    let joined = joined.join(", ");
    let also = if both {
        format!(" AND {other} = ?3")
    } else {
        String::new()
    };
    format!(
        "SELECT {columns} FROM (\
           SELECT {joined} FROM event_identifiers i JOIN events e ON e.seq = i.seq \
            WHERE i.kind = {kind} AND i.value = ?1 AND i.seq > ?2 \
           UNION ALL \
           SELECT {columns} FROM events \
            WHERE seq > max(?2, (SELECT through FROM index_progress \
                                 WHERE name = 'event_identifiers')) \
              AND {column} = ?1\
         ) WHERE 1{also} ORDER BY seq LIMIT {limit}"
    )
}
