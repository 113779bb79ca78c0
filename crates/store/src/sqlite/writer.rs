//! The single writer thread: group commit.
//!
//! Every write request is queued to one thread that owns the write connection. It
//! takes whatever has queued up, writes it all in one transaction, commits, and only
//! then answers each request. Many concurrent requests share one commit (and one
//! fsync), which is what makes durable acknowledgement cheap.
//!
//! Requests come in two queues ([`lanes`]): appends of events, bounded by the queue's
//! capacity (a full one answers `Overloaded`: back-pressure on whoever sends data), and
//! every other request (audit entries, decisions, journey runs, settings, outbox work,
//! erasures), which the writer takes first. Under an ingestion overload, reading a
//! person's data (audited), a broadcast and the outbox keep working.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select_biased};

use crate::commits::{CommitInfo, CommitKind, CommitObserver};
use unavoce_core::redact::Redacted;

use jiff::Timestamp;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::identifiers::IdentifierIndex;
use super::rows::{EventRow, insert_event, insert_event_at, insert_quarantine, micros};
use crate::decisions::NewDecision;
use crate::erasure::{Erasure, ErasureReceipt, Expiring, ExpiryReceipt};
use crate::governance::ApiKey;
use crate::journeys::JourneyRun;
use crate::log::{AppendOutcome, Appended, NewQuarantineEntry, StoreError};
use crate::outbox::{EarlyReport, OutboxEntry, Settlement};
use unavoce_core::audit::AuditEntry;

pub(crate) enum Op {
    PutSetting {
        name: String,
        value: String,
    },
    /// A setting stored unless there is one; the one stored.
    SettingOrInsert {
        name: String,
        value: String,
    },
    Append {
        events: Vec<EventRow>,
        quarantine: Vec<NewQuarantineEntry>,
        /// Outbox settlements made durable with these events.
        settlements: Vec<Settlement>,
    },
    Replay {
        id: i64,
        event: EventRow,
        at: Timestamp,
    },
    /// Decisions, and a setting stored with them (a reader's cursor).
    Decide(Vec<NewDecision>, Option<(String, String)>),
    SaveRuns(Vec<JourneyRun>, Vec<NewDecision>),
    Claim {
        channel: String,
        now: Timestamp,
        limit: usize,
    },
    Settle(Vec<Settlement>),
    ResumeInFlight(String),
    Requeue {
        id: i64,
        at: Timestamp,
    },
    Park(EarlyReport),
    TakeEarly(Vec<String>),
    PutKey {
        key: ApiKey,
        replace: bool,
    },
    RevokeKey(String),
    EndSession {
        signature: String,
        expires: Timestamp,
        now: Timestamp,
    },
    TouchKey {
        name: String,
        at: Timestamp,
    },
    Audit(Vec<AuditEntry>),
    /// A person's erasure: committed alone, then the WAL is truncated.
    Erase(Erasure),
    /// Expired data (retention): committed alone, the WAL left to the checkpointer.
    Expire(Expiring),
    LiftSuppression(String),
}

pub(crate) enum Done {
    SettingStored,
    /// The setting as stored (JSON text).
    Setting(String),
    Appended(AppendOutcome),
    Replayed(Appended),
    Decided(Vec<i64>),
    RunsSaved,
    Claimed(Vec<OutboxEntry>),
    Settled,
    Resumed(u64),
    Requeued(bool),
    Parked,
    TakenEarly(Vec<EarlyReport>),
    KeyPut(bool),
    KeyRevoked(bool),
    SessionEnded,
    KeyTouched,
    Audited,
    Erased(ErasureReceipt),
    Expired(ExpiryReceipt),
    SuppressionLifted(bool),
}

pub(crate) struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Done, StoreError>>,
}

impl Op {
    /// Whether it may store events.
    fn stores_events(&self) -> bool {
        matches!(self, Op::Append { events, .. } if !events.is_empty())
            || matches!(self, Op::Replay { .. })
    }
}

impl Job {
    fn rows(&self) -> usize {
        match &self.op {
            Op::Append {
                events,
                quarantine,
                settlements,
            } => events.len() + quarantine.len() + settlements.len(),
            Op::Decide(decisions, _) => decisions.len(),
            Op::SaveRuns(runs, decisions) => runs.len() + decisions.len(),
            Op::Claim { limit, .. } => *limit,
            Op::Settle(settlements) => settlements.len(),
            Op::TakeEarly(ids) => ids.len(),
            Op::Audit(entries) => entries.len(),
            Op::Erase(erasure) => erasure.seqs.len(),
            Op::Expire(expiring) => (expiring.removed.len() + expiring.stripped.len()).max(1),
            Op::Replay { .. }
            | Op::PutSetting { .. }
            | Op::SettingOrInsert { .. }
            | Op::ResumeInFlight(_)
            | Op::Requeue { .. }
            | Op::Park(_)
            | Op::PutKey { .. }
            | Op::RevokeKey(_)
            | Op::EndSession { .. }
            | Op::TouchKey { .. }
            | Op::LiftSuppression(_) => 1,
        }
    }
}

#[derive(Default)]
struct Tally {
    /// Where the next event goes when SQLite would give an erased position again.
    next_seq: Option<i64>,
    last_seq: i64,
    events: i64,
    duplicates: i64,
    quarantined: i64,
    quarantined_total: i64,
}

/// What the writer thread owns.
pub(crate) struct Writer {
    pub conn: Connection,
    /// The database file, named in errors.
    pub path: std::path::PathBuf,
    /// Rows gathered into one commit at most.
    pub max_rows_per_commit: usize,
    pub observer: Option<CommitObserver>,
    /// Tells readers the last committed `seq`.
    pub committed: tokio::sync::watch::Sender<i64>,
    pub index: IdentifierIndex,
    /// Asks the checkpoint thread to empty the WAL after an erasure; without one, the
    /// writer does it.
    pub truncation: Option<super::checkpoint::Truncation>,
    /// Makes the WAL start over between commits once it is large.
    pub wal_limit: super::checkpoint::WalLimit,
    /// Where the check of every page at open is told (see [`SqliteLog::checked`]).
    ///
    /// [`SqliteLog::checked`]: super::SqliteLog::checked
    pub checked: tokio::sync::watch::Sender<super::integrity::Verdict>,
}

impl Writer {
    fn catch_up_index(&mut self) {
        let started = Instant::now();
        let indexed = self.index.catch_up(&mut self.conn);
        if let Some(observe) = &self.observer
            && indexed > 0
        {
            observe(CommitInfo {
                duration: started.elapsed(),
                requests: 0,
                rows: indexed,
                kind: CommitKind::Index,
            });
        }
    }
}

/// How long the writer waits for work before it indexes what is unindexed.
const INDEX_WHEN_IDLE_FOR: Duration = Duration::from_millis(100);

/// Why the writer's queue gave no request.
enum NoJob {
    /// Nothing for a while: time to index.
    Idle,
    Closed,
}

/// The answer a request waits for.
type Reply = oneshot::Sender<Result<Done, StoreError>>;

/// Requests the writer takes before appends: at most this many wait at once.
const OTHER_REQUESTS_CAPACITY: usize = 4_096;

/// The writer's two queues, as its callers hold them.
pub(crate) struct Senders {
    appends: Sender<Job>,
    others: Sender<Job>,
}

/// The writer's two queues, as the writer holds them.
pub(crate) struct Receivers {
    appends: Receiver<Job>,
    others: Receiver<Job>,
}

/// The writer's queues: appends of events up to `capacity`, other requests beside them.
pub(crate) fn lanes(capacity: usize) -> (Senders, Receivers) {
    let (appends, appends_rx) = bounded(capacity.max(1));
    let (others, others_rx) = bounded(OTHER_REQUESTS_CAPACITY);
    (
        Senders { appends, others },
        Receivers {
            appends: appends_rx,
            others: others_rx,
        },
    )
}

impl Senders {
    /// Queues a request; `Overloaded` when its queue is full.
    pub(crate) fn send(&self, job: Job) -> Result<(), StoreError> {
        let lane = match &job.op {
            Op::Append { settlements, .. } if settlements.is_empty() => &self.appends,
            Op::Replay { .. } => &self.appends,
            _ => &self.others,
        };
        lane.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::Overloaded,
            TrySendError::Disconnected(_) => StoreError::Closed,
        })
    }

    /// Appends waiting for the writer.
    pub(crate) fn appends_queued(&self) -> usize {
        self.appends.len()
    }
}

impl Receivers {
    /// The next request, other requests first; `Idle` after `wait` without one.
    fn next(&self, wait: Option<Duration>) -> Result<Job, NoJob> {
        if let Some(job) = self.try_next() {
            return Ok(job);
        }
        let received = match wait {
            Some(wait) => select_biased! {
                recv(self.others) -> job => job,
                recv(self.appends) -> job => job,
                default(wait) => return Err(NoJob::Idle),
            },
            None => select_biased! {
                recv(self.others) -> job => job,
                recv(self.appends) -> job => job,
            },
        };
        // Closed: both queues are dropped together; answer what is left in either.
        received.or_else(|_| self.try_next().ok_or(NoJob::Closed))
    }

    /// A request waiting now, other requests first.
    fn try_next(&self) -> Option<Job> {
        self.others
            .try_recv()
            .or_else(|_| self.appends.try_recv())
            .ok()
    }
}

impl Writer {
    /// The next request, waiting at most a moment while there is something to index.
    fn next_job(&self, jobs: &Receivers) -> Result<Job, NoJob> {
        let behind = self.index.is_behind(*self.committed.borrow());
        jobs.next(behind.then_some(INDEX_WHEN_IDLE_FOR))
    }

    /// Runs an erasure in a transaction of its own and has the WAL truncated after it.
    fn erase(&mut self, erasure: &Erasure, reply: Reply) {
        let started = Instant::now();
        let erased = super::erasure::commit(&mut self.conn, erasure);
        if let Some(observe) = &self.observer {
            observe(CommitInfo {
                duration: started.elapsed(),
                requests: 1,
                rows: erased.as_ref().map_or(0, |e| e.rows),
                kind: CommitKind::Group,
            });
        }
        let answer = match erased {
            Ok(erased) => {
                match &self.truncation {
                    Some(truncation) => truncation.ask(),
                    None => {
                        super::erasure::truncate_wal(&self.conn);
                    }
                }
                Ok(Done::Erased(erased.receipt))
            }
            Err(e) => {
                tracing::error!(error = %Redacted(&e), "erasure failed; nothing was removed");
                Err(super::integrity::store_error(&e, &self.path))
            }
        };
        let _ = reply.send(answer);
    }

    /// Removes expired data in a transaction of its own.
    fn expire(&mut self, expiring: &Expiring, reply: Reply) {
        let started = Instant::now();
        let expired = super::erasure::expire(&mut self.conn, expiring);
        if let Some(observe) = &self.observer {
            observe(CommitInfo {
                duration: started.elapsed(),
                requests: 1,
                rows: expired.as_ref().map_or(0, |(_, rows)| *rows),
                kind: CommitKind::Group,
            });
        }
        let answer = expired
            .map(|(receipt, _)| Done::Expired(receipt))
            .map_err(|e| {
                tracing::error!(error = %Redacted(&e), "expiry failed; nothing was removed");
                super::integrity::store_error(&e, &self.path)
            });
        let _ = reply.send(answer);
    }

    /// Runs a job that commits alone (an erasure, an expiry); gives back any other.
    fn run_alone(&mut self, job: Job) -> Option<Job> {
        match job {
            Job {
                op: Op::Erase(erasure),
                reply,
            } => self.erase(&erasure, reply),
            Job {
                op: Op::Expire(expiring),
                reply,
            } => self.expire(&expiring, reply),
            job => return Some(job),
        }
        None
    }
}

/// A group to commit: `first` and whatever has queued up behind it, up to
/// `max_rows`; and an erasure or expiry met on the way, which runs after it, alone.
fn gather(first: Job, jobs: &Receivers, max_rows: usize) -> (Vec<Job>, usize, Option<Job>) {
    let mut rows = first.rows();
    let mut group = vec![first];
    while rows < max_rows {
        let Some(job) = jobs.try_next() else { break };
        if matches!(job.op, Op::Erase(_) | Op::Expire(_)) {
            return (group, rows, Some(job));
        }
        rows += job.rows();
        group.push(job);
    }
    (group, rows, None)
}

/// Checks every page before the first commit; a damaged store refuses every write.
fn check(writer: &Writer, jobs: &Receivers) -> bool {
    if writer.checked.borrow().is_some() {
        return true;
    }
    use super::integrity::CheckFailed;
    let started = Instant::now();
    let failed = match super::integrity::check_every_page(&writer.path) {
        Ok(None) => None,
        Ok(Some(why)) => Some(CheckFailed::Damaged(why)),
        Err(e) => Some(CheckFailed::NotRun(e.to_string())),
    };
    let seconds = started.elapsed().as_secs_f64();
    writer
        .checked
        .send_replace(Some(failed.clone().map_or(Ok(()), Err)));
    let path = writer.path.display();
    let refused = match failed {
        None => {
            tracing::info!(seconds, "event log checked: every page is sound");
            return true;
        }
        Some(CheckFailed::Damaged(why)) => {
            tracing::error!(%path, seconds, "the event log is damaged; every write is refused");
            format!("the event log at {path} is damaged: {why}")
        }
        Some(CheckFailed::NotRun(why)) => {
            tracing::error!(%path, seconds, "the event log could not be checked; every write is refused");
            format!("the event log at {path} could not be checked: {why}")
        }
    };
    let refused = StoreError::Storage(refused);
    while let Ok(job) = jobs.next(None) {
        let _ = job.reply.send(Err(refused.clone()));
    }
    false
}

pub(crate) fn run(mut writer: Writer, jobs: Receivers) {
    if !check(&writer, &jobs) {
        return;
    }
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match writer.next_job(&jobs) {
                Ok(job) => job,
                Err(NoJob::Idle) => {
                    writer.catch_up_index();
                    continue;
                }
                Err(NoJob::Closed) => break,
            },
        };
        let Some(first) = writer.run_alone(first) else {
            continue;
        };
        let (group, rows, erasure) = gather(first, &jobs, writer.max_rows_per_commit);
        held = erasure;

        let started = Instant::now();
        let (ops, replies): (Vec<Op>, Vec<_>) = group.into_iter().map(|j| (j.op, j.reply)).unzip();
        let replies_len = replies.len();
        let committed = commit(&mut writer.conn, ops);
        // Observed before anyone is answered: whoever sees an append acknowledged sees
        // its commit counted.
        if let Some(observe) = &writer.observer {
            observe(CommitInfo {
                duration: started.elapsed(),
                requests: replies_len,
                rows,
                kind: CommitKind::Group,
            });
        }
        match committed {
            Ok((results, last_seq)) => {
                if last_seq > *writer.committed.borrow() {
                    writer.committed.send_replace(last_seq);
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %Redacted(&e), "event log commit failed; nothing in this group was acknowledged");
                let error = super::integrity::store_error(&e, &writer.path);
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
        if writer.index.is_due(*writer.committed.borrow()) {
            writer.catch_up_index();
        }
        writer.wal_limit.check(&writer.conn);
    }
    // Leave nothing unindexed at a clean stop.
    if writer.index.is_behind(*writer.committed.borrow()) {
        writer.catch_up_index();
    }
}

/// Writes a group in one transaction. A request that cannot be honoured (replaying a
/// missing entry) gets its own error without failing the others.
fn commit(
    conn: &mut Connection,
    ops: Vec<Op>,
) -> rusqlite::Result<(Vec<Result<Done, StoreError>>, i64)> {
    // Immediate: where the next event goes may be read before the first write.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut tally = Tally::default();
    if ops.iter().any(Op::stores_events) {
        tally.next_seq = super::erasure::erased_top(&tx)?.map(|top| top + 1);
    }
    let mut results = Vec::with_capacity(ops.len());
    for op in &ops {
        results.push(apply(&tx, op, &mut tally)?);
    }
    let mut bump = tx.prepare_cached("UPDATE counters SET value = value + ?2 WHERE name = ?1")?;
    for (name, delta) in [
        ("events", tally.events),
        ("duplicates", tally.duplicates),
        ("quarantined", tally.quarantined),
        ("quarantined_total", tally.quarantined_total),
    ] {
        if delta != 0 {
            bump.execute(params![name, delta])?;
        }
    }
    drop(bump);
    tx.commit()?;
    Ok((results, tally.last_seq))
}

fn apply(
    tx: &Transaction<'_>,
    op: &Op,
    tally: &mut Tally,
) -> rusqlite::Result<Result<Done, StoreError>> {
    match op {
        Op::Append {
            events,
            quarantine,
            settlements,
        } => {
            super::outbox::settle(tx, settlements)?;
            let mut outcome = AppendOutcome {
                events: Vec::with_capacity(events.len()),
                quarantine_ids: Vec::with_capacity(quarantine.len()),
            };
            for row in events {
                outcome.events.push(store_event(tx, row, tally)?);
            }
            for entry in quarantine {
                outcome.quarantine_ids.push(insert_quarantine(tx, entry)?);
            }
            tally.quarantined += quarantine.len() as i64;
            tally.quarantined_total += quarantine.len() as i64;
            Ok(Ok(Done::Appended(outcome)))
        }
        Op::Decide(decisions, setting) => {
            let ids = insert_decisions(tx, decisions)?;
            if let Some((name, value)) = setting {
                put_setting(tx, name, value)?;
            }
            Ok(Ok(Done::Decided(ids)))
        }
        Op::SaveRuns(runs, decisions) => {
            insert_decisions(tx, decisions)?;
            let mut save = tx.prepare_cached(
                "INSERT OR REPLACE INTO journey_runs (key, journey, profile_id, entered_at, \
                 control, status, step, wake_at, waiting_for, blocked, watching, fallbacks, \
                 exit_reason, converted_at, updated_at, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            for r in runs {
                save.execute(params![
                    r.key,
                    r.journey,
                    r.profile_id.to_string(),
                    micros(r.entered_at),
                    r.control,
                    r.status.as_str(),
                    r.step as i64,
                    r.wake_at.map(micros),
                    r.waiting_for,
                    r.blocked,
                    r.watching,
                    serde_json::to_string(&r.fallbacks).unwrap_or_else(|_| "[]".into()),
                    r.exit_reason,
                    r.converted_at.map(micros),
                    micros(r.updated_at),
                    r.version,
                ])?;
            }
            Ok(Ok(Done::RunsSaved))
        }
        Op::Claim {
            channel,
            now,
            limit,
        } => match super::outbox::claim(tx, channel, *now, *limit) {
            Ok(claimed) => Ok(Ok(Done::Claimed(claimed))),
            // A stored value that cannot be read (a profile id that is not one) fails
            // this claim alone, not the group committed with it: the entries are read
            // before any is marked, so the claim changed nothing.
            Err(e @ rusqlite::Error::FromSqlConversionFailure(..)) => {
                Ok(Err(StoreError::Storage(e.to_string())))
            }
            Err(e) => Err(e),
        },
        Op::Settle(settlements) => {
            super::outbox::settle(tx, settlements)?;
            Ok(Ok(Done::Settled))
        }
        Op::ResumeInFlight(channel) => Ok(Ok(Done::Resumed(super::outbox::resume_in_flight(
            tx, channel,
        )?))),
        Op::Requeue { id, at } => Ok(Ok(Done::Requeued(super::outbox::requeue(tx, *id, *at)?))),
        Op::Park(report) => {
            super::outbox::park(tx, report)?;
            Ok(Ok(Done::Parked))
        }
        Op::TakeEarly(ids) => Ok(Ok(Done::TakenEarly(super::outbox::take_early(tx, ids)?))),
        Op::PutKey { key, replace } => Ok(Ok(Done::KeyPut(super::governance::put_key(
            tx, key, *replace,
        )?))),
        Op::RevokeKey(name) => Ok(Ok(Done::KeyRevoked(super::governance::revoke_key(
            tx, name,
        )?))),
        Op::EndSession {
            signature,
            expires,
            now,
        } => {
            super::governance::end_session(tx, signature, *expires, *now)?;
            Ok(Ok(Done::SessionEnded))
        }
        Op::TouchKey { name, at } => {
            super::governance::touch_key(tx, name, *at)?;
            Ok(Ok(Done::KeyTouched))
        }
        Op::Audit(entries) => {
            super::governance::append_audit(tx, entries)?;
            Ok(Ok(Done::Audited))
        }
        Op::PutSetting { name, value } => {
            put_setting(tx, name, value)?;
            Ok(Ok(Done::SettingStored))
        }
        Op::SettingOrInsert { name, value } => {
            tx.prepare_cached(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, value])?;
            let stored: String = tx.query_row(
                "SELECT value FROM settings WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )?;
            Ok(Ok(Done::Setting(stored)))
        }
        Op::LiftSuppression(hash) => {
            Ok(Ok(Done::SuppressionLifted(super::erasure::lift(tx, hash)?)))
        }
        // `run` commits an erasure or an expiry alone; it never reaches a group.
        Op::Erase(_) | Op::Expire(_) => Ok(Err(StoreError::Storage(
            "an erasure or expiry was grouped with other writes".into(),
        ))),
        Op::Replay { id, event, at } => {
            let mut find =
                tx.prepare_cached("SELECT status, replayed_seq FROM quarantine WHERE id = ?1")?;
            let found: Option<(String, Option<i64>)> = find
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
            match found {
                None => return Ok(Err(StoreError::QuarantineEntryNotFound(*id))),
                Some((status, seq)) if status == "replayed" => {
                    return Ok(Err(StoreError::AlreadyReplayed {
                        id: *id,
                        seq: seq.unwrap_or(0),
                    }));
                }
                Some(_) => {}
            }
            let appended = store_event(tx, event, tally)?;
            let seq = match appended {
                Appended::Stored { seq } => Some(seq),
                Appended::Duplicate => tx
                    .query_row(
                        "SELECT seq FROM events WHERE message_id = ?1",
                        params![event.message_id],
                        |r| r.get(0),
                    )
                    .ok(),
            };
            tx.prepare_cached(
                "UPDATE quarantine SET status = 'replayed', replayed_at = ?2, replayed_seq = ?3 WHERE id = ?1",
            )?
            .execute(params![id, micros(*at), seq])?;
            tally.quarantined -= 1;
            Ok(Ok(Done::Replayed(appended)))
        }
    }
}

/// Inserts an event and counts it; the first one after an erasure of the newest events
/// goes after their positions.
fn store_event(
    tx: &Transaction<'_>,
    row: &EventRow,
    tally: &mut Tally,
) -> rusqlite::Result<Appended> {
    let appended = match tally.next_seq {
        Some(seq) => insert_event_at(tx, row, seq)?,
        None => insert_event(tx, row)?,
    };
    match appended {
        Appended::Stored { seq } => {
            tally.next_seq = None;
            tally.events += 1;
            tally.last_seq = tally.last_seq.max(seq);
        }
        Appended::Duplicate => tally.duplicates += 1,
    }
    Ok(appended)
}

fn put_setting(tx: &Transaction<'_>, name: &str, value: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO settings (name, value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![name, value])?;
    Ok(())
}

/// Inserts decisions, and an outbox entry for each one that sends; their ids.
fn insert_decisions(
    tx: &rusqlite::Transaction<'_>,
    decisions: &[NewDecision],
) -> rusqlite::Result<Vec<i64>> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO decisions (profile_id, message, purpose, channel, journey, broadcast, \
         decided_at, outcome, send_at, reasons) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut outbox = tx.prepare_cached(
        "INSERT INTO outbox (decision_id, profile_id, channel, message, send_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut ids = Vec::with_capacity(decisions.len());
    for d in decisions {
        let profile_id = d.profile_id.to_string();
        insert.execute(params![
            profile_id,
            d.message,
            d.purpose,
            d.channel,
            d.journey,
            d.broadcast,
            micros(d.decided_at),
            d.outcome.as_str(),
            d.send_at.map(micros),
            d.reasons.to_string(),
        ])?;
        let id = tx.last_insert_rowid();
        if let Some(send_at) = d.send_at.filter(|_| d.outcome.goes_out()) {
            outbox.execute(params![
                id,
                profile_id,
                d.channel,
                d.message,
                micros(send_at)
            ])?;
        }
        ids.push(id);
    }
    Ok(ids)
}
