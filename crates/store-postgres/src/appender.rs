//! The appender: group commit of appends, in log order across every node.
//!
//! One task per node owns a connection for appends. It takes whatever appends have
//! queued up, and in one transaction locks the log's head row, gives the new events
//! the next positions, writes them with `COPY`, commits, and only then answers each
//! request. The head row's lock is what orders the nodes' commits: PostgreSQL makes a
//! commit visible before it releases the transaction's locks, so the next group (of
//! this node or another) takes its positions only after the previous group's events
//! are visible to every reader.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Transaction};
use unavoce_core::redact::Redacted;
use unavoce_store::{
    AppendOutcome, Appended, CommitInfo, CommitKind, CommitObserver, EventRow, NewQuarantineEntry,
    Settlement, StoreError,
};

use crate::rows::{db, micros};

/// A request to the appender.
pub(crate) enum AppendJob {
    Append {
        events: Vec<EventRow>,
        quarantine: Vec<NewQuarantineEntry>,
        /// Outbox settlements made durable with these events.
        settlements: Vec<Settlement>,
        reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    },
    /// A quarantined message's fixed form appended, and the entry marked replayed.
    Replay {
        id: i64,
        event: EventRow,
        at: Timestamp,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
}

impl AppendJob {
    fn rows(&self) -> usize {
        match self {
            AppendJob::Append {
                events,
                quarantine,
                settlements,
                ..
            } => events.len() + quarantine.len() + settlements.len(),
            AppendJob::Replay { .. } => 1,
        }
    }

    fn fail(self, error: StoreError) {
        match self {
            AppendJob::Append { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            AppendJob::Replay { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// What the appender task owns.
pub(crate) struct Appender {
    /// How to connect again when the connection is lost.
    pub config: tokio_postgres::Config,
    pub client: Client,
    /// The connection's own task: when it ends, the connection is gone.
    pub connection: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    pub max_rows_per_commit: usize,
    /// Tells readers the last committed position (of any node).
    pub committed: Arc<watch::Sender<i64>>,
    /// The last position this node committed.
    pub appended: watch::Sender<i64>,
    pub observer: Option<CommitObserver>,
}

impl Appender {
    /// Connects again after the connection was lost.
    async fn reconnect(&mut self) -> Result<(), StoreError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(db)?;
        self.client = client;
        self.connection = tokio::spawn(connection);
        tracing::warn!("the appender's PostgreSQL connection was lost; it connected again");
        Ok(())
    }
}

/// Runs until every sender is gone and the queue is empty.
pub(crate) async fn run(
    mut appender: Appender,
    mut jobs: mpsc::Receiver<AppendJob>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(first) = jobs.recv().await {
        queued.fetch_sub(1, Ordering::AcqRel);
        let mut rows = first.rows();
        let mut group = vec![first];
        while rows < appender.max_rows_per_commit {
            let Ok(job) = jobs.try_recv() else { break };
            queued.fetch_sub(1, Ordering::AcqRel);
            rows += job.rows();
            group.push(job);
        }
        if appender.connection.is_finished()
            && let Err(e) = appender.reconnect().await
        {
            tracing::error!(error = %Redacted(&e), "the appender's PostgreSQL connection is gone and cannot be made again; these appends fail");
            for job in group {
                job.fail(e.clone());
            }
            continue;
        }
        let started = Instant::now();
        let committed = async {
            let tx = appender.client.transaction().await.map_err(db)?;
            let head = lock_head(&tx).await?;
            // What queued while this node waited for the head (other nodes committing)
            // joins this commit: the busier the cluster, the larger each commit.
            while rows < appender.max_rows_per_commit {
                let Ok(job) = jobs.try_recv() else { break };
                queued.fetch_sub(1, Ordering::AcqRel);
                rows += job.rows();
                group.push(job);
            }
            write(tx, head, &group).await
        }
        .await;
        // Observed before anyone is answered: whoever sees an append acknowledged sees
        // its commit counted.
        if let Some(observe) = &appender.observer {
            observe(CommitInfo {
                duration: started.elapsed(),
                requests: group.len(),
                rows,
                kind: CommitKind::Group,
            });
        }
        match committed {
            Ok(committed) => {
                if committed.last_seq > *appender.appended.borrow() {
                    appender.appended.send_replace(committed.last_seq);
                }
                advance(&appender.committed, committed.last_seq);
                for (job, result) in group.into_iter().zip(committed.results) {
                    match (job, result) {
                        (AppendJob::Append { reply, .. }, Answer::Appended(outcome)) => {
                            let _ = reply.send(Ok(outcome));
                        }
                        (AppendJob::Replay { reply, .. }, Answer::Replayed(result)) => {
                            let _ = reply.send(result);
                        }
                        (job, _) => job.fail(StoreError::Storage(
                            "the appender answered out of turn".into(),
                        )),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %Redacted(&e), "append commit failed; nothing in this group was acknowledged");
                for job in group {
                    job.fail(e.clone());
                }
            }
        }
    }
}

/// Moves `watch` to `seq` unless it is already there or past it.
pub(crate) fn advance(watch: &watch::Sender<i64>, seq: i64) {
    watch.send_if_modified(|at| {
        let moved = seq > *at;
        if moved {
            *at = seq;
        }
        moved
    });
}

enum Answer {
    Appended(AppendOutcome),
    Replayed(Result<Appended, StoreError>),
}

struct Committed {
    results: Vec<Answer>,
    last_seq: i64,
}

/// The events a group stores, and what it counts.
#[derive(Default)]
struct Positions<'a> {
    next_seq: i64,
    rows: Vec<(i64, &'a EventRow)>,
    /// Message ids stored before this group.
    existing: HashSet<String>,
    /// Message ids this group stores, at their positions.
    stored: HashMap<&'a str, i64>,
    duplicates: i64,
}

impl<'a> Positions<'a> {
    fn place(&mut self, row: &'a EventRow) -> Appended {
        if self.existing.contains(&row.message_id) || self.stored.contains_key(&*row.message_id) {
            self.duplicates += 1;
            return Appended::Duplicate;
        }
        self.next_seq += 1;
        self.stored.insert(&row.message_id, self.next_seq);
        self.rows.push((self.next_seq, row));
        Appended::Stored { seq: self.next_seq }
    }
}

/// Locks the log's head row for this transaction; the highest position given so far.
async fn lock_head(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    Ok(tx
        .query_one("SELECT seq FROM log_head WHERE id = 1 FOR UPDATE", &[])
        .await
        .map_err(db)?
        .get(0))
}

/// Writes `group` after position `head` in `tx`, which holds the head's lock, and
/// commits.
async fn write(
    tx: Transaction<'_>,
    head: i64,
    group: &[AppendJob],
) -> Result<Committed, StoreError> {
    let ids: Vec<&str> = group
        .iter()
        .flat_map(|job| match job {
            AppendJob::Append { events, .. } => events.iter().collect::<Vec<_>>(),
            AppendJob::Replay { event, .. } => vec![event],
        })
        .map(|row| row.message_id.as_str())
        .collect();
    let mut positions = Positions {
        next_seq: head,
        ..Positions::default()
    };
    if !ids.is_empty() {
        for row in tx
            .query(
                "SELECT message_id FROM events WHERE message_id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(db)?
        {
            positions.existing.insert(row.get(0));
        }
    }
    let mut results = Vec::with_capacity(group.len());
    let mut quarantined = 0i64;
    let mut replayed = 0i64;
    for job in group {
        match job {
            AppendJob::Append {
                events,
                quarantine,
                settlements,
                ..
            } => {
                crate::outbox::settle(&tx, settlements).await?;
                let mut outcome = AppendOutcome {
                    events: events.iter().map(|row| positions.place(row)).collect(),
                    quarantine_ids: Vec::with_capacity(quarantine.len()),
                };
                for entry in quarantine {
                    outcome
                        .quarantine_ids
                        .push(insert_quarantine(&tx, entry).await?);
                }
                quarantined += quarantine.len() as i64;
                results.push(Answer::Appended(outcome));
            }
            AppendJob::Replay { id, event, at, .. } => {
                let found = tx
                    .query_opt(
                        "SELECT status, replayed_seq FROM quarantine WHERE id = $1 FOR UPDATE",
                        &[id],
                    )
                    .await
                    .map_err(db)?;
                let refusal = match found {
                    None => Some(StoreError::QuarantineEntryNotFound(*id)),
                    Some(row) if row.get::<_, String>(0) == "replayed" => {
                        Some(StoreError::AlreadyReplayed {
                            id: *id,
                            seq: row.get::<_, Option<i64>>(1).unwrap_or(0),
                        })
                    }
                    Some(_) => None,
                };
                if let Some(refusal) = refusal {
                    results.push(Answer::Replayed(Err(refusal)));
                    continue;
                }
                let appended = positions.place(event);
                let seq = match appended {
                    Appended::Stored { seq } => Some(seq),
                    Appended::Duplicate => match positions.stored.get(&*event.message_id) {
                        Some(seq) => Some(*seq),
                        None => tx
                            .query_opt(
                                "SELECT seq FROM events WHERE message_id = $1",
                                &[&event.message_id],
                            )
                            .await
                            .map_err(db)?
                            .map(|row| row.get(0)),
                    },
                };
                tx.execute(
                    "UPDATE quarantine SET status = 'replayed', replayed_at = $2, replayed_seq = $3 \
                     WHERE id = $1",
                    &[id, &micros(*at), &seq],
                )
                .await
                .map_err(db)?;
                replayed += 1;
                results.push(Answer::Replayed(Ok(appended)));
            }
        }
    }
    copy_events(&tx, &positions.rows).await?;
    let stored = positions.rows.len() as i64;
    tx.execute(
        "UPDATE counters SET value = value + CASE name \
           WHEN 'events' THEN $1::bigint WHEN 'duplicates' THEN $2::bigint \
           WHEN 'quarantined' THEN $3::bigint WHEN 'quarantined_total' THEN $4::bigint END \
         WHERE name IN ('events', 'duplicates', 'quarantined', 'quarantined_total')",
        &[
            &stored,
            &positions.duplicates,
            &(quarantined - replayed),
            &quarantined,
        ],
    )
    .await
    .map_err(db)?;
    if positions.next_seq > head {
        tx.execute(
            "UPDATE log_head SET seq = $1 WHERE id = 1",
            &[&positions.next_seq],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(Committed {
        results,
        last_seq: positions.next_seq,
    })
}

/// PostgreSQL's own bulk insert, the baseline of the cluster benchmark: `rows` copied
/// into the `events` table of the (empty, migrated) database at `url` from one
/// connection, `per_transaction` rows per transaction, each taking its positions as the
/// appender does (the head locked, then moved past them), with no queue, no parsing
/// and no HTTP.
pub async fn bulk_insert_baseline(
    url: &str,
    rows: &[EventRow],
    per_transaction: usize,
) -> Result<(), StoreError> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(db)?;
    let connection = tokio::spawn(connection);
    for chunk in rows.chunks(per_transaction.max(1)) {
        let tx = client.transaction().await.map_err(db)?;
        let head = lock_head(&tx).await?;
        let placed: Vec<(i64, &EventRow)> = (head + 1..).zip(chunk).collect();
        copy_events(&tx, &placed).await?;
        let moved = head + chunk.len() as i64;
        tx.execute("UPDATE log_head SET seq = $1 WHERE id = 1", &[&moved])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
    }
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// Writes events at their positions with a binary `COPY`.
async fn copy_events(tx: &Transaction<'_>, rows: &[(i64, &EventRow)]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sink = tx
        .copy_in(
            "COPY events (seq, message_id, type, name, user_id, anonymous_id, timestamp, \
             received_at, touchpoint, channel, source, message) FROM STDIN (FORMAT binary)",
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
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for (seq, row) in rows {
        let event_type = row.event_type;
        let columns: [&(dyn ToSql + Sync); 12] = [
            seq,
            &row.message_id,
            &event_type,
            &row.name,
            &row.user_id,
            &row.anonymous_id,
            &row.timestamp,
            &row.received_at,
            &row.touchpoint,
            &row.channel,
            &row.source,
            &row.message,
        ];
        writer.as_mut().write(&columns).await.map_err(db)?;
    }
    writer.finish().await.map_err(db)?;
    Ok(())
}

/// Inserts one quarantine entry and returns its id.
async fn insert_quarantine(
    tx: &Transaction<'_>,
    entry: &NewQuarantineEntry,
) -> Result<i64, StoreError> {
    let row = tx
        .query_one(
            "INSERT INTO quarantine (received_at, source, code, reason, message_id, payload, origin) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &micros(entry.received_at),
                &entry.source,
                &entry.code,
                &entry.reason,
                &entry.message_id,
                &entry.payload.as_bytes(),
                &entry.origin.to_string(),
            ],
        )
        .await
        .map_err(db)?;
    Ok(row.get(0))
}
