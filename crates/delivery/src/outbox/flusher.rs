//! Settling attempts: each outcome (sent, retried after a back-off, or a dead letter)
//! goes to one flusher, which records many at a time, each settlement with the
//! person's event about it in the same transaction.

use std::sync::atomic::Ordering;
use std::time::Duration;
use unavoce_core::redact::Redacted;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use unavoce_store::{OutboxEntry, Settlement, StoreError};

use super::Dispatcher;
use super::backoff::{jitter, retry_delay};
use super::lanes::Lane;
use crate::providers::smtp::BOUNCE;
use crate::providers::{Accepted, Failure};
use unavoce_core::platform_events::{self, DELIVERY_SOURCE, MessageOutcome};

use crate::record::{about, entry_properties, origin};

/// Outcomes recorded in one transaction at most.
pub(super) const FLUSH_MAX: usize = 1_000;

/// What the flusher takes in.
pub(super) enum Outcome {
    /// A settlement, with the person's event about it.
    Done(Settlement, Option<Map<String, Value>>),
    /// Every lane has stopped: record what is queued, then stop.
    Finished,
}

impl Dispatcher {
    /// Settles an attempt: sent, retried later, or given up. `about_a_person`: a
    /// message to the person, whose outcome is also recorded as their event.
    pub(super) async fn conclude(
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
                let event = about_a_person.then_some((&entry, MessageOutcome::Sent, properties));
                self.finish(sent, event).await;
            }
            Err(Failure::Permanent(error)) => {
                self.give_up(lane, &entry, error, about_a_person).await
            }
            Err(failure) => {
                let error = failure.describe().to_string();
                let mut wait = retry_delay(&self.retry.get(), entry.attempts, jitter());
                if let Failure::RateLimited { retry_after, .. } = &failure {
                    let asked = retry_after.unwrap_or(Duration::from_secs(1));
                    lane.pacer.pause(asked);
                    wait = wait.max(SignedDuration::try_from(asked).unwrap_or(wait));
                }
                let retry_at = Timestamp::now() + wait;
                let expires = entry.first_due + self.retry.get().expire_after;
                if entry.attempts >= self.retry.get().max_attempts || retry_at > expires {
                    let why = if entry.attempts >= self.retry.get().max_attempts {
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
                    error = %Redacted(&error),
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

    /// A dead letter, and (for a message to a person) their `Message Failed` — or
    /// `Message Bounced`, when a mail server refused an e-mail.
    pub(super) async fn give_up(
        &self,
        lane: &Lane,
        entry: &OutboxEntry,
        error: String,
        about_a_person: bool,
    ) {
        lane.dead.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(channel = %lane.channel, outbox_id = entry.id, error = %Redacted(&error), "message given up (dead letter)");
        let mut properties = self.properties(lane, entry);
        properties.insert("error".into(), error.clone().into());
        let outcome = if entry.channel == "email" && error.starts_with(BOUNCE) {
            MessageOutcome::Bounced
        } else {
            MessageOutcome::Failed
        };
        let dead = Settlement::Dead {
            id: entry.id,
            error,
            at: Timestamp::now(),
        };
        let event = about_a_person.then_some((entry, outcome, properties));
        self.finish(dead, event).await;
    }

    fn properties(&self, lane: &Lane, entry: &OutboxEntry) -> Map<String, Value> {
        let mut p = entry_properties(entry);
        p.insert("provider".into(), lane.sink.kind().into());
        p.insert("attempts".into(), entry.attempts.into());
        p
    }

    /// Hands an attempt's outcome to the flusher: its settlement, with the person's
    /// event about it (whose message id is derived from the entry and `step`, so it is
    /// recorded once).
    pub(super) async fn finish(
        &self,
        settlement: Settlement,
        event: Option<(&OutboxEntry, MessageOutcome, Map<String, Value>)>,
    ) {
        let event = event.and_then(|(entry, outcome, properties)| {
            let mut message = platform_events::message_outcome(outcome, properties);
            message.insert(
                "messageId".into(),
                format!("delivery-{}-{}", entry.id, outcome.verb()).into(),
            );
            let found = about(&self.platform, entry.profile_id, message);
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
    pub(super) async fn flush(&self, mut outcomes: mpsc::Receiver<Outcome>) {
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
                    .recorder
                    .record_settling(
                        DELIVERY_SOURCE,
                        events.clone(),
                        origin(),
                        settlements.clone(),
                    )
                    .await;
                match recorded {
                    Ok(report) => {
                        if let Some(r) = report.rejected.first() {
                            tracing::error!(code = ?r.code, "a delivery event was quarantined");
                        }
                        self.take_in_early_reports_of(&settlements).await;
                        break;
                    }
                    Err(StoreError::Closed) => {
                        tracing::error!(
                            "the store closed before deliveries could be settled; they will be resumed at the next start"
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %Redacted(&e), "cannot settle deliveries yet; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
    }

    /// Reports that providers sent before these sends were settled, taken in now.
    async fn take_in_early_reports_of(&self, settlements: &[Settlement]) {
        let sent: Vec<String> = settlements
            .iter()
            .filter_map(|s| match s {
                Settlement::Sent {
                    provider_message_id: Some(id),
                    ..
                } => Some(id.clone()),
                _ => None,
            })
            .collect();
        if let Err(e) = self.take_in_early_reports(sent).await {
            tracing::warn!(error = %Redacted(&e), "reports that came before their message's send could not be taken in; they are kept for the next start");
        }
    }
}
