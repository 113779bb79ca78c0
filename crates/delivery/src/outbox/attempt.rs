//! One attempt at one claimed entry: made ready for its provider (still due, an
//! address, consent checked again, rendered for the person as they are now, its
//! e-mail links tracked), handed over, and concluded.

use jiff::Timestamp;
use unavoce_core::message::Rendering;
use unavoce_store::{OutboxEntry, Settlement};

use super::Dispatcher;
use super::lanes::{Lane, Sink};
use crate::address;
use crate::email_links::track_html;
use crate::providers::{Accepted, Envelope, Failure};
use crate::replies::OPT_OUT_PURPOSE;

/// Why a claimed entry is not handed to a provider.
enum Skip {
    /// It cannot be sent (no address, no such message, a template that fails).
    Dead(String),
    /// It should no longer be sent.
    Cancelled(String),
}

impl Dispatcher {
    /// One attempt at one entry, settled.
    pub(super) async fn attempt(&self, lane: &Lane, entry: OutboxEntry) {
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
        let lanes = self.lanes.get();
        let Some(Sink::Message(provider)) = lanes.get(&entry.channel).map(|l| &l.sink) else {
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

    /// The entry ready for its provider, or why it is not sent.
    fn prepare(&self, entry: &OutboxEntry, now: Timestamp) -> Result<Envelope, Skip> {
        if now > entry.first_due + self.retry.get().expire_after {
            return Err(Skip::Dead(format!(
                "expired: not sent within {} of being due",
                self.retry.get().expire_after
            )));
        }
        let identity = &self.platform.identity;
        let (profile, to) = address::find(identity, entry.profile_id, &entry.channel)
            .map_err(|e| Skip::Dead(e.to_string()))?;
        let (facts, _) = identity.person(profile, now);
        if entry.purpose != OPT_OUT_PURPOSE
            && !self
                .platform
                .policies
                .get()
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
            profile_id: profile,
            message: entry.message.clone(),
            outbox_id: entry.id,
        })
    }
}
