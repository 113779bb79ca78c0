//! Putting the platform together: the projections, the engagement stage and the outbox
//! worker over one store, as `unavoce serve`, the tests and the benchmarks run it.

use std::sync::Arc;
use unavoce_core::redact::Redacted;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use unavoce_core::Touchpoint;
use unavoce_core::analytics::AnalyticsRules;
use unavoce_core::identity::IdentityRules;
use unavoce_core::journey::JourneyConfig;
use unavoce_core::live::Live;
use unavoce_core::message::MessageConfig;
use unavoce_core::policy::Policies;
use unavoce_core::profile::ComputedTrait;
use unavoce_core::subscription::SubscriptionConfig;
use unavoce_delivery::{DeliveryConfig, Dispatcher, OPT_OUT_MESSAGE, opt_out_message};
use unavoce_engagement::{
    BroadcastFallbacks, Destinations, Engagement, Insights, Journeys, Messages,
};
use unavoce_intake::Intake;
use unavoce_projections::clock::{Clock, SystemClock};
use unavoce_projections::{
    IdentityProjection, Recorder, Reports, SegmentDefinition, Segments, TouchpointRegistry,
};

use crate::ReadSide;
use crate::leased::{Resume, leased};
use crate::retention::Retention;
use unavoce_core::retention::RetentionRules;
use unavoce_store::{DecisionLog, Erasing, EventLog, Governance, JourneyStore, Leases, Store};

/// What the platform runs with: the parts of the configuration file it uses.
pub struct Blueprint {
    pub identity: Arc<IdentityRules>,
    pub analytics: Arc<AnalyticsRules>,
    pub computed: Arc<Vec<ComputedTrait>>,
    pub policies: Arc<Policies>,
    pub touchpoints: Vec<Touchpoint>,
    pub segments: Vec<SegmentDefinition>,
    pub journeys: Vec<JourneyConfig>,
    pub messages: Vec<MessageConfig>,
    pub subscriptions: Vec<SubscriptionConfig>,
    pub delivery: DeliveryConfig,
    /// How long events are kept.
    pub retention: Arc<RetentionRules>,
    /// Where people and providers reach this server (links in messages, callbacks).
    pub public_url: String,
    /// The time segments are evaluated at: the system's, or one a test moves.
    pub clock: Arc<dyn Clock>,
    /// Where the projections' snapshots are kept (the server's data folder, with the
    /// embedded store); `None`: the projections replay the whole log at start.
    pub snapshots: Option<std::path::PathBuf>,
}

impl Blueprint {
    /// The defaults of an empty configuration file (default identity rules, computed
    /// traits and policies; no touchpoint, segment, journey, message, subscription or
    /// provider), with this public address.
    pub fn defaults(public_url: &str) -> Result<Blueprint, AssembleError> {
        Ok(Blueprint {
            identity: IdentityRules::default_rules(),
            analytics: Default::default(),
            computed: Arc::new(unavoce_core::profile::default_computed_traits()),
            policies: Arc::new(Policies::new(&Default::default()).map_err(failed("policies"))?),
            touchpoints: Vec::new(),
            segments: Vec::new(),
            journeys: Vec::new(),
            messages: Vec::new(),
            subscriptions: Vec::new(),
            delivery: DeliveryConfig::default(),
            retention: Arc::default(),
            public_url: public_url.to_string(),
            clock: Arc::new(SystemClock),
            snapshots: None,
        })
    }
}

/// The message catalog of `blueprint`, with the opt-out confirmation unless it has its
/// own.
pub(crate) fn messages_of(blueprint: &Blueprint) -> Vec<MessageConfig> {
    let mut messages = blueprint.messages.clone();
    if !messages.iter().any(|m| m.id == OPT_OUT_MESSAGE) {
        messages.push(opt_out_message(&blueprint.delivery));
    }
    messages
}

/// Where `blueprint` can send insights.
pub(crate) fn destinations(blueprint: &Blueprint) -> Destinations {
    Destinations {
        webhooks: blueprint.delivery.webhooks.keys().cloned().collect(),
        email: blueprint.delivery.email.is_some(),
    }
}

/// Why the platform could not be put together.
#[derive(Debug, thiserror::Error)]
#[error("{part}: {source}")]
pub struct AssembleError {
    part: &'static str,
    source: Box<dyn std::error::Error + Send + Sync>,
}

pub(crate) fn failed<E: std::error::Error + Send + Sync + 'static>(
    part: &'static str,
) -> impl Fn(E) -> AssembleError {
    move |e| AssembleError {
        part,
        source: Box::new(e),
    }
}

/// The platform's parts, each shared: what the HTTP edge and the commands work with.
#[derive(Clone)]
pub struct Platform {
    /// The one way into the log.
    pub intake: Intake,
    /// The one way the platform records its own events about a person.
    pub recorder: Recorder,
    /// The identity graph and the profile states, kept current from the log.
    pub identity: Arc<IdentityProjection>,
    /// The message catalog.
    pub messages: Arc<Messages>,
    /// Journeys and their runs.
    pub journeys: Arc<Journeys>,
    /// Department subscriptions: insights routed to departments.
    pub insights: Arc<Insights>,
    /// Segments, kept current as events arrive.
    pub segments: Arc<Segments>,
    /// The registered touchpoints, from the config file and the API.
    pub touchpoints: Arc<TouchpointRegistry>,
    /// KPIs, paths, funnel, attribution and the census.
    pub reports: Arc<Reports>,
    /// Broadcasts through the policy gate.
    pub engagement: Arc<Engagement>,
    /// Broadcasts' pending fallbacks and their runner.
    pub broadcast_fallbacks: Arc<BroadcastFallbacks>,
    /// The policies in force (a reload replaces them).
    pub policies: Arc<Live<Policies>>,
    /// The policy gate's decisions.
    pub decisions: Arc<dyn DecisionLog>,
    /// The outbox worker, its providers and what comes back from them.
    pub delivery: Arc<Dispatcher>,
    /// Named API keys and the audit log.
    pub governance: Arc<dyn Governance>,
    /// The journeys' runs as stored.
    pub journey_runs: Arc<dyn JourneyStore>,
    /// Erasing people and the suppression list.
    pub erasing: Arc<dyn Erasing>,
    /// The retention job.
    pub retention: Arc<Retention>,
    /// This node's changes that other nodes must take in (see `changes.rs`).
    pub(crate) changes: tokio::sync::broadcast::Sender<crate::changes::Change>,
}

impl Platform {
    /// Another node committed events to the shared log (its store's `committed` watch
    /// has moved): the projections read them and the engagement stage looks at them now.
    pub fn others_committed(&self) {
        self.identity.read_log_now();
        self.journeys.nudge();
        self.broadcast_fallbacks.nudge();
        self.insights.nudge();
    }
}

/// A [`Resume`] calling `resume` on `part`.
fn resuming<P, F, E>(part: &Arc<P>, resume: fn(Arc<P>) -> F) -> Resume
where
    P: Send + Sync + 'static,
    F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let part = part.clone();
    Arc::new(move || {
        let resumed = resume(part.clone());
        Box::pin(async move { resumed.await.map_err(|e| e.to_string()) })
    })
}

/// What starts `part`'s task, again after each lease taken.
fn starting<P: Send + Sync + 'static>(
    part: &Arc<P>,
    start: fn(&Arc<P>) -> JoinHandle<()>,
) -> Arc<dyn Fn() -> JoinHandle<()> + Send + Sync> {
    let part = part.clone();
    Arc::new(move || start(&part))
}

/// How often the projections look whether a snapshot is due, and after how many new
/// events one is (or after ten looks with any).
const SNAPSHOT_LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
const SNAPSHOT_AFTER_EVENTS: i64 = 250_000;

/// The running platform: its parts and their background work.
pub struct Running {
    pub platform: Platform,
    tasks: Vec<JoinHandle<()>>,
    delivery: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Running {
    /// Puts the platform together over `store` and starts its background work
    /// (segment maintenance, the journey runner, the insights reader, the outbox worker,
    /// the retention job).
    pub async fn start(
        store: Arc<dyn Store>,
        blueprint: Blueprint,
    ) -> Result<Running, AssembleError> {
        let log: Arc<dyn EventLog> = store.clone();
        let decisions: Arc<dyn DecisionLog> = store.clone();
        let ReadSide {
            identity,
            touchpoints,
            reports,
        } = ReadSide::open(log.clone(), &blueprint).await?;
        let policies = Live::new(blueprint.policies.clone());
        let suppressions =
            crate::erasure::suppressions(store.as_ref(), &blueprint.identity).await?;
        let intake = Intake::new(log.clone())
            .with_suppressions(suppressions)
            .with_touchpoint_channels(touchpoints.channels())
            .with_observer(identity.clone());
        let messages = Messages::open(
            identity.clone(),
            blueprint.public_url.clone(),
            &messages_of(&blueprint),
        )
        .await
        .map_err(failed("messages"))?;
        let journeys = Journeys::open(
            identity.clone(),
            intake.clone(),
            store.clone(),
            decisions.clone(),
            policies.clone(),
            messages.clone(),
            &blueprint.journeys,
        )
        .await
        .map_err(failed("journeys"))?;
        let broadcast_fallbacks = BroadcastFallbacks::open(
            identity.clone(),
            store.clone(),
            decisions.clone(),
            policies.clone(),
            messages.clone(),
        )
        .await
        .map_err(failed("broadcast fallbacks"))?;
        let engagement = Arc::new(
            Engagement::new(identity.clone(), decisions.clone(), policies.clone())
                .with_fallbacks(broadcast_fallbacks.clone()),
        );
        let insights = Insights::open(
            identity.clone(),
            decisions.clone(),
            &blueprint.subscriptions,
            destinations(&blueprint),
        )
        .await
        .map_err(failed("subscriptions"))?;
        let intake = intake
            .with_wakeup({
                let journeys = journeys.clone();
                Arc::new(move || journeys.nudge())
            })
            .with_wakeup({
                let fallbacks = broadcast_fallbacks.clone();
                Arc::new(move || fallbacks.nudge())
            })
            .with_wakeup({
                let insights = insights.clone();
                Arc::new(move || insights.nudge())
            });
        let segments = Segments::open_with_clock(
            identity.clone(),
            intake.clone(),
            &blueprint.segments,
            blueprint.clock.clone(),
        )
        .await
        .map_err(failed("segments"))?;
        let recorder = Recorder::new(identity.clone(), intake.clone());
        let delivery = Arc::new(
            Dispatcher::new(
                &blueprint.delivery,
                unavoce_delivery::Platform {
                    outbox: store.clone(),
                    identity: identity.clone(),
                    messages: messages.clone(),
                    recorder: recorder.clone(),
                    policies: policies.clone(),
                    decisions: decisions.clone(),
                    leases: store.clone(),
                },
                &blueprint.public_url,
            )
            .map_err(failed("delivery"))?,
        );
        let (stop, stopping) = watch::channel(false);
        let worker = delivery.clone();
        let delivery_task = tokio::spawn(async move {
            if let Err(e) = worker.run(stopping).await {
                tracing::error!(error = %Redacted(&e), "the outbox worker could not start");
            }
        });
        let erasing: Arc<dyn Erasing> = store.clone();
        let retention = Arc::new(Retention::new(
            blueprint.retention.clone(),
            erasing.clone(),
            identity.clone(),
        ));
        // Single-writer work, each done by the one node holding its lease; every node
        // keeps its own projections.
        let leases: Arc<dyn Leases> = store.clone();
        let tasks = vec![
            leased(
                leases.clone(),
                "segments",
                resuming(&segments, |s| async move { s.resume().await }),
                starting(&segments, |s| s.maintain()),
            ),
            leased(
                leases.clone(),
                "journeys",
                resuming(&journeys, |j| async move { j.resume().await }),
                starting(&journeys, |j| j.run()),
            ),
            leased(
                leases.clone(),
                "broadcast-fallbacks",
                resuming(&broadcast_fallbacks, |f| async move { f.resume().await }),
                starting(&broadcast_fallbacks, |f| f.run()),
            ),
            leased(
                leases.clone(),
                "insights",
                resuming(&insights, |i| async move { i.resume().await }),
                starting(&insights, |i| i.run()),
            ),
            leased(
                leases,
                "retention",
                Arc::new(|| Box::pin(async { Ok(()) })),
                starting(&retention, |r| r.clone().run()),
            ),
            identity.rebuild_when_asked(),
            identity.snapshot_when_due(SNAPSHOT_LOOK_EVERY, SNAPSHOT_AFTER_EVENTS),
        ];
        Ok(Running {
            platform: Platform {
                identity,
                intake,
                recorder,
                segments,
                journeys,
                messages,
                insights,
                touchpoints,
                reports,
                engagement,
                broadcast_fallbacks,
                policies,
                decisions,
                delivery,
                governance: store.clone(),
                journey_runs: store.clone(),
                erasing,
                retention,
                changes: tokio::sync::broadcast::Sender::new(64),
            },
            tasks,
            delivery: delivery_task,
            stop,
        })
    }

    /// Stops the background work; attempts under way finish first.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.stop.send(true);
        let _ = self.delivery.await;
        self.platform.identity.stop();
    }
}
