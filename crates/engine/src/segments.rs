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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};
use unavoce_core::audience::{Audience, AudienceError};
use unavoce_core::identity::ProfileId;
use unavoce_core::profile::{ProfileState, SEGMENT_ENTERED, SEGMENT_EXITED, SEGMENT_SOURCE};
use unavoce_intake::{Intake, Item, ItemBody, Submission};
use unavoce_store::StoreError;

use crate::IdentityProjection;

/// Where segments defined through the API are kept.
const SEGMENTS_SETTING: &str = "engagement.segments";
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
        compile(self.clone(), "config").map(|_| ())
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
    /// People in the segment, as recorded.
    pub size: usize,
    /// Profiles the expression could not be evaluated for at their last change
    /// (counted as outside).
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

struct Segment {
    definition: SegmentDefinition,
    audience: Audience,
    origin: &'static str,
    /// Whether the expression reads something time changes (computed traits, stage).
    time_dependent: bool,
    errors: u64,
    last_error: Option<String>,
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
    intake: Intake,
    segments: RwLock<BTreeMap<String, Segment>>,
    /// Changes appended but not yet seen in the profile state, so they are not recorded
    /// twice: (profile, segment) → entered.
    in_flight: Mutex<HashMap<(ProfileId, String), bool>>,
    /// Profiles to evaluate again (a failed append, a new segment).
    retry: Mutex<Vec<ProfileId>>,
}

impl Segments {
    /// The segments of the config file and those defined earlier through the API.
    /// Fails on a definition that does not hold (the config's are checked at start).
    pub async fn open(
        identity: Arc<IdentityProjection>,
        intake: Intake,
        configured: &[SegmentDefinition],
    ) -> Result<Arc<Self>, SegmentError> {
        let mut segments = BTreeMap::new();
        for definition in configured {
            let segment = compile(definition.clone(), "config")?;
            if segments.contains_key(&definition.name) {
                return Err(SegmentError::Exists(definition.name.clone()));
            }
            segments.insert(definition.name.clone(), segment);
        }
        let stored: Vec<SegmentDefinition> = match identity.log().setting(SEGMENTS_SETTING).await? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => Vec::new(),
        };
        for definition in stored {
            match compile(definition.clone(), "api") {
                Ok(segment) if !segments.contains_key(&definition.name) => {
                    segments.insert(definition.name.clone(), segment);
                }
                Ok(_) => tracing::warn!(
                    segment = %definition.name,
                    "a segment defined through the API is now also in the config file; the config's definition is used"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "a stored segment no longer holds; it is not maintained")
                }
            }
        }
        Ok(Arc::new(Segments {
            identity,
            intake,
            segments: RwLock::new(segments),
            in_flight: Mutex::new(HashMap::new()),
            retry: Mutex::new(Vec::new()),
        }))
    }

    /// Keeps the segments current on a task of its own: evaluates the profiles that
    /// changed as the projection reports them, and sweeps time-dependent segments.
    /// Must be called inside a Tokio runtime.
    pub fn maintain(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let segments = self.clone();
        tokio::spawn(async move {
            let mut last_sweep = tokio::time::Instant::now();
            loop {
                if let Err(e) = segments.update(Timestamp::now()).await {
                    tracing::warn!(error = %e, "segments could not be updated; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                let sweep_due = last_sweep + TIME_SWEEP;
                tokio::select! {
                    _ = segments.identity.changed() => {}
                    _ = tokio::time::sleep_until(sweep_due) => {
                        last_sweep = tokio::time::Instant::now();
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
        let mut segments = self.segments.write().unwrap_or_else(|e| e.into_inner());
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
                let state = people.get(id).unwrap_or(&empty);
                let facts = state.facts(&computed, now);
                for (name, segment) in segments.iter_mut() {
                    let member = match segment.audience.matches(&facts) {
                        Ok(member) => member,
                        Err(e) => {
                            segment.errors += 1;
                            segment.last_error = Some(e.to_string());
                            false
                        }
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
                        segment.errors += 1;
                        segment.last_error = Some(format!(
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
                        basis: node.events.last().copied().unwrap_or(id.0),
                    });
                }
            }
            changes
        })
    }

    /// Appends membership changes as events.
    async fn record(&self, changes: &[Change], now: Timestamp) -> Result<(), SegmentError> {
        let items = changes
            .iter()
            .map(|c| {
                let mut message = Map::new();
                message.insert(c.identity.0.into(), c.identity.1.clone().into());
                message.insert("type".into(), "track".into());
                let event = if c.entered {
                    SEGMENT_ENTERED
                } else {
                    SEGMENT_EXITED
                };
                message.insert("event".into(), event.into());
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
                message.insert(
                    "properties".into(),
                    json!({"segment": c.segment, "profile_id": c.profile}),
                );
                Item {
                    body: ItemBody::Parsed(message),
                    origin: json!({"segment": c.segment}),
                }
            })
            .collect();
        let report = self
            .intake
            .ingest(Submission {
                source: SEGMENT_SOURCE,
                received_at: now,
                endpoint_type: None,
                default_touchpoint: None,
                envelope: None,
                items,
            })
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
        let any = self
            .segments
            .read()
            .map(|s| s.values().any(|s| s.time_dependent))
            .unwrap_or(false);
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

    /// Defines a segment through the API: checked, stored, then evaluated for everyone
    /// by the maintenance task.
    pub async fn define(&self, definition: SegmentDefinition) -> Result<(), SegmentError> {
        let segment = compile(definition.clone(), "api")?;
        let stored: Vec<SegmentDefinition> = {
            let segments = self.segments.read().unwrap_or_else(|e| e.into_inner());
            if segments.contains_key(&definition.name) {
                return Err(SegmentError::Exists(definition.name));
            }
            segments
                .values()
                .filter(|s| s.origin == "api")
                .map(|s| s.definition.clone())
                .chain(std::iter::once(definition.clone()))
                .collect()
        };
        self.identity
            .log()
            .put_setting(
                SEGMENTS_SETTING,
                serde_json::to_value(&stored).unwrap_or_default(),
            )
            .await?;
        self.segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(definition.name, segment);
        self.queue_everyone();
        self.identity.nudge();
        Ok(())
    }

    /// Every segment, with its size.
    pub fn list(&self) -> Vec<SegmentInfo> {
        let segments = self.segments.read().unwrap_or_else(|e| e.into_inner());
        let names: Vec<&str> = segments.keys().map(String::as_str).collect();
        let sizes = self.sizes(&names);
        segments
            .values()
            .zip(sizes)
            .map(|(s, size)| info(s, size))
            .collect()
    }

    /// One segment, with its size.
    pub fn get(&self, name: &str) -> Option<SegmentInfo> {
        let segments = self.segments.read().unwrap_or_else(|e| e.into_inner());
        let segment = segments.get(name)?;
        let size = self.sizes(&[name])[0];
        Some(info(segment, size))
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

fn info(segment: &Segment, size: usize) -> SegmentInfo {
    SegmentInfo {
        definition: segment.definition.clone(),
        origin: segment.origin,
        size,
        errors: segment.errors,
        last_error: segment.last_error.clone(),
    }
}

/// Checks a definition.
fn compile(definition: SegmentDefinition, origin: &'static str) -> Result<Segment, SegmentError> {
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
        .any(|v| matches!(*v, "computed" | "stage"));
    Ok(Segment {
        definition,
        audience,
        origin,
        time_dependent,
        errors: 0,
        last_error: None,
    })
}
