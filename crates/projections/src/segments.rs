//! Segments: audiences kept current as events arrive.
//!
//! A segment is a named audience expression. Whenever a profile's state changes (an
//! event of theirs, a merge, an unmerge), the segments are evaluated for that profile
//! alone; when the result differs from the membership on record, the change is recorded
//! as an event of that person — `Segment Entered` or `Segment Exited`, source
//! `segments` — through the intake like any other. Membership is therefore part of the
//! log: the profile state reads it back (`ProfileState::in_segment`), a restart
//! resumes exactly, journeys can trigger on it and the timeline shows it.
//!
//! Time alone can also change a membership (a 30-day count falls as days pass, a
//! customer lapses after 180 days): segments whose expression reads computed traits or
//! the lifecycle stage are also re-evaluated for everyone every
//! [`TIME_SWEEP`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use unavoce_core::redact::Redacted;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use unavoce_core::audience::{Audience, AudienceError};
use unavoce_core::identity::ProfileId;
use unavoce_core::platform_events::{self, SEGMENT_SOURCE};
use unavoce_core::profile::ProfileState;
use unavoce_intake::Intake;

use crate::Recorder;
use unavoce_store::StoreError;

use crate::IdentityProjection;
use crate::catalog::{
    Catalog, CatalogError, ChangeError, Configured, Definition, Edit, Entry, History, Revision,
    Status,
};
use crate::clock::{Clock, SystemClock};

/// Membership changes recorded per append.
const CHANGES_PER_APPEND: usize = 500;
/// Profiles evaluated per read lock of the projection.
const PROFILES_PER_LOCK: usize = 2_000;
/// How often segments that depend on time are re-evaluated for everyone.
pub const TIME_SWEEP: Duration = Duration::from_secs(3_600);

/// A segment as defined in the config file or through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentDefinition {
    pub name: String,
    /// An audience expression (`unavoce_core::audience`).
    pub expression: String,
    #[serde(default)]
    pub description: Option<String>,
}

impl SegmentDefinition {
    /// Checks the name and the expression.
    pub fn validate(&self) -> Result<(), SegmentError> {
        compile(self.clone()).map(|_| ())
    }
}

/// Why a segment cannot be defined.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error(
        "segment name {0:?} is not usable: use 1 to 64 letters, digits, '-' or '_', starting with a letter"
    )]
    BadName(String),
    #[error("segment {name:?}: {source}")]
    BadExpression {
        name: String,
        #[source]
        source: AudienceError,
    },
    #[error("segment {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One segment, with how it came to be.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentInfo {
    #[serde(flatten)]
    pub definition: SegmentDefinition,
    /// `config` or `api`.
    pub origin: &'static str,
    /// The version in force (0 for the config file's).
    pub version: u32,
    /// `active`, `paused` (membership held as it is) or `retired` (no members).
    pub status: Status,
    /// People in the segment, as recorded.
    pub size: usize,
    /// Profiles the expression could not be evaluated for at their last change
    /// (counted as outside).
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A segment as compiled: its definition and its audience expression.
pub struct Segment {
    definition: SegmentDefinition,
    audience: Audience,
    /// Whether the expression reads something time changes (computed traits, stage,
    /// the age of open cases).
    time_dependent: bool,
    /// Profiles it could not be evaluated for, and the last reason.
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Segment {
    fn failed(&self, why: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

impl Definition for Segment {
    type Item = Segment;
    type Config = SegmentDefinition;
    type Error = SegmentError;
    const SETTING: &'static str = "engagement.segments";

    fn name(config: &SegmentDefinition) -> &str {
        &config.name
    }
    fn compile(config: SegmentDefinition) -> Result<Self, SegmentError> {
        compile(config)
    }
    fn config(segment: &Segment) -> &SegmentDefinition {
        &segment.definition
    }
}

impl From<CatalogError<SegmentError>> for SegmentError {
    fn from(e: CatalogError<SegmentError>) -> Self {
        match e {
            CatalogError::Invalid(e) => e,
            CatalogError::Exists(name) => SegmentError::Exists(name),
            CatalogError::Store(e) => SegmentError::Store(e),
        }
    }
}

/// Who an edit of a segment would move, had it been made at the time asked.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentPreview {
    pub segment: String,
    /// People outside who would enter, and people inside who would leave.
    pub entering: usize,
    pub leaving: usize,
    /// The first of each (profile order), up to the limit asked.
    pub entering_sample: Vec<ProfileId>,
    pub leaving_sample: Vec<ProfileId>,
    /// People the new expression could not be evaluated for (counted as outside).
    pub errors: usize,
}

/// A membership change to record.
struct Change {
    profile: ProfileId,
    segment: String,
    entered: bool,
    /// The identifier the event is recorded under: (`userId` or `anonymousId`, value).
    identity: (&'static str, String),
    /// The profile's last event, which makes the message id unique and retry-safe.
    basis: i64,
}

/// The segments and their maintenance.
pub struct Segments {
    identity: Arc<IdentityProjection>,
    recorder: Recorder,
    segments: Catalog<Segment>,
    /// Changes appended but not yet seen in the profile state, so they are not recorded
    /// twice: (profile, segment) → entered.
    in_flight: Mutex<HashMap<(ProfileId, String), bool>>,
    /// Profiles to evaluate again (a failed append, a new segment).
    retry: Mutex<Vec<ProfileId>>,
    /// The time audiences are evaluated at, and when sweeps are due.
    clock: Arc<dyn Clock>,
}

impl Segments {
    /// The segments of the config file and those defined earlier through the API.
    /// Fails on a definition that does not hold (the config's are checked at start).
    pub async fn open(
        identity: Arc<IdentityProjection>,
        intake: Intake,
        configured: &[SegmentDefinition],
    ) -> Result<Arc<Self>, SegmentError> {
        Self::open_with_clock(identity, intake, configured, Arc::new(SystemClock)).await
    }

    /// As [`Self::open`], evaluating at the times `clock` tells.
    pub async fn open_with_clock(
        identity: Arc<IdentityProjection>,
        intake: Intake,
        configured: &[SegmentDefinition],
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, SegmentError> {
        let segments = Catalog::open(&**identity.log(), configured).await?;
        Ok(Arc::new(Segments {
            recorder: Recorder::new(identity.clone(), intake),
            identity,
            segments,
            in_flight: Mutex::new(HashMap::new()),
            retry: Mutex::new(Vec::new()),
            clock,
        }))
    }

    /// Takes the segments over from whoever kept them before (another node, or this one
    /// before it lost its lease): reads the log up to its end, so their membership
    /// events are in the profiles, then evaluates every profile at the next update.
    pub async fn resume(&self) -> Result<(), SegmentError> {
        self.identity.catch_up().await?;
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.retry.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.identity.mark_all_changed();
        Ok(())
    }

    /// Keeps the segments current on a task of its own: evaluates the profiles that
    /// changed as the projection reports them, and sweeps time-dependent segments.
    /// Must be called inside a Tokio runtime.
    pub fn maintain(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let segments = self.clone();
        tokio::spawn(async move {
            let sweep_every = SignedDuration::try_from(TIME_SWEEP).unwrap_or(SignedDuration::ZERO);
            let mut last_sweep = segments.clock.now();
            loop {
                if let Err(e) = segments.update(segments.clock.now()).await {
                    tracing::warn!(error = %Redacted(&e), "segments could not be updated; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                let sweep_due = last_sweep + sweep_every;
                tokio::select! {
                    _ = segments.identity.changed() => {}
                    () = segments.clock.sleep_until(sweep_due) => {
                        last_sweep = segments.clock.now();
                        segments.sweep_time_dependent();
                    }
                }
            }
        })
    }

    /// Evaluates every segment for the profiles changed since the last update (all of
    /// them the first time) and records the membership changes. Returns how many
    /// changes were recorded.
    pub async fn update(&self, now: Timestamp) -> Result<usize, SegmentError> {
        let mut profiles = self.identity.take_changed();
        profiles.append(&mut self.retry.lock().unwrap_or_else(|e| e.into_inner()));
        profiles.sort_unstable();
        profiles.dedup();
        let mut recorded = 0;
        for chunk in profiles.chunks(PROFILES_PER_LOCK) {
            let changes = self.evaluate(chunk, now);
            for batch in changes.chunks(CHANGES_PER_APPEND) {
                match self.record(batch, now).await {
                    Ok(()) => recorded += batch.len(),
                    Err(e) => {
                        self.forget_in_flight(batch);
                        self.retry
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(batch.iter().map(|c| c.profile));
                        return Err(e);
                    }
                }
            }
        }
        Ok(recorded)
    }

    /// Segments and their membership changes for `profiles` at `now`.
    fn evaluate(&self, profiles: &[ProfileId], now: Timestamp) -> Vec<Change> {
        let segments = self.segments.all();
        if segments.is_empty() {
            return Vec::new();
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let computed = self.identity.computed_traits().clone();
        let empty = ProfileState::default();
        self.identity.read_people(|graph, people| {
            let mut changes = Vec::new();
            for id in profiles {
                // A profile merged away is evaluated as the profile it joined.
                let Some(node) = graph.profile(*id).filter(|n| n.id == *id) else {
                    continue;
                };
                let state = people.get(id).map_or(&empty, |s| s);
                let facts = state.facts(&computed, now);
                for entry in &segments {
                    let segment = &entry.item;
                    let name = &segment.definition.name;
                    let member = match entry.status {
                        // Held as it is: nobody enters or leaves.
                        Status::Paused => continue,
                        // Everyone leaves; nobody enters.
                        Status::Retired => false,
                        Status::Active => match segment.audience.matches(&facts) {
                            Ok(member) => member,
                            Err(e) => {
                                segment.failed(e.to_string());
                                false
                            }
                        },
                    };
                    let key = (*id, name.clone());
                    let on_record = state.in_segment(name);
                    let recorded = match in_flight.get(&key) {
                        Some(pending) if *pending != on_record => *pending,
                        Some(_) => {
                            in_flight.remove(&key);
                            on_record
                        }
                        None => on_record,
                    };
                    if member == recorded {
                        continue;
                    }

                    let Some(identity) = self.identity.event_identity(node) else {
                        segment.failed(format!(
                            "profile {id} has no user id or anonymous id to record membership under"
                        ));
                        continue;
                    };
                    in_flight.insert(key, member);
                    changes.push(Change {
                        profile: *id,
                        segment: name.clone(),
                        entered: member,
                        identity,
                        basis: node.last_event().unwrap_or(id.0),
                    });
                }
            }
            changes
        })
    }

    /// Appends membership changes as events.
    async fn record(&self, changes: &[Change], now: Timestamp) -> Result<(), SegmentError> {
        let messages = changes
            .iter()
            .map(|c| {
                let mut message = platform_events::segment_change(&c.segment, c.entered);
                message.insert(c.identity.0.into(), c.identity.1.clone().into());
                message.insert(
                    "messageId".into(),
                    format!(
                        "segment:{}:{}:{}:{}",
                        c.segment,
                        c.profile,
                        if c.entered { "entered" } else { "exited" },
                        c.basis
                    )
                    .into(),
                );
                message.insert("timestamp".into(), now.to_string().into());
                if let Some(Value::Object(properties)) = message.get_mut("properties") {
                    properties.insert("profile_id".into(), json!(c.profile));
                }
                message
            })
            .collect();
        let report = self
            .recorder
            .record(SEGMENT_SOURCE, messages, json!({"segments": true}))
            .await?;
        if let Some(rejected) = report.rejected.first() {
            tracing::warn!(code = ?rejected.code, "a segment membership change was quarantined");
        }
        Ok(())
    }

    fn forget_in_flight(&self, changes: &[Change]) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for c in changes {
            in_flight.remove(&(c.profile, c.segment.clone()));
        }
    }

    /// Queues every profile for evaluation when a segment depends on time.
    fn sweep_time_dependent(&self) {
        let any = self.segments.all().iter().any(|e| e.item.time_dependent);
        if any {
            self.queue_everyone();
        }
    }

    fn queue_everyone(&self) {
        let everyone: Vec<ProfileId> = self
            .identity
            .read(|graph| graph.profiles_after(None).map(|n| n.id).collect());
        self.retry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(everyone);
    }

    /// Another node changed the shared setting `name` (`None`: any, perhaps): when it is the segments'
    /// definitions, reads them again and has everyone evaluated at the next update.
    pub async fn take_in_setting(&self, name: Option<&str>) -> Result<(), StoreError> {
        if name.is_none_or(|name| name == <Segment as Definition>::SETTING) {
            self.segments.reload(&**self.identity.log()).await?;
            self.identity.mark_all_changed();
            self.identity.nudge();
        }
        Ok(())
    }

    /// Checks a config file's segments, read again; every one must hold.
    pub fn check(configured: &[SegmentDefinition]) -> Result<Configured<Segment>, SegmentError> {
        Ok(Catalog::check(configured)?)
    }

    /// Puts a config file's segments, read again and checked, in force: everyone is
    /// evaluated again by the maintenance task (members of a segment the file no longer
    /// has keep their last membership, as after a restart).
    pub fn reconfigure(&self, configured: Configured<Segment>) {
        self.segments.reconfigure(configured);
        self.queue_everyone();
        self.identity.nudge();
    }

    /// Defines a segment through the API: checked, stored, then evaluated for everyone
    /// by the maintenance task.
    pub async fn define(
        &self,
        definition: SegmentDefinition,
        edit: Edit<'_>,
    ) -> Result<(), SegmentError> {
        self.segments
            .define(&**self.identity.log(), definition, edit)
            .await?;
        self.queue_everyone();
        self.identity.nudge();
        Ok(())
    }

    /// Makes `definition` the segment's new version: everyone is evaluated again under
    /// it by the maintenance task.
    pub async fn revise(
        &self,
        definition: SegmentDefinition,
        edit: Edit<'_>,
    ) -> Result<Revision<Segment>, ChangeError<SegmentError>> {
        let revision = self
            .segments
            .revise(&**self.identity.log(), definition, edit)
            .await?;
        if !revision.changes.is_empty() {
            self.queue_everyone();
            self.identity.nudge();
        }
        Ok(revision)
    }

    /// Pauses (membership held), resumes or retires (everyone leaves) a segment; the
    /// status it had.
    pub async fn set_status(
        &self,
        name: &str,
        status: Status,
        edit: Edit<'_>,
    ) -> Result<Status, ChangeError<SegmentError>> {
        let was = self
            .segments
            .set_status(&**self.identity.log(), name, status, edit)
            .await?;
        self.queue_everyone();
        self.identity.nudge();
        Ok(was)
    }

    /// The versions and changes of status of a segment defined through the API.
    pub fn versions(&self, name: &str) -> Option<History<SegmentDefinition>> {
        self.segments.history(name)
    }

    /// What `definition` would change in the segment, checked, nothing stored.
    pub fn check_revision(
        &self,
        definition: &SegmentDefinition,
    ) -> Result<Vec<unavoce_core::diff::FieldChange>, ChangeError<SegmentError>> {
        Ok(self.segments.check_revision(definition)?.1)
    }

    /// Who would enter and leave the segment if `definition` were its version at `now`
    /// (nothing is stored); up to `limit` of each are listed.
    pub fn preview(
        &self,
        definition: &SegmentDefinition,
        now: Timestamp,
        limit: usize,
    ) -> Result<SegmentPreview, ChangeError<SegmentError>> {
        let (segment, _) = self.segments.check_revision(definition)?;
        let name = &definition.name;
        let computed = self.identity.computed_traits().clone();
        let empty = ProfileState::default();
        Ok(self.identity.read_people(|graph, people| {
            let mut preview = SegmentPreview {
                segment: name.clone(),
                entering: 0,
                leaving: 0,
                entering_sample: Vec::new(),
                leaving_sample: Vec::new(),
                errors: 0,
            };
            for node in graph.profiles_after(None) {
                let state = people.get(&node.id).map_or(&empty, |s| s);
                let member = segment
                    .audience
                    .matches(&state.facts(&computed, now))
                    .unwrap_or_else(|_| {
                        preview.errors += 1;
                        false
                    });
                let (count, sample) = match (state.in_segment(name), member) {
                    (false, true) => (&mut preview.entering, &mut preview.entering_sample),
                    (true, false) => (&mut preview.leaving, &mut preview.leaving_sample),
                    _ => continue,
                };
                *count += 1;
                if sample.len() < limit {
                    sample.push(node.id);
                }
            }
            preview
        }))
    }

    /// Every segment, with its size.
    pub fn list(&self) -> Vec<SegmentInfo> {
        let segments = self.segments.all();
        let names: Vec<&str> = segments
            .iter()
            .map(|e| e.item.definition.name.as_str())
            .collect();
        let sizes = self.sizes(&names);
        segments
            .iter()
            .zip(sizes)
            .map(|(e, size)| info(e, size))
            .collect()
    }

    /// One segment, with its size.
    pub fn get(&self, name: &str) -> Option<SegmentInfo> {
        let segment = self.segments.get(name)?;
        let size = self.sizes(&[name])[0];
        Some(info(&segment, size))
    }

    /// The members of a segment as recorded, in profile order, after `after`.
    pub fn members(&self, name: &str, after: Option<ProfileId>, limit: usize) -> Vec<ProfileId> {
        self.identity.read_people(|graph, people| {
            graph
                .profiles_after(after)
                .filter(|n| people.get(&n.id).is_some_and(|s| s.in_segment(name)))
                .map(|n| n.id)
                .take(limit)
                .collect()
        })
    }

    fn sizes(&self, names: &[&str]) -> Vec<usize> {
        self.identity.read_people(|_, people| {
            names
                .iter()
                .map(|name| people.values().filter(|s| s.in_segment(name)).count())
                .collect()
        })
    }
}

fn info(entry: &Entry<Segment>, size: usize) -> SegmentInfo {
    let segment = &entry.item;
    SegmentInfo {
        definition: segment.definition.clone(),
        origin: entry.origin,
        version: entry.version,
        status: entry.status,
        size,
        errors: segment.errors.load(Ordering::Relaxed),
        last_error: segment
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }
}

/// Checks a definition.
fn compile(definition: SegmentDefinition) -> Result<Segment, SegmentError> {
    if !unavoce_core::is_valid_name(&definition.name) {
        return Err(SegmentError::BadName(definition.name));
    }
    let audience =
        Audience::parse(&definition.expression).map_err(|source| SegmentError::BadExpression {
            name: definition.name.clone(),
            source,
        })?;
    let time_dependent = audience
        .variables()
        .iter()
        .any(|v| matches!(*v, "computed" | "stage" | "open_case_hours"));
    Ok(Segment {
        definition,
        audience,
        time_dependent,
        errors: AtomicU64::new(0),
        last_error: Mutex::new(None),
    })
}
