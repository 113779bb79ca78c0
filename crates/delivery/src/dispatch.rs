//! The outbox worker: one lane per channel, each with its own provider, pace and
//! concurrency, so a slow or failing provider holds back only its own messages.
//!
//! A lane claims only as many due entries as it has free slots (each claim is durable
//! before the attempt starts), renders each for the person as they are at send time,
//! hands it to the provider under the entry's idempotency key, and settles it: sent,
//! retried after an exponential back-off with jitter, or a dead letter. What happened
//! is recorded as the person's events (`Message Sent`, `Message Failed`), which
//! per-channel engagement and the journeys' fallbacks read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use unavoce_core::identity::ProfileId;
use unavoce_core::message::{MessageConfig, Rendering, SmsTemplate, WhatsAppTemplate};
use unavoce_core::policy::Policies;
use unavoce_engagement::Messages;
use unavoce_intake::Intake;
use unavoce_projections::IdentityProjection;
use unavoce_store::{DecisionLog, Outbox, OutboxEntry, Settlement, StoreError};

use crate::backoff::{jitter, retry_delay};
use crate::config::{ConfigError, DeliveryConfig, Pace, RetryPolicy};
use crate::pace::Pacer;
use crate::provider::{Accepted, Envelope, Failure, Provider};
use crate::tracking::track_html;
use crate::verify::CallbackSecrets;
use crate::{Smtp, Twilio, Webhook, Whatsapp};

/// The source of the events delivery records.
pub const DELIVERY_SOURCE: &str = "delivery";
/// The purpose of the one message that confirms an opt-out: sent although every
/// consent on that channel was just withdrawn (the confirmation is what the law asks).
pub const OPT_OUT_PURPOSE: &str = "opt-out";
/// The catalog message that confirms an opt-out.
pub const OPT_OUT_MESSAGE: &str = "opt-out-confirmation";

/// Outcomes recorded in one transaction at most.
const FLUSH_MAX: usize = 1_000;
/// Insights in one digest e-mail at most (more wait for the next).
const DIGEST_MAX: usize = 500;
/// How an SMTP refusal starts (a bounce).
pub(crate) const BOUNCE: &str = "refused:";

/// How long an idle lane waits before looking for due entries again.
const POLL: Duration = Duration::from_millis(200);

/// What a lane hands its entries to.
pub(crate) enum Sink {
    /// Messages to people, through their channel's provider.
    Message(Arc<dyn Provider>),
    /// Insights, posted one by one to a department's webhook.
    Webhook(Arc<Webhook>),
    /// Insights, gathered into one e-mail per period and address.
    Digest(Arc<Smtp>),
}

impl Sink {
    fn kind(&self) -> &'static str {
        match self {
            Sink::Message(provider) => provider.kind(),
            Sink::Webhook(_) => "webhook",
            Sink::Digest(_) => "digest",
        }
    }
}

/// One channel's provider and its pace.
pub(crate) struct Lane {
    pub(crate) channel: String,
    sink: Sink,
    pacer: Pacer,
    pace: Pace,
    sent: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
}

/// A lane as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LaneInfo {
    pub channel: String,
    pub provider: &'static str,
    pub per_second: f64,
    pub concurrency: usize,
    /// Since start: messages accepted, attempts to retry, dead letters.
    pub sent: u64,
    pub retried: u64,
    pub dead: u64,
}

/// What the worker needs from the rest of the platform.
pub struct Platform {
    pub outbox: Arc<dyn Outbox>,
    pub identity: Arc<IdentityProjection>,
    pub messages: Arc<Messages>,
    pub intake: Arc<Intake>,
    pub policies: Arc<Policies>,
    pub decisions: Arc<dyn DecisionLog>,
}

/// The outbox worker and its providers.
pub struct Dispatcher {
    platform: Platform,
    lanes: BTreeMap<String, Arc<Lane>>,
    retry: RetryPolicy,
    callbacks: CallbackSecrets,
    public_url: String,
    /// Attempts' outcomes on their way to the flusher, which [`Self::run`] starts.
    outcomes: mpsc::Sender<Outcome>,
    flusher: std::sync::Mutex<Option<mpsc::Receiver<Outcome>>>,
}

/// What the flusher takes in.
enum Outcome {
    /// A settlement, with the person's event about it.
    Done(Settlement, Option<Map<String, Value>>),
    /// Every lane has stopped: record what is queued, then stop.
    Finished,
}

/// Why a claimed entry is not handed to a provider.
enum Skip {
    /// It cannot be sent (no address, no such message, a template that fails).
    Dead(String),
    /// It should no longer be sent.
    Cancelled(String),
}

impl Dispatcher {
    /// The providers `config` sets up; `public_url` is where providers report back.
    pub fn new(
        config: &DeliveryConfig,
        platform: Platform,
        public_url: &str,
    ) -> Result<Self, ConfigError> {
        let public_url = public_url.trim_end_matches('/');
        let mut sinks: Vec<(String, Sink, Pace)> = Vec::new();
        let mut message = |channel: &str, provider: Arc<dyn Provider>, pace: Pace| {
            sinks.push((channel.to_string(), Sink::Message(provider), pace));
        };
        if let Some(c) = &config.email {
            message("email", Arc::new(Smtp::new(c)?), c.pace);
        }
        if let Some(c) = &config.sms {
            let callback = format!("{public_url}/webhooks/twilio/status");
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
        let lanes = sinks
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
            .collect();
        let (outcomes, flusher) = mpsc::channel(FLUSH_MAX * 4);
        Ok(Dispatcher {
            outcomes,
            flusher: std::sync::Mutex::new(Some(flusher)),
            platform,
            lanes,
            retry: config.retry.policy()?,
            callbacks: CallbackSecrets::new(config)?,
            public_url: public_url.to_string(),
        })
    }

    /// The secrets providers' callbacks are checked with.
    pub fn callbacks(&self) -> &CallbackSecrets {
        &self.callbacks
    }

    /// Where providers and people reach this server.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The outbox this worker delivers from.
    pub fn platform_outbox(&self) -> &Arc<dyn Outbox> {
        &self.platform.outbox
    }

    /// The lanes and what they did since start.
    pub fn lanes(&self) -> Vec<LaneInfo> {
        self.lanes
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

    /// Puts back in line what a crash left under way, then runs every lane until
    /// `stop` turns true; attempts under way then finish. With no provider configured,
    /// there is nothing to do (entries wait in the outbox until one is).
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> Result<(), StoreError> {
        if self.lanes.is_empty() {
            return Ok(());
        }
        let resumed = self.platform.outbox.resume_in_flight().await?;
        if resumed > 0 {
            tracing::warn!(
                resumed,
                "outbox entries were being sent when the server stopped; they are sent again under the same idempotency key"
            );
        }
        let Some(outcomes) = self
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Err(StoreError::Storage(
                "the outbox worker is already running".into(),
            ));
        };
        let flusher = self.clone();
        let flushing = tokio::spawn(async move { flusher.flush(outcomes).await });
        let mut lanes = JoinSet::new();
        for lane in self.lanes.values() {
            lanes.spawn(self.clone().run_lane(lane.clone(), stop.clone()));
        }
        while lanes.join_next().await.is_some() {}
        let _ = self.outcomes.send(Outcome::Finished).await;
        let _ = flushing.await;
        Ok(())
    }

    async fn run_lane(self: Arc<Self>, lane: Arc<Lane>, mut stop: watch::Receiver<bool>) {
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
            tracing::warn!(error = %e, "claimed entries could not be released; they are resumed at the next start");
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
                tracing::error!(channel = %lane.channel, error = %e, "cannot read the outbox");
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
                tracing::warn!(channel = %lane.channel, error = %e, "cannot claim outbox entries; trying again");
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

    /// One attempt at one entry, settled.
    async fn attempt(&self, lane: &Lane, entry: OutboxEntry) {
        let provider = match &lane.sink {
            Sink::Message(provider) => provider,
            Sink::Webhook(webhook) => {
                let payload = self.insight_payload(&entry);
                lane.pacer.acquire().await;
                let key = entry.idempotency_key();
                let result = webhook.post(&payload, &key).await.map(|()| Accepted {
                    provider_message_id: Some(key),
                });
                return self.conclude(lane, &entry, result, false).await;
            }
            Sink::Digest(_) => return,
        };
        let now = Timestamp::now();
        let envelope = match self.prepare(&entry, now) {
            Ok(envelope) => envelope,
            Err(Skip::Dead(error)) => return self.give_up(lane, &entry, error, true).await,
            Err(Skip::Cancelled(reason)) => {
                let at = Timestamp::now();
                let cancelled = Settlement::Cancelled {
                    id: entry.id,
                    reason,
                    at,
                };
                return self.finish(cancelled, None).await;
            }
        };
        lane.pacer.acquire().await;
        let result = provider.send(&envelope).await;
        self.conclude(lane, &entry, result, true).await;
    }

    /// Sends an entry's message at once, bypassing the outbox (no claim, settlement,
    /// retry or recorded outcome): what sending directly would cost, to measure the
    /// outbox's overhead against.
    pub async fn send_directly(&self, entry: &OutboxEntry) -> Result<Accepted, Failure> {
        let Some(Sink::Message(provider)) = self.lanes.get(&entry.channel).map(|l| &l.sink) else {
            return Err(Failure::Permanent(format!(
                "no provider for {}",
                entry.channel
            )));
        };
        match self.prepare(entry, Timestamp::now()) {
            Ok(envelope) => provider.send(&envelope).await,
            Err(Skip::Dead(e) | Skip::Cancelled(e)) => Err(Failure::Permanent(e)),
        }
    }

    /// Settles an attempt: sent, retried later, or given up. `about_a_person`: a
    /// message to the person, whose outcome is also recorded as their event.
    async fn conclude(
        &self,
        lane: &Lane,
        entry: &OutboxEntry,
        result: Result<Accepted, Failure>,
        about_a_person: bool,
    ) {
        let entry = entry.clone();
        match result {
            Ok(accepted) => {
                lane.sent.fetch_add(1, Ordering::Relaxed);
                let mut properties = self.properties(lane, &entry);
                if let Some(id) = &accepted.provider_message_id {
                    properties.insert("provider_message_id".into(), id.clone().into());
                }
                let sent = Settlement::Sent {
                    id: entry.id,
                    provider_message_id: accepted.provider_message_id,
                    at: Timestamp::now(),
                };
                let event = about_a_person.then_some((&entry, "Message Sent", "sent", properties));
                self.finish(sent, event).await;
            }
            Err(Failure::Permanent(error)) => {
                self.give_up(lane, &entry, error, about_a_person).await
            }
            Err(failure) => {
                let error = failure.describe().to_string();
                let mut wait = retry_delay(&self.retry, entry.attempts, jitter());
                if let Failure::RateLimited { retry_after, .. } = &failure {
                    let asked = retry_after.unwrap_or(Duration::from_secs(1));
                    lane.pacer.pause(asked);
                    wait = wait.max(SignedDuration::try_from(asked).unwrap_or(wait));
                }
                let retry_at = Timestamp::now() + wait;
                let expires = entry.first_due + self.retry.expire_after;
                if entry.attempts >= self.retry.max_attempts || retry_at > expires {
                    let why = if entry.attempts >= self.retry.max_attempts {
                        format!("{} attempts failed; the last: {error}", entry.attempts)
                    } else {
                        format!(
                            "it would be too late to send it next time; the last error: {error}"
                        )
                    };
                    return self.give_up(lane, &entry, why, about_a_person).await;
                }
                lane.retried.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    channel = %lane.channel,
                    outbox_id = entry.id,
                    attempt = entry.attempts,
                    retry_in_s = wait.as_secs(),
                    error = %error,
                    "delivery failed for now; retrying"
                );
                let retry = Settlement::Retry {
                    id: entry.id,
                    retry_at,
                    error,
                    at: Timestamp::now(),
                };
                self.finish(retry, None).await;
            }
        }
    }

    /// The entry ready for its provider, or why it is not sent.
    fn prepare(&self, entry: &OutboxEntry, now: Timestamp) -> Result<Envelope, Skip> {
        if now > entry.first_due + self.retry.expire_after {
            return Err(Skip::Dead(format!(
                "expired: not sent within {} of being due",
                self.retry.expire_after
            )));
        }
        let id: ProfileId = entry
            .profile_id
            .parse()
            .map_err(|_| Skip::Dead(format!("{:?} is not a profile id", entry.profile_id)))?;
        let identity = &self.platform.identity;
        let found = identity.read(|g| {
            g.profile(id).map(|node| {
                let address = |kind: &str| identity.identifier_of_kind(node, kind);
                let wanted = match entry.channel.as_str() {
                    "email" => Some("email"),
                    "sms" | "whatsapp" | "rcs" => Some("phone"),
                    "push" => Some("device_id"),
                    _ => None,
                };
                (
                    node.id,
                    wanted.map(|kind| (kind, address(kind))),
                    address("phone"),
                )
            })
        });
        let Some((profile, wanted, phone)) = found else {
            return Err(Skip::Dead("the profile no longer exists".into()));
        };
        let to = match wanted {
            Some((_, Some(address))) => address,
            Some((kind, None)) => {
                return Err(Skip::Dead(format!("the person has no {kind} to send to")));
            }
            None => phone.unwrap_or_default(),
        };
        let (facts, _) = identity.person(profile, now);
        if entry.purpose != OPT_OUT_PURPOSE
            && !self
                .platform
                .policies
                .consented(&entry.purpose, &entry.channel, &facts)
        {
            return Err(Skip::Cancelled(format!(
                "consent to {} messages on {} was withdrawn after the decision",
                entry.purpose, entry.channel
            )));
        }
        let mut rendering = self
            .platform
            .messages
            .render(&entry.message, &entry.channel, profile, &facts)
            .map_err(|e| Skip::Dead(e.to_string()))?;
        if let Rendering::Email { html, .. } = &mut rendering {
            let links = self.platform.messages.links();
            *html = track_html(html, &links.open_url(entry.id), |url| {
                (!links.is_own(url)).then(|| links.click_url(entry.id, url))
            });
        }
        Ok(Envelope {
            idempotency_key: entry.idempotency_key(),
            to,
            rendering,
            profile_id: profile.to_string(),
            message: entry.message.clone(),
            outbox_id: entry.id,
        })
    }

    /// A dead letter, and (for a message to a person) their `Message Failed` — or
    /// `Message Bounced`, when a mail server refused an e-mail.
    async fn give_up(&self, lane: &Lane, entry: &OutboxEntry, error: String, about_a_person: bool) {
        lane.dead.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(channel = %lane.channel, outbox_id = entry.id, error = %error, "message given up (dead letter)");
        let mut properties = self.properties(lane, entry);
        properties.insert("error".into(), error.clone().into());
        let (event, step) = if entry.channel == "email" && error.starts_with(BOUNCE) {
            ("Message Bounced", "bounced")
        } else {
            ("Message Failed", "failed")
        };
        let dead = Settlement::Dead {
            id: entry.id,
            error,
            at: Timestamp::now(),
        };
        let event = about_a_person.then_some((entry, event, step, properties));
        self.finish(dead, event).await;
    }

    fn properties(&self, lane: &Lane, entry: &OutboxEntry) -> Map<String, Value> {
        let mut p = entry_properties(entry);
        p.insert("provider".into(), lane.sink.kind().into());
        p.insert("attempts".into(), entry.attempts.into());
        p
    }

    pub(crate) fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Hands an attempt's outcome to the flusher: its settlement, with the person's
    /// event about it (whose message id is derived from the entry and `step`, so it is
    /// recorded once).
    async fn finish(
        &self,
        settlement: Settlement,
        event: Option<(&OutboxEntry, &str, &str, Map<String, Value>)>,
    ) {
        let event = event.and_then(|(entry, name, step, properties)| {
            let message = json!({
                "type": "track",
                "event": name,
                "messageId": format!("delivery-{}-{step}", entry.id),
                "properties": properties,
            });
            let found = about(&self.platform, &entry.profile_id, message);
            if found.is_none() {
                tracing::warn!(
                    outbox_id = entry.id,
                    "the person of a delivery no longer has an identity to record its outcome under"
                );
            }
            found
        });
        if self
            .outcomes
            .send(Outcome::Done(settlement, event))
            .await
            .is_err()
        {
            tracing::error!(
                "a delivery outcome could not be recorded: the worker is stopping; it will be resumed at the next start"
            );
        }
    }

    /// Records outcomes as they come, many per transaction: the events and their
    /// settlements together. Returns at [`Outcome::Finished`].
    async fn flush(&self, mut outcomes: mpsc::Receiver<Outcome>) {
        let mut finished = false;
        while !finished {
            let Some(first) = outcomes.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < FLUSH_MAX {
                match outcomes.try_recv() {
                    Ok(outcome) => batch.push(outcome),
                    Err(_) => break,
                }
            }
            let (mut events, mut settlements) = (Vec::new(), Vec::new());
            for outcome in batch {
                match outcome {
                    Outcome::Done(settlement, event) => {
                        settlements.push(settlement);
                        events.extend(event);
                    }
                    Outcome::Finished => finished = true,
                }
            }
            // The outbox row is what keeps a message from being sent twice: keep trying.
            let mut wait = Duration::from_millis(50);
            loop {
                let recorded = self
                    .platform
                    .intake
                    .record_settling(
                        DELIVERY_SOURCE,
                        events.clone(),
                        json!({"component": "delivery"}),
                        settlements.clone(),
                    )
                    .await;
                match recorded {
                    Ok(report) => {
                        if let Some(r) = report.rejected.first() {
                            tracing::error!(code = ?r.code, "a delivery event was quarantined");
                        }
                        break;
                    }
                    Err(StoreError::Closed) => {
                        tracing::error!(
                            "the store closed before deliveries could be settled; they will be resumed at the next start"
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot settle deliveries yet; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
    }
}

/// The built-in message that confirms an opt-out (unless the catalog defines
/// [`OPT_OUT_MESSAGE`] itself).
pub fn opt_out_message(config: &DeliveryConfig) -> MessageConfig {
    let text = config.opt_out_confirmation();
    MessageConfig {
        id: OPT_OUT_MESSAGE.into(),
        description: Some("Confirms an SMS or WhatsApp STOP, once.".into()),
        email: None,
        sms: Some(SmsTemplate {
            text: text.clone(),
            max_segments: 2,
        }),
        whatsapp: Some(WhatsAppTemplate {
            text,
            buttons: Vec::new(),
        }),
        push: None,
        call_task: None,
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

/// What every event about an outbox entry says about it.
pub(crate) fn entry_properties(entry: &OutboxEntry) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("channel".into(), entry.channel.clone().into());
    p.insert("message".into(), entry.message.clone().into());
    p.insert("purpose".into(), entry.purpose.clone().into());
    p.insert("outbox_id".into(), entry.id.into());
    p.insert("decision_id".into(), entry.decision_id.into());
    if let Some(journey) = &entry.journey {
        p.insert("journey".into(), journey.clone().into());
    }
    if let Some(broadcast) = &entry.broadcast {
        p.insert("broadcast".into(), broadcast.clone().into());
    }
    p
}

/// Why an event about a person could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("profile {0} no longer exists or has no user or anonymous id to record under")]
    NoIdentity(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the event was quarantined: {0}")]
    Rejected(String),
}

/// `message` (a Segment message without identity) made an event of profile
/// `profile_id` (or the profile it was merged into): with their user or anonymous id.
fn about(platform: &Platform, profile_id: &str, mut message: Value) -> Option<Map<String, Value>> {
    let identity = &platform.identity;
    let (key, value) = profile_id
        .parse::<ProfileId>()
        .ok()
        .and_then(|id| identity.read(|g| g.profile(id).and_then(|n| identity.event_identity(n))))?;
    message[key] = value.into();
    match message {
        Value::Object(message) => Some(message),
        _ => None,
    }
}

/// Records `message` (a Segment message without identity) as an event of profile
/// `profile_id` (or the profile it was merged into).
pub async fn record_about(
    platform: &Platform,
    profile_id: &str,
    message: Value,
) -> Result<(), RecordError> {
    let Some(message) = about(platform, profile_id, message) else {
        return Err(RecordError::NoIdentity(profile_id.to_string()));
    };
    record(platform, message).await
}

/// Records `message` (a Segment message with its identity) from the delivery source.
pub async fn record(platform: &Platform, message: Map<String, Value>) -> Result<(), RecordError> {
    let report = platform
        .intake
        .record(
            DELIVERY_SOURCE,
            vec![message],
            json!({"component": "delivery"}),
        )
        .await?;
    match report.rejected.first() {
        Some(r) => Err(RecordError::Rejected(r.message.clone())),
        None => Ok(()),
    }
}
