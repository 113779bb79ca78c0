//! Customer insight routing: department subscriptions, evaluated on every event after
//! the identity projection has applied it. Each insight is recorded as a decision
//! (purpose [`INSIGHT_PURPOSE`]) with one outbox entry per destination, which the
//! delivery worker posts to the department's webhook or gathers into its digest.
//!
//! The reader's cursor is stored in the same transaction as the decisions it made, so
//! after a crash no insight is lost and none is raised twice.

use std::sync::Arc;
use std::time::Duration;
use unavoce_core::redact::Redacted;

use jiff::Timestamp;
use serde_json::json;
use unavoce_core::Event;
use unavoce_core::identity::{ProfileId, extract};
use unavoce_core::policy::Outcome;
use unavoce_core::profile::segment_change;
use unavoce_core::subscription::{
    Destination, Subscription, SubscriptionConfig, SubscriptionError,
};
use unavoce_store::{DecisionLog, EventLog, EventQuery, NewDecision, StoreError};

use unavoce_projections::IdentityProjection;
use unavoce_projections::catalog::{
    Catalog, CatalogError, ChangeError, Configured, Definition, Edit, Entry, History, Revision,
    Status,
};

/// The purpose of an insight's decision.
pub const INSIGHT_PURPOSE: &str = "insight";
const CURSOR_SETTING: &str = "engagement.insights.cursor";
const PAGE: usize = 2_000;

/// The catalog's kind for subscriptions.
pub struct SubscriptionKind;

impl Definition for SubscriptionKind {
    type Item = Subscription;
    type Config = SubscriptionConfig;
    type Error = SubscriptionError;
    const SETTING: &'static str = "engagement.subscriptions";

    fn name(config: &SubscriptionConfig) -> &str {
        &config.name
    }
    fn compile(config: SubscriptionConfig) -> Result<Subscription, SubscriptionError> {
        Subscription::new(config)
    }
    fn config(item: &Subscription) -> &SubscriptionConfig {
        &item.config
    }
}

/// Why a subscription cannot be defined.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionDefinitionError {
    #[error(transparent)]
    Invalid(#[from] SubscriptionError),
    #[error("subscription {name:?}: {problem}")]
    Destination { name: String, problem: String },
    #[error("subscription {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CatalogError<SubscriptionError>> for SubscriptionDefinitionError {
    fn from(e: CatalogError<SubscriptionError>) -> Self {
        match e {
            CatalogError::Invalid(e) => Self::Invalid(e),
            CatalogError::Exists(name) => Self::Exists(name),
            CatalogError::Store(e) => Self::Store(e),
        }
    }
}

/// Where insights can go on this installation.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    /// The named webhooks configured.
    pub webhooks: Vec<String>,
    /// Whether e-mail can be sent (digests need it).
    pub email: bool,
}

impl Destinations {
    fn check(&self, config: &SubscriptionConfig) -> Result<(), SubscriptionDefinitionError> {
        let fail = |problem: String| SubscriptionDefinitionError::Destination {
            name: config.name.clone(),
            problem,
        };
        if let Some(webhook) = &config.webhook
            && !self.webhooks.contains(webhook)
        {
            return Err(fail(format!(
                "there is no webhook {webhook:?} under [delivery.webhooks]{}",
                if self.webhooks.is_empty() {
                    String::new()
                } else {
                    format!(" (there are: {})", self.webhooks.join(", "))
                }
            )));
        }
        if config.digest.is_some() && !self.email {
            return Err(fail(
                "a digest needs e-mail: configure [delivery.email]".into(),
            ));
        }
        Ok(())
    }
}

/// The department subscriptions and their reader.
pub struct Insights {
    identity: Arc<IdentityProjection>,
    decisions: Arc<dyn DecisionLog>,
    catalog: Catalog<SubscriptionKind>,
    destinations: std::sync::RwLock<Destinations>,
    cursor: tokio::sync::Mutex<Cursor>,
    wake: tokio::sync::Notify,
}

struct Cursor {
    at: i64,
    saved: Option<std::time::Instant>,
}

impl Insights {
    /// The config file's subscriptions (their destinations must exist) and those
    /// defined through the API.
    pub async fn open(
        identity: Arc<IdentityProjection>,
        decisions: Arc<dyn DecisionLog>,
        configured: &[SubscriptionConfig],
        destinations: Destinations,
    ) -> Result<Arc<Self>, SubscriptionDefinitionError> {
        for config in configured {
            destinations.check(config)?;
        }
        let log = identity.log().clone();
        let catalog = Catalog::open(&*log, configured).await?;
        let destinations = std::sync::RwLock::new(destinations);
        let at = stored_cursor(&*log).await?;
        Ok(Arc::new(Insights {
            identity,
            decisions,
            catalog,
            destinations,
            cursor: tokio::sync::Mutex::new(Cursor { at, saved: None }),
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// Takes the insights over from whoever raised them before (another node, or this
    /// one before it lost its lease): from the position they stored.
    pub async fn resume(&self) -> Result<(), StoreError> {
        let at = stored_cursor(&**self.identity.log()).await?;
        *self.cursor.lock().await = Cursor { at, saved: None };
        Ok(())
    }

    /// Another node changed the shared setting `name` (`None`: any, perhaps): when it is the subscriptions'
    /// definitions, reads them again.
    pub async fn take_in_setting(&self, name: Option<&str>) -> Result<(), StoreError> {
        if name.is_none_or(|name| name == <SubscriptionKind as Definition>::SETTING) {
            self.catalog.reload(&**self.identity.log()).await?;
        }
        Ok(())
    }

    /// Checks a config file's subscriptions, read again, against the destinations it
    /// configures; every one must hold.
    pub fn check(
        configured: &[SubscriptionConfig],
        destinations: &Destinations,
    ) -> Result<Configured<SubscriptionKind>, SubscriptionDefinitionError> {
        for config in configured {
            destinations.check(config)?;
        }
        Ok(Catalog::check(configured)?)
    }

    /// Puts a config file's subscriptions and destinations, read again and checked, in
    /// force from the next event on.
    pub fn reconfigure(
        &self,
        configured: Configured<SubscriptionKind>,
        destinations: Destinations,
    ) {
        *self.destinations.write().unwrap_or_else(|e| e.into_inner()) = destinations;
        self.catalog.reconfigure(configured);
        self.nudge();
    }

    /// Defines a subscription through the API: checked, stored, and in force from the
    /// next event on.
    pub async fn define(
        &self,
        config: SubscriptionConfig,
        edit: Edit<'_>,
    ) -> Result<(), SubscriptionDefinitionError> {
        (self.destinations.read())
            .unwrap_or_else(|e| e.into_inner())
            .check(&config)?;
        self.catalog
            .define(&**self.identity.log(), config, edit)
            .await?;
        Ok(())
    }

    /// What `config` would change in the subscription, checked (its destination too),
    /// nothing stored.
    pub fn check_revision(
        &self,
        config: &SubscriptionConfig,
    ) -> Result<Vec<unavoce_core::diff::FieldChange>, ChangeError<SubscriptionDefinitionError>>
    {
        (self.destinations.read())
            .unwrap_or_else(|e| e.into_inner())
            .check(config)
            .map_err(ChangeError::Invalid)?;
        let (_, changes) =
            (self.catalog.check_revision(config)).map_err(|e| e.map_invalid(Into::into))?;
        Ok(changes)
    }

    /// Makes `config` the subscription's new version, in force from the next event on.
    pub async fn revise(
        &self,
        config: SubscriptionConfig,
        edit: Edit<'_>,
    ) -> Result<Revision<Subscription>, ChangeError<SubscriptionDefinitionError>> {
        self.check_revision(&config)?;
        self.catalog
            .revise(&**self.identity.log(), config, edit)
            .await
            .map_err(|e| e.map_invalid(Into::into))
    }

    /// Pauses, resumes or retires a subscription (a paused or retired one raises
    /// nothing); the status it had.
    pub async fn set_status(
        &self,
        name: &str,
        status: Status,
        edit: Edit<'_>,
    ) -> Result<Status, ChangeError<SubscriptionDefinitionError>> {
        self.catalog
            .set_status(&**self.identity.log(), name, status, edit)
            .await
            .map_err(|e| e.map_invalid(Into::into))
    }

    /// The versions and changes of status of a subscription defined through the API.
    pub fn versions(&self, name: &str) -> Option<History<SubscriptionConfig>> {
        self.catalog.history(name)
    }

    /// Every subscription, with where it was defined (`config` or `api`), its version
    /// and status.
    pub fn list(&self) -> Vec<Entry<Subscription>> {
        self.catalog.all()
    }

    /// One subscription.
    pub fn get(&self, name: &str) -> Option<Entry<Subscription>> {
        self.catalog.get(name)
    }

    /// Reads new events on a task of its own, as they are stored (and every second).
    pub fn run(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let insights = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = insights.step(Timestamp::now()).await {
                    tracing::warn!(error = %Redacted(&e), "insights could not be raised; retrying");
                }
                tokio::select! {
                    _ = insights.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    }

    /// Raises the insights of every event stored since the last step.
    pub async fn step(&self, now: Timestamp) -> Result<(), StoreError> {
        let mut cursor = self.cursor.lock().await;
        loop {
            // A paused or retired subscription raises nothing.
            let subscriptions: Vec<Arc<Subscription>> = (self.catalog.all().into_iter())
                .filter(Entry::is_active)
                .map(|e| e.item)
                .collect();
            if subscriptions.is_empty() {
                // Nothing to raise, and no reason to make the identity projection
                // catch up here, on this thread.
                cursor.at = *self.identity.log().committed().borrow();
                return Ok(());
            }
            let applied = self.identity.catch_up().await?;
            if cursor.at >= applied {
                return Ok(());
            }
            let page = self
                .identity
                .log()
                .events(EventQuery {
                    after_seq: Some(cursor.at),
                    limit: PAGE,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.events.last().map(|e| e.seq.min(applied)) else {
                return Ok(());
            };
            let now = Timestamp::now().max(now);
            let mut decisions = Vec::new();
            for stored in page.events.iter().filter(|e| e.seq <= applied) {
                self.raise(
                    &subscriptions,
                    stored.seq,
                    &stored.event,
                    now,
                    &mut decisions,
                );
            }
            if decisions.is_empty() {
                let due = cursor
                    .saved
                    .is_none_or(|at| at.elapsed() > Duration::from_secs(5));
                if due {
                    self.identity
                        .log()
                        .put_setting(CURSOR_SETTING, json!(last))
                        .await?;
                    cursor.saved = Some(std::time::Instant::now());
                }
            } else {
                self.decisions
                    .record_decisions_with_setting(decisions, CURSOR_SETTING, json!(last))
                    .await?;
                cursor.saved = Some(std::time::Instant::now());
            }
            cursor.at = last;
        }
    }

    /// The insights one event raises.
    fn raise(
        &self,
        subscriptions: &[Arc<Subscription>],
        seq: i64,
        event: &Event,
        now: Timestamp,
        decisions: &mut Vec<NewDecision>,
    ) {
        let Some(profile) = self.profile_of(event) else {
            return;
        };
        let change = segment_change(event);
        let entered = change.and_then(|(s, entered)| entered.then_some(s));
        let (facts, _) = self.identity.person(profile, now);
        for subscription in subscriptions {
            match subscription.fires(event, entered, &facts) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(subscription = subscription.name(), error = %Redacted(&e), "a subscription could not be evaluated");
                    continue;
                }
            }
            let c = &subscription.config;
            let detail = c
                .description
                .clone()
                .unwrap_or_else(|| match (&c.when, &c.segment) {
                    (Some(when), _) => {
                        format!("{} ({when})", event.name.as_deref().unwrap_or("event"))
                    }
                    (_, Some(segment)) => format!("entered segment {segment}"),
                    _ => String::new(),
                });
            for destination in subscription.destinations() {
                let send_at = match &destination {
                    Destination::Digest(_) => subscription.digest_at(now),
                    Destination::Webhook(_) => now,
                };
                let mut why = json!({
                    "code": "subscription",
                    "department": c.department,
                    "detail": detail,
                    "event": event.name.clone().unwrap_or_else(|| event.event_type.as_str().to_string()),
                    "event_seq": seq,
                    "event_at": event.timestamp,
                });
                if let Destination::Digest(to) = &destination {
                    why["digest_to"] = to.clone().into();
                }
                decisions.push(NewDecision {
                    profile_id: profile,
                    message: subscription.name().to_string(),
                    purpose: INSIGHT_PURPOSE.into(),
                    channel: destination.channel(),
                    journey: None,
                    broadcast: None,
                    decided_at: now,
                    outcome: Outcome::Send,
                    send_at: Some(send_at),
                    reasons: json!([why]),
                });
            }
        }
    }

    fn profile_of(&self, event: &Event) -> Option<ProfileId> {
        let set = extract(event, &self.identity.rules());
        self.identity
            .read(|g| set.keys.iter().find_map(|k| g.lookup(k).map(|n| n.id)))
    }
}

impl Insights {
    /// Wakes the reader (new events were stored).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }
}

/// Where the insights reader stopped, as stored; the end of the log at a first start
/// (insights about what happens from now on).
async fn stored_cursor(log: &dyn EventLog) -> Result<i64, StoreError> {
    let now = *log.committed().borrow();
    Ok(log
        .setting_or_insert(CURSOR_SETTING, json!(now))
        .await?
        .as_i64()
        .unwrap_or(0))
}
