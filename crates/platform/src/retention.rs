//! Retention: a background job that removes what the retention rules
//! ([`RetentionRules`]) no longer allow keeping — expired events (all but their identity
//! evidence, see `unavoce_core::retention`), and quarantined messages older than the
//! global rule — in small transactions, then rebuilds the
//! projections from the log as it is now, so reports, profiles and segments agree with a
//! fresh replay of what is left.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::task::JoinHandle;
use unavoce_core::redact::Redacted;
use unavoce_core::retention::{Fate, RetentionRules, RetentionScan};
use unavoce_projections::IdentityProjection;
use unavoce_store::{
    Erasing, EventQuery, Expiring, ExpiryReceipt, QUARANTINE_EXPIRY_CHUNK, StoreError,
    StrippedEvent,
};

/// Events read per page while looking for expired ones.
const PAGE: usize = 5_000;
/// Events removed per transaction.
const BATCH: usize = 1_000;
/// How long after start the first pass runs.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(60);
/// A pass reports its progress every this many events read.
const PROGRESS_EVERY: u64 = 1_000_000;

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPass {
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// The time the events' ages were measured against.
    pub now: Timestamp,
    /// Events read.
    pub scanned: u64,
    /// Expired events removed.
    pub events: u64,
    /// Expired events replaced by their identity evidence.
    pub stripped: u64,
    /// Expired quarantined messages removed.
    pub quarantined: u64,
    /// Whether the projections were rebuilt (when events were removed or stripped).
    pub rebuilt: bool,
}

/// The retention job. See the module docs.
pub struct Retention {
    rules: Arc<RetentionRules>,
    erasing: Arc<dyn Erasing>,
    identity: Arc<IdentityProjection>,
    /// One pass at a time.
    running: tokio::sync::Mutex<()>,
    last: Mutex<Option<RetentionPass>>,
}

impl Retention {
    /// The job over this store and projection, under `rules`.
    pub fn new(
        rules: Arc<RetentionRules>,
        erasing: Arc<dyn Erasing>,
        identity: Arc<IdentityProjection>,
    ) -> Retention {
        Retention {
            rules,
            erasing,
            identity,
            running: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &RetentionRules {
        &self.rules
    }

    /// The last pass since start, if any ran.
    pub fn last_pass(&self) -> Option<RetentionPass> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs one pass, measuring ages against `now`; a pass already running is waited
    /// for first.
    pub async fn run_once(&self, now: Timestamp) -> Result<RetentionPass, StoreError> {
        let _one_at_a_time = self.running.lock().await;
        let mut pass = RetentionPass {
            started_at: Timestamp::now(),
            finished_at: Timestamp::now(),
            now,
            scanned: 0,
            events: 0,
            stripped: 0,
            quarantined: 0,
            rebuilt: false,
        };
        let expired = self.expire_all(now, &mut pass).await;
        // Whatever was committed is rebuilt from, even when the pass stopped half-way.
        if pass.events + pass.stripped > 0 {
            self.identity.rebuild().await?;
            pass.rebuilt = true;
        }
        expired?;
        pass.finished_at = Timestamp::now();
        tracing::info!(
            scanned = pass.scanned,
            events = pass.events,
            stripped = pass.stripped,
            quarantined = pass.quarantined,
            "retention pass done"
        );
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(pass.clone());
        Ok(pass)
    }

    /// Expired events, then expired quarantined messages.
    async fn expire_all(&self, now: Timestamp, pass: &mut RetentionPass) -> Result<(), StoreError> {
        self.expire_events(now, pass).await?;
        let Some(before) = self.rules.quarantine_cutoff(now) else {
            return Ok(());
        };
        loop {
            let removed = self
                .expire(Expiring {
                    quarantined_before: Some(before),
                    ..Default::default()
                })
                .await?;
            pass.quarantined += removed.quarantined;
            if removed.quarantined < QUARANTINE_EXPIRY_CHUNK as u64 {
                return Ok(());
            }
        }
    }

    /// Reads the whole log a page at a time and removes or strips the expired events
    /// (see `unavoce_core::retention`), a batch per transaction.
    async fn expire_events(
        &self,
        now: Timestamp,
        pass: &mut RetentionPass,
    ) -> Result<(), StoreError> {
        let log = self.identity.log();
        let identity_rules = self.identity.rules();
        let scan = RetentionScan::new(&self.rules, &identity_rules, now);
        let mut batch = Expiring::default();
        let mut after = 0;
        loop {
            let page = log
                .events(EventQuery {
                    after_seq: Some(after),
                    limit: PAGE,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.events.last() else {
                break;
            };
            after = last.seq;
            let before = pass.scanned;
            pass.scanned += page.events.len() as u64;
            if pass.scanned / PROGRESS_EVERY != before / PROGRESS_EVERY {
                tracing::info!(
                    scanned = pass.scanned,
                    removed = pass.events,
                    stripped = pass.stripped,
                    "retention pass under way"
                );
            }
            for stored in &page.events {
                match scan.decide(&stored.event) {
                    Fate::Kept => continue,
                    Fate::Removed => batch.removed.push(stored.seq),
                    Fate::Stripped(evidence) => batch.stripped.push(StrippedEvent {
                        seq: stored.seq,
                        event_type: evidence.event_type,
                        message: evidence.message,
                    }),
                }
                if batch.removed.len() + batch.stripped.len() >= BATCH {
                    self.commit(std::mem::take(&mut batch), pass).await?;
                }
            }
            if page.next_cursor.is_none() {
                break;
            }
        }
        self.commit(batch, pass).await
    }

    async fn commit(&self, batch: Expiring, pass: &mut RetentionPass) -> Result<(), StoreError> {
        // Before events change: a snapshot holding them must never be read again, even
        // if the process stops before the rebuild that follows the pass.
        if !batch.removed.is_empty() || !batch.stripped.is_empty() {
            self.identity.discard_snapshots();
        }
        let done = self.expire(batch).await?;
        pass.events += done.events;
        pass.stripped += done.stripped;
        Ok(())
    }

    /// One expiry, waiting for room while the store's queue is full (ingestion first).
    async fn expire(&self, expiring: Expiring) -> Result<ExpiryReceipt, StoreError> {
        let mut wait = Duration::from_millis(50);
        loop {
            match self.erasing.expire(expiring.clone()).await {
                Err(StoreError::Overloaded) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                done => return done,
            }
        }
    }

    /// Runs a pass a minute after start, then at every check (`retention_check_hours`);
    /// nothing when no rule can expire anything.
    pub fn run(self: Arc<Self>) -> JoinHandle<()> {
        tokio::spawn(async move {
            if !self.rules.is_active() {
                return;
            }
            let every = Duration::try_from(self.rules.check_every()).unwrap_or(Duration::MAX);
            let mut wait = FIRST_PASS_AFTER;
            loop {
                tokio::time::sleep(wait).await;
                if let Err(e) = self.run_once(Timestamp::now()).await {
                    tracing::error!(error = %Redacted(&e), "retention pass failed; tried again at the next check");
                }
                wait = every;
            }
        })
    }
}
