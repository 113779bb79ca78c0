//! The outbox worker: one lane per channel, each with its own provider, pace and
//! concurrency, so a slow or failing provider holds back only its own messages.
//!
//! A lane claims only as many due entries as it has free slots (each claim is durable
//! before the attempt starts), renders each for the person as they are at send time,
//! hands it to the provider under the entry's idempotency key, and settles it: sent,
//! retried after an exponential back-off with jitter, or a dead letter. What happened
//! is recorded as the person's events (`Message Sent`, `Message Failed`), which
//! per-channel engagement and the journeys' fallbacks read.
//!
//! `lanes.rs` holds the lanes and their claiming, `attempt.rs` one attempt at one
//! entry, `flusher.rs` the settling of outcomes, `pace.rs` a lane's rate limit and
//! `backoff.rs` the wait before a retry.

use std::collections::BTreeMap;
use std::sync::Arc;
use unavoce_core::redact::Redacted;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use unavoce_core::live::Live;
use unavoce_core::policy::Policies;
use unavoce_engagement::Messages;
use unavoce_projections::{IdentityProjection, Recorder};
use unavoce_store::{DecisionLog, Leases, Outbox, StoreError};

use crate::config::{ConfigError, DeliveryConfig, RetryPolicy};
use crate::feedback::Callbacks;

mod attempt;
mod backoff;
mod flusher;
mod lanes;
mod pace;

use flusher::{FLUSH_MAX, Outcome};
use lanes::Lane;
pub use lanes::LaneInfo;

/// What the worker needs from the rest of the platform.
pub struct Platform {
    /// Where messages wait, and are claimed and settled.
    pub outbox: Arc<dyn Outbox>,
    /// The identity graph: whom an entry is for, and their address and consents now.
    pub identity: Arc<IdentityProjection>,
    /// The message catalog, to render each message at send time.
    pub messages: Arc<Messages>,
    /// Where what happened is recorded, as the person's events.
    pub recorder: Recorder,
    /// The policies whose consents are checked again at send time.
    pub policies: Arc<Live<Policies>>,
    /// Where a STOP's confirmation is decided.
    pub decisions: Arc<dyn DecisionLog>,
    /// Each lane is worked by one node at a time: the one holding its lease.
    pub leases: Arc<dyn Leases>,
}

/// The outbox worker and its providers.
pub struct Dispatcher {
    platform: Platform,
    /// The lanes in force; a reload of the configuration replaces them
    /// ([`Dispatcher::reconfigure`]).
    lanes: Live<BTreeMap<String, Arc<Lane>>>,
    retry: Live<RetryPolicy>,
    callbacks: Live<Callbacks>,
    /// Woken when the providers were replaced: the lanes in force stop, the new ones start.
    reconfigured: tokio::sync::Notify,
    public_url: String,
    /// Attempts' outcomes on their way to the flusher, which [`Self::run`] starts.
    outcomes: mpsc::Sender<Outcome>,
    flusher: std::sync::Mutex<Option<mpsc::Receiver<Outcome>>>,
}

/// The providers of a `[delivery]` section, each checked and set up: ready to take
/// the place of those in force ([`Dispatcher::reconfigure`]).
pub struct Providers {
    lanes: BTreeMap<String, Arc<Lane>>,
    retry: RetryPolicy,
    callbacks: Callbacks,
}

impl Providers {
    /// Sets up the providers `config` names; `public_url` is where they report back.
    pub fn check(config: &DeliveryConfig, public_url: &str) -> Result<Self, ConfigError> {
        let public_url = public_url.trim_end_matches('/');
        Ok(Providers {
            lanes: lanes::build(config, public_url)?,
            retry: config.retry.policy()?,
            callbacks: Callbacks::new(config, public_url)?,
        })
    }
}

impl Dispatcher {
    /// The providers `config` sets up; `public_url` is where providers report back.
    pub fn new(
        config: &DeliveryConfig,
        platform: Platform,
        public_url: &str,
    ) -> Result<Self, ConfigError> {
        let providers = Providers::check(config, public_url)?;
        let (outcomes, flusher) = mpsc::channel(FLUSH_MAX * 4);
        Ok(Dispatcher {
            outcomes,
            flusher: std::sync::Mutex::new(Some(flusher)),
            platform,
            lanes: Live::from(Arc::new(providers.lanes)),
            retry: Live::from(Arc::new(providers.retry)),
            callbacks: Live::from(Arc::new(providers.callbacks)),
            reconfigured: tokio::sync::Notify::new(),
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }

    /// Puts new providers in force: the lanes in force stop claiming, their attempts
    /// under way finish, and the new lanes start (each under its lease, putting back in
    /// line what was left under way); callbacks and retries follow the new settings at
    /// once.
    pub fn reconfigure(&self, providers: Providers) {
        self.retry.set(Arc::new(providers.retry));
        self.callbacks.set(Arc::new(providers.callbacks));
        self.lanes.set(Arc::new(providers.lanes));
        self.reconfigured.notify_one();
    }

    /// The readers of providers' callbacks.
    pub(crate) fn callbacks(&self) -> Arc<Callbacks> {
        self.callbacks.get()
    }

    /// Where providers and people reach this server.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The outbox this worker delivers from.
    pub fn platform_outbox(&self) -> &Arc<dyn Outbox> {
        &self.platform.outbox
    }

    /// Takes in providers' reports kept from before whose message is now known, then
    /// runs every lane this node holds the lease of (putting back in line, as it takes a
    /// lane, what a crash left under way), until `stop` turns true; attempts under way
    /// then finish. With no provider configured, there is nothing to do (entries wait
    /// in the outbox until one is).
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> Result<(), StoreError> {
        let due = self.platform.outbox.early_reports_due().await?;
        if let Err(e) = self.take_in_early_reports(due).await {
            tracing::warn!(error = %Redacted(&e), "providers' reports kept from before the stop could not be taken in yet");
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
        let mut stop = stop;
        // The lanes in force until the providers are replaced (then again with the new
        // ones) or the worker stops.
        loop {
            let (stop_lanes, lanes_stop) = watch::channel(false);
            let mut lanes = JoinSet::new();
            for lane in self.lanes.get().values() {
                lanes.spawn(
                    self.clone()
                        .run_leased_lane(lane.clone(), lanes_stop.clone()),
                );
            }
            let replaced = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => false,
                () = self.reconfigured.notified() => true,
            };
            let _ = stop_lanes.send(true);
            while lanes.join_next().await.is_some() {}
            if !replaced {
                break;
            }
        }
        let _ = self.outcomes.send(Outcome::Finished).await;
        let _ = flushing.await;
        Ok(())
    }

    /// What the worker reads and records through.
    pub(crate) fn platform(&self) -> &Platform {
        &self.platform
    }
}
