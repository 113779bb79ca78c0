//! The lanes: one per channel (and per department webhook, and one for digests), each
//! with its sink, pace and concurrency; how a lane claims due entries by the batch and
//! hands them to its slots, and gives back what it had claimed when it stops.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use unavoce_core::redact::Redacted;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use unavoce_store::{OutboxEntry, Settlement};

use super::Dispatcher;
use super::pace::Pacer;
use crate::config::{ConfigError, DeliveryConfig, Pace};
use crate::providers::Provider;
use crate::{Smtp, Twilio, Webhook, Whatsapp, twilio};

/// Insights in one digest e-mail at most (more wait for the next).
const DIGEST_MAX: usize = 500;

/// How long an idle lane waits before looking for due entries again.
const POLL: Duration = Duration::from_millis(200);

/// What a lane hands its entries to.
pub(super) enum Sink {
    /// Messages to people, through their channel's provider.
    Message(Arc<dyn Provider>),
    /// Insights, posted one by one to a department's webhook.
    Webhook(Arc<Webhook>),
    /// Insights, gathered into one e-mail per period and address.
    Digest(Arc<Smtp>),
}

impl Sink {
    /// What the lane hands to, for logs and the API.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Sink::Message(provider) => provider.kind(),
            Sink::Webhook(_) => "webhook",
            Sink::Digest(_) => "digest",
        }
    }
}

/// How often a node asks for a lane's lease while another node holds it: how soon a
/// lane is taken over when its node dies.
pub const LEASE_RETRY: Duration = Duration::from_secs(1);

/// One channel's provider and its pace.
pub(super) struct Lane {
    /// The channel it carries (the outbox entries it claims).
    pub(super) channel: String,
    /// What it hands them to.
    pub(super) sink: Sink,
    /// Its rate limit, which a provider's "too many requests" pauses.
    pub(super) pacer: Pacer,
    pace: Pace,
    /// Since start: messages accepted, attempts to retry, dead letters.
    pub(super) sent: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) dead: AtomicU64,
}

/// A lane as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LaneInfo {
    /// The channel (`webhook:<name>` for a department's webhook, `digest`).
    pub channel: String,
    /// What carries it (`smtp`, `twilio`, `whatsapp`, `webhook`, `digest`).
    pub provider: &'static str,
    /// Its pace: messages per second at most, and in flight at once.
    pub per_second: f64,
    pub concurrency: usize,
    /// Since start: messages accepted, attempts to retry, dead letters.
    pub sent: u64,
    pub retried: u64,
    pub dead: u64,
}

/// The lanes `config` sets up, by channel; `public_url` is where providers report back.
pub(super) fn build(
    config: &DeliveryConfig,
    public_url: &str,
) -> Result<BTreeMap<String, Arc<Lane>>, ConfigError> {
    let mut sinks: Vec<(String, Sink, Pace)> = Vec::new();
    let mut message = |channel: &str, provider: Arc<dyn Provider>, pace: Pace| {
        sinks.push((channel.to_string(), Sink::Message(provider), pace));
    };
    if let Some(c) = &config.email {
        message("email", Arc::new(Smtp::new(c)?), c.pace);
    }
    if let Some(c) = &config.sms {
        let callback = format!("{public_url}{}", twilio::STATUS_ROUTE);
        message("sms", Arc::new(Twilio::new(c, Some(callback))?), c.pace);
    }
    if let Some(c) = &config.whatsapp {
        message("whatsapp", Arc::new(Whatsapp::new(c)?), c.pace);
    }
    if let Some(c) = &config.push {
        message("push", Arc::new(Webhook::new(c, "delivery.push")?), c.pace);
    }
    if let Some(c) = &config.call_task {
        let webhook = Webhook::new(c, "delivery.call_task")?;
        message("call_task", Arc::new(webhook), c.pace);
    }
    for (name, c) in &config.webhooks {
        let webhook = Webhook::new(c, &format!("delivery.webhooks.{name}"))?;
        sinks.push((
            format!("webhook:{name}"),
            Sink::Webhook(Arc::new(webhook)),
            c.pace,
        ));
    }
    if let Some(email) = &config.email {
        let digest = Sink::Digest(Arc::new(Smtp::new(email)?));
        sinks.push(("digest".into(), digest, Pace::default()));
    }
    Ok(sinks
        .into_iter()
        .map(|(channel, sink, pace)| {
            let lane = Lane {
                channel: channel.clone(),
                sink,
                pacer: Pacer::new(pace.per_second),
                pace: Pace {
                    concurrency: pace.concurrency.max(1),
                    ..pace
                },
                sent: AtomicU64::new(0),
                retried: AtomicU64::new(0),
                dead: AtomicU64::new(0),
            };
            (channel, Arc::new(lane))
        })
        .collect())
}

impl Dispatcher {
    /// The lanes and what they did since start.
    pub fn lanes(&self) -> Vec<LaneInfo> {
        self.lanes
            .get()
            .values()
            .map(|l| LaneInfo {
                channel: l.channel.clone(),
                provider: l.sink.kind(),
                per_second: l.pace.per_second,
                concurrency: l.pace.concurrency,
                sent: l.sent.load(Ordering::Relaxed),
                retried: l.retried.load(Ordering::Relaxed),
                dead: l.dead.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Works `lane` whenever this node holds its lease, until `stop`: asks for the
    /// lease every [`LEASE_RETRY`] while another node holds it; once taken, puts back
    /// in line what was left under way (by a crash, or by the node that held it), and
    /// runs the lane until the lease is lost or `stop` turns true. A lost lease stops
    /// the lane at once — its attempts under way are dropped and what it claimed stays
    /// `sending`, for the next holder to put back in line — so that nothing this node
    /// settles late can undo the new holder's claims.
    pub(super) async fn run_leased_lane(
        self: Arc<Self>,
        lane: Arc<Lane>,
        mut stop: watch::Receiver<bool>,
    ) {
        let work = format!("outbox:{}", lane.channel);
        while !*stop.borrow() {
            let mut lease = match self.platform.leases.try_lease(&work).await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(LEASE_RETRY) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %Redacted(&e), channel = %lane.channel, "the lane's lease could not be asked for; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(LEASE_RETRY) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            };
            match self.platform.outbox.resume_in_flight(&lane.channel).await {
                Ok(0) => {}
                Ok(resumed) => tracing::warn!(
                    resumed,
                    channel = %lane.channel,
                    "outbox entries were being sent when their lane stopped; they are sent again under the same idempotency key"
                ),
                Err(e) => {
                    tracing::warn!(error = %Redacted(&e), channel = %lane.channel, "the lane's interrupted entries could not be put back in line; retrying");
                    drop(lease);
                    tokio::time::sleep(LEASE_RETRY).await;
                    continue;
                }
            }
            let (lane_stop, lane_stopping) = watch::channel(false);
            let running = self.clone().run_lane(lane.clone(), lane_stopping);
            tokio::pin!(running);
            tokio::select! {
                _ = &mut running => {}
                _ = lease.lost() => {
                    tracing::warn!(channel = %lane.channel, "this node lost the lane's lease; it stops sending on it");
                    // Dropping the lane drops its attempts (their join set aborts them).
                }
                _ = async { stop.wait_for(|stopping| *stopping).await.is_ok() } => {
                    lane_stop.send_replace(true);
                    running.await;
                }
            }
        }
    }

    /// Runs one lane until `stop`: claims due entries by the batch, hands each to a
    /// free slot, and gives back what it claimed but did not attempt.
    pub(super) async fn run_lane(
        self: Arc<Self>,
        lane: Arc<Lane>,
        mut stop: watch::Receiver<bool>,
    ) {
        let slots = Arc::new(Semaphore::new(lane.pace.concurrency));
        let mut attempts = JoinSet::new();
        // Claimed entries not yet handed to a slot: claims go by the batch, so the
        // store is not asked once per message.
        let mut queue: VecDeque<OutboxEntry> = VecDeque::new();
        while !*stop.borrow() {
            while attempts.try_join_next().is_some() {}
            if queue.is_empty() {
                let claimed = self.claim_due(&lane).await;
                if claimed.is_empty() {
                    let wait = self.idle_wait(&lane).await;
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                if let Sink::Digest(smtp) = &lane.sink {
                    for (to, entries) in digests(claimed) {
                        let result = self.send_digest(smtp, &to, &entries).await;
                        for entry in &entries {
                            self.conclude(&lane, entry, result.clone(), false).await;
                        }
                    }
                    continue;
                }
                queue.extend(claimed);
            }
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot,
                _ = stop.changed() => continue,
            };
            let (Ok(slot), Some(entry)) = (slot, queue.pop_front()) else {
                continue;
            };
            let (me, lane) = (self.clone(), lane.clone());
            attempts.spawn(async move {
                me.attempt(&lane, entry).await;
                drop(slot);
            });
        }
        // Stopping: what was claimed but not attempted goes back in line as it was.
        let released: Vec<Settlement> = queue
            .into_iter()
            .map(|e| Settlement::Released { id: e.id })
            .collect();
        if let Err(e) = self.platform.outbox.settle(released).await {
            tracing::warn!(error = %Redacted(&e), "claimed entries could not be released; they are resumed at the next start");
        }
        while attempts.join_next().await.is_some() {}
    }

    /// The lane's due entries, claimed: a batch a few times its concurrency (a digest
    /// takes everything due, into one e-mail per address).
    async fn claim_due(&self, lane: &Lane) -> Vec<OutboxEntry> {
        let now = Timestamp::now();
        match self.platform.outbox.next_due(&lane.channel).await {
            Ok(Some(at)) if at <= now => {}
            Ok(_) => return Vec::new(),
            Err(e) => {
                tracing::error!(channel = %lane.channel, error = %Redacted(&e), "cannot read the outbox");
                return Vec::new();
            }
        }
        let batch = match lane.sink {
            Sink::Digest(_) => DIGEST_MAX,
            _ => (lane.pace.concurrency * 4).max(16),
        };
        match self.platform.outbox.claim(&lane.channel, now, batch).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(channel = %lane.channel, error = %Redacted(&e), "cannot claim outbox entries; trying again");
                Vec::new()
            }
        }
    }

    /// How long an idle lane sleeps: until its next entry is due, at most [`POLL`].
    async fn idle_wait(&self, lane: &Lane) -> Duration {
        let now = Timestamp::now();
        match self.platform.outbox.next_due(&lane.channel).await {
            Ok(Some(at)) => at.duration_since(now).unsigned_abs().min(POLL),
            _ => POLL,
        }
    }
}

/// Digest entries by the address they go to.
fn digests(entries: Vec<OutboxEntry>) -> BTreeMap<String, Vec<OutboxEntry>> {
    let mut by_address: BTreeMap<String, Vec<OutboxEntry>> = BTreeMap::new();
    for entry in entries {
        let to = entry
            .reasons
            .pointer("/0/digest_to")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        by_address.entry(to).or_default().push(entry);
    }
    by_address
}
