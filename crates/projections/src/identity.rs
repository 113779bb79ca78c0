//! The identity projection: the identity graph over the whole log.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use unavoce_core::redact::Redacted;

use jiff::Timestamp;
use serde_json::{Value, json};
use unavoce_core::analytics::{AnalyticsRules, InteractionTable};
use unavoce_core::identity::graph::{ProfileNode, RemovedProfile};
use unavoce_core::identity::{
    IdKey, IdentifierSet, IdentityGraph, IdentityRules, ProfileId, Resolution, UnmergeRule,
};
use unavoce_core::live::Live;
use unavoce_core::profile::{ComputedTrait, ProfileFacts, ProfileState};
use unavoce_core::rows::RowStore;
use unavoce_core::{Event, Identifier};
use unavoce_store::{EventLog, StoreError};

mod pipeline;

use pipeline::{Helper, PAGE, Prepared, prepare, read_page};

use crate::forked;
use crate::mapped::MappedRows;
use crate::snapshot;

/// Where the unmerge rules are kept.
const UNMERGE_RULES: &str = "identity.unmerge_rules";
/// Where decisions to link profiles are kept.
const LINK_DECISIONS: &str = "identity.link_decisions";

/// A decision to link two profiles (a reviewed or automatic probabilistic match), taken
/// after log position `after_seq` and replayed there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkDecision {
    pub a: Identifier,
    pub b: Identifier,
    pub after_seq: i64,
    pub at: Timestamp,
    /// `review` or `automatic`.
    pub by: String,
    pub probability: Option<f64>,
}

/// Why a link could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0} is not a usable identifier")]
    UnknownIdentifier(Identifier),
    #[error(transparent)]
    Refused(#[from] unavoce_core::identity::LinkRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long no erasure must have come before the projections are rebuilt after one.
const REBUILD_QUIET: Duration = Duration::from_secs(2);
/// How long after an erasure the projections are rebuilt at the latest, however many
/// follow it.
const REBUILD_AT_THE_LATEST: Duration = Duration::from_secs(300);

/// Rounds a rebuild replays without holding the projection, each up to what was
/// committed when it began.
const REBUILD_ROUNDS: usize = 3;

/// Pushed events held at most (being prepared or waiting to be applied); past that they
/// are dropped and read back from the log, so a projection that falls behind costs no
/// unbounded memory (about 2 KB an event: 145 MiB more at the peak of `bench ingest`
/// than with 20,000, and no event read and parsed twice).
const PUSHED_MAX: usize = 100_000;

/// How long the follower waits for a push before it reads the log.
const IDLE_WAIT: Duration = Duration::from_secs(2);

/// How long the follower waits for the push that fills a gap before it reads the log.
const GAP_WAIT: Duration = Duration::from_millis(100);

/// Events applied under one hold of the state's lock.
const APPLIED_AT_ONCE: usize = 1_000;

/// Why an unmerge could not be done.
#[derive(Debug, thiserror::Error)]
pub enum UnmergeError {
    #[error("profile {0} does not exist")]
    NoSuchProfile(ProfileId),
    #[error("{0} is not an identifier type this platform resolves, or not a usable value")]
    UnknownIdentifier(Identifier),
    #[error("profile {profile} does not hold {identifier}")]
    NotInProfile {
        profile: ProfileId,
        identifier: Identifier,
    },
    #[error("{identifier} is the only identifier of profile {profile}: there is nothing to split")]
    NothingToSplit {
        profile: ProfileId,
        identifier: Identifier,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an erasure took out of the projection at once: the person's identifiers and
/// events, to take out again of a rebuild that read the log before they were removed.
struct Forgotten {
    keys: Vec<IdKey>,
    seqs: Vec<i64>,
}

/// Every profile's state, by profile. Each state is boxed: the map's spare slots then
/// cost a pointer each, not a whole state.
pub type ProfileStates = HashMap<ProfileId, Box<ProfileState>>;

struct State {
    graph: IdentityGraph,
    /// Each profile's state, kept with the graph: merged when their profiles merge.
    people: ProfileStates,
    /// The log position of the last event applied.
    applied: i64,
    /// Link decisions to apply after each log position.
    links: BTreeMap<i64, Vec<(IdKey, IdKey, Timestamp)>>,
    /// Profiles whose state changed since [`IdentityProjection::take_changed`] was last
    /// called; `None` until someone asks. Behind its own lock, so that taking them needs
    /// only a shared hold of the state (a snapshot being written does not block it).
    changed: Mutex<Option<HashSet<ProfileId>>>,
}

impl State {
    fn new(graph: IdentityGraph, links: BTreeMap<i64, Vec<(IdKey, IdKey, Timestamp)>>) -> Self {
        State {
            graph,
            people: HashMap::new(),
            applied: 0,
            links,
            changed: Mutex::new(None),
        }
    }

    /// Whether two states hold the same graph, profile states and position.
    fn same_as(&self, other: &State) -> bool {
        self.applied == other.applied && self.graph == other.graph && self.people == other.people
    }

    /// Applies one event, then the decisions taken right after it.
    fn apply(&mut self, computed: &[ComputedTrait], seq: i64, event: &Event, set: &IdentifierSet) {
        // Decisions taken after events no longer in the log (erased, expired) come first.
        if self.applied + 1 < seq {
            self.apply_links(self.applied + 1..seq);
        }
        let resolution = self.graph.apply(seq, event.timestamp, set);
        if let Some(profile) = self.absorb(&resolution) {
            self.people
                .entry(profile)
                .or_default()
                .apply(computed, seq, event);
        }
        self.applied = seq;
        self.apply_links(seq..=seq);
    }

    /// At the end of the log: applies the decisions taken after events since removed
    /// from its end (those already applied are refused again, changing nothing).
    fn settle_links(&mut self) {
        self.apply_links(self.applied.saturating_add(1)..);
    }

    /// Whether decisions were taken after the last event applied.
    fn has_unsettled_links(&self) -> bool {
        self.links
            .range(self.applied.saturating_add(1)..)
            .next()
            .is_some()
    }

    /// Applies the link decisions taken after the log positions in `after`.
    fn apply_links(&mut self, after: impl std::ops::RangeBounds<i64>) {
        let due: Vec<(i64, IdKey, IdKey, Timestamp)> = self
            .links
            .range(after)
            .flat_map(|(seq, links)| {
                links
                    .iter()
                    .map(|(a, b, at)| (*seq, a.clone(), b.clone(), *at))
            })
            .collect();
        for (seq, a, b, at) in due {
            // Refused on replay exactly as when taken: nothing to do.
            if let Ok(resolution) = self.graph.link_decision(seq, at, &a, &b) {
                self.absorb(&resolution);
            }
        }
    }

    /// Takes a person out at once: the profile holding any of `keys` (or `profile`),
    /// with the ids merged into it, from the graph and the profile states; their events.
    fn remove_person(&mut self, profile: Option<ProfileId>, keys: &[IdKey]) -> Vec<i64> {
        let mut seqs = Vec::new();
        let ids = profile
            .into_iter()
            .chain(
                keys.iter()
                    .filter_map(|k| self.graph.lookup(k).map(|n| n.id)),
            )
            .collect::<BTreeSet<_>>();
        for id in ids {
            let Some(RemovedProfile { node, events }) = self.graph.remove_profile(id) else {
                continue;
            };
            for gone in node.ids() {
                self.people.remove(&gone);
                if let Some(changed) = self.changed.get_mut().unwrap_or_else(|e| e.into_inner()) {
                    changed.remove(&gone);
                }
            }
            seqs.extend(events);
        }
        seqs.sort_unstable();
        seqs
    }

    /// Merges the states of the profiles a resolution merged; the profile it resolved to.
    fn absorb(&mut self, resolution: &Resolution) -> Option<ProfileId> {
        let profile = resolution.profile?;
        for merged in &resolution.merged {
            if let Some(state) = self.people.remove(merged) {
                self.people.entry(profile).or_default().merge(*state);
            }
        }
        if let Some(changed) = self.changed.get_mut().unwrap_or_else(|e| e.into_inner()) {
            changed.insert(profile);
        }
        Some(profile)
    }
}

/// The identity graph of every event in the log, kept current — and, built in the same
/// pass, each profile's state (what audiences and the gate decide on) and the
/// interaction table the reports read.
pub struct IdentityProjection {
    log: Arc<dyn EventLog>,
    /// The rules of the graph in force (replaced with it, see [`Self::install`]).
    rules: Live<IdentityRules>,
    /// The rules the next rebuild builds the graph under: a reload of the configuration
    /// sets them, and the graph in force keeps its own until the rebuilt one replaces it.
    next_rules: Live<IdentityRules>,
    computed: Arc<Vec<ComputedTrait>>,
    /// Woken when profiles change (see [`Self::take_changed`]).
    changes: tokio::sync::Notify,
    state: RwLock<State>,
    analytics: Arc<AnalyticsRules>,
    /// One row per event; it does not depend on identity, so an unmerge keeps it.
    interactions: RwLock<InteractionTable>,
    /// Serialises catching up and putting a rebuilt state in place.
    writer: tokio::sync::Mutex<()>,
    /// One rebuild at a time.
    rebuilding: tokio::sync::Mutex<()>,
    /// What erasures took out at once since the last rebuild began (see [`Self::forget`]).
    forgotten: Mutex<Vec<Forgotten>>,
    /// Rebuilds asked for, and the number of asks the rebuilt state covers.
    rebuilds_asked: AtomicU64,
    rebuilds_done: tokio::sync::watch::Sender<u64>,
    rebuild_wake: tokio::sync::Notify,
    /// Events pushed by the intake, by log position, not yet applied.
    pushed: Mutex<BTreeMap<i64, Prepared>>,
    /// Events pushed and not yet applied, in the buffer or being prepared.
    held: AtomicUsize,
    /// Prepares pushed events and frees applied ones, off the projection's thread.
    helper: Helper,
    /// This projection, for the helper's work.
    itself: Weak<IdentityProjection>,
    wake: Condvar,
    /// Another process committed events no push carries: read the log.
    log_moved: AtomicBool,
    /// Pushed events were left to the log (the buffer was full): read it.
    overflowed: AtomicBool,
    stopping: AtomicBool,
    /// Where snapshots are kept (`None`: none are).
    snapshots: Option<PathBuf>,
    /// Where the per-event rows (interaction table, event links) are kept in mapped
    /// unnamed files (`None`: on the heap); the snapshots' folder.
    rows: Option<PathBuf>,
    /// Moved on each change that makes snapshots stale (an erasure, a rebuild): a
    /// snapshot written meanwhile is not put in place.
    snapshot_epoch: AtomicU64,
    /// Held while a snapshot is put in place or removed.
    snapshot_file: Mutex<()>,
    /// One snapshot taken at a time, from start to in place: two share the temporary
    /// file, and one would put the other's half-written file in place.
    taking_snapshot: tokio::sync::Mutex<()>,
    /// How the projection started, and the last snapshot taken.
    started: Mutex<Start>,
    last_snapshot: Mutex<Option<SnapshotTaken>>,
}

/// How a projection started.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// From a snapshot taken at this log position, then the log after it.
    Snapshot { seq: i64 },
    /// From the whole log; `refused` says why a snapshot was not used, if there was one
    /// to consider.
    Replay { refused: Option<String> },
}

/// A snapshot taken (see [`IdentityProjection::take_snapshot`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotTaken {
    /// The log position it covers.
    pub seq: i64,
    /// Its size.
    pub bytes: u64,
    /// How long the projection's writer was held: until a child process holding a copy
    /// of the state was started (see the `forked` module); where there can be none, the
    /// whole write (its state read with shared locks only: readers of the state were not
    /// blocked; new events, and reads that call [`IdentityProjection::catch_up`] first,
    /// waited).
    pub held: Duration,
    /// From start to the file synced and in place.
    pub took: Duration,
    /// The memory the write cost, when a child process wrote it: what the child held
    /// alone at the end (its own buffers, and each page the projections changed while it
    /// wrote, then held twice).
    pub memory: Option<u64>,
}

impl IdentityProjection {
    /// Builds the graph by replaying the whole log under `rules` and the stored unmerge
    /// rules, each profile's state with the `computed` traits, and the interaction table
    /// under `analytics`.
    pub async fn open(
        log: Arc<dyn EventLog>,
        rules: Arc<IdentityRules>,
        analytics: Arc<AnalyticsRules>,
        computed: Arc<Vec<ComputedTrait>>,
    ) -> Result<Arc<Self>, StoreError> {
        Self::open_with_snapshots(log, rules, analytics, computed, None).await
    }

    /// As [`Self::open`], keeping snapshots in the folder `snapshots` when given: the
    /// projection starts from the snapshot there when it is valid for this log and these
    /// rules (see `snapshot.rs`) and replays only the log after it; otherwise it says why
    /// in the log and replays the whole log. Snapshots are then taken by
    /// [`Self::take_snapshot`] (see [`Self::snapshot_when_due`]).
    pub async fn open_with_snapshots(
        log: Arc<dyn EventLog>,
        rules: Arc<IdentityRules>,
        analytics: Arc<AnalyticsRules>,
        computed: Arc<Vec<ComputedTrait>>,
        snapshots: Option<PathBuf>,
    ) -> Result<Arc<Self>, StoreError> {
        let unmerge_rules = load_unmerge_rules(&*log, &rules).await?;
        let links = load_link_decisions(&*log, &rules).await?;
        let rows = snapshots.clone();
        let projection = Arc::new_cyclic(|itself| IdentityProjection {
            state: RwLock::new(State::new(
                new_graph(rows.as_deref(), rules.clone(), unmerge_rules),
                links,
            )),
            log,
            rules: Live::from(rules.clone()),
            next_rules: Live::from(rules),
            computed,
            changes: tokio::sync::Notify::new(),
            analytics,
            interactions: RwLock::new(new_table(rows.as_deref())),
            rows,
            writer: tokio::sync::Mutex::new(()),
            rebuilding: tokio::sync::Mutex::new(()),
            forgotten: Mutex::new(Vec::new()),
            rebuilds_asked: AtomicU64::new(0),
            rebuilds_done: tokio::sync::watch::Sender::new(0),
            rebuild_wake: tokio::sync::Notify::new(),
            pushed: Mutex::new(BTreeMap::new()),
            held: AtomicUsize::new(0),
            helper: Helper::start(),
            itself: itself.clone(),
            wake: Condvar::new(),
            log_moved: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            snapshots,
            snapshot_epoch: AtomicU64::new(0),
            snapshot_file: Mutex::new(()),
            taking_snapshot: tokio::sync::Mutex::new(()),
            started: Mutex::new(Start::Replay { refused: None }),
            last_snapshot: Mutex::new(None),
        });
        let started = std::time::Instant::now();
        if let Some(dir) = projection.snapshots.clone() {
            match projection.restore(&dir).await {
                Ok(seq) => {
                    *projection.started.lock().unwrap_or_else(|e| e.into_inner()) =
                        Start::Snapshot { seq };
                    tracing::info!(
                        snapshot_seq = seq,
                        events = projection.state.read().map(|s| s.applied).unwrap_or(0),
                        profiles = projection.read(|g| g.profile_count()),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "identity graph loaded from its snapshot and the log after it"
                    );
                    return Ok(projection);
                }
                Err(snapshot::Refusal::Missing) => {}
                Err(refusal) => {
                    tracing::warn!(
                        path = %snapshot::path(&dir).display(),
                        reason = %refusal,
                        "the projections' snapshot is not used; replaying the whole event log"
                    );
                    *projection.started.lock().unwrap_or_else(|e| e.into_inner()) = Start::Replay {
                        refused: Some(refusal.to_string()),
                    };
                    projection.reset().await?;
                }
            }
        }
        let last = *projection.log.committed().borrow();
        if let Ok(mut table) = projection.interactions.write() {
            table.reserve(usize::try_from(last).unwrap_or(0));
        }
        let applied = projection.catch_up().await?;
        tracing::info!(
            events = applied,
            profiles = projection.read(|g| g.profile_count()),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "identity graph built from the event log"
        );
        Ok(projection)
    }

    /// Puts the state read from the snapshot in `dir` in place and applies the log after
    /// it; the snapshot's position. Refused when the snapshot is not what a replay of this
    /// log under these rules gives (see `snapshot.rs`); the state is then partly filled,
    /// and [`Self::reset`] empties it.
    async fn restore(self: &Arc<Self>, dir: &Path) -> Result<i64, snapshot::Refusal> {
        let store = |e: StoreError| snapshot::Refusal::Store(e.to_string());
        let opened = {
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || snapshot::open(&dir))
                .await
                .map_err(|e| snapshot::Refusal::Store(e.to_string()))??
        };
        let header = opened.header.clone();
        let rules = self.rules.get();
        let fingerprint = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            snapshot::fingerprint(
                &rules,
                &state.graph,
                &state.links,
                header.seq,
                &self.computed,
                &self.analytics,
            )
        };
        if fingerprint != header.fingerprint {
            return Err(snapshot::Refusal::Foreign);
        }
        let at = self.log.events_at(vec![header.seq]).await.map_err(store)?;
        match at.iter().find(|e| e.seq == header.seq) {
            None => return Err(snapshot::Refusal::PositionGone(header.seq)),
            Some(e) if snapshot::event_digest(&e.event) != header.event => {
                return Err(snapshot::Refusal::EventDiffers(header.seq));
            }
            Some(_) => {}
        }
        let (links, rows) = (
            row_store(self.rows.as_deref()),
            row_store(self.rows.as_deref()),
        );
        let restored = tokio::task::spawn_blocking(move || opened.body(links, rows))
            .await
            .map_err(|e| snapshot::Refusal::Store(e.to_string()))??;
        if restored.table.len() as u64 != header.events
            || restored.table.last_seq() != Some(header.seq)
        {
            return Err(snapshot::Refusal::Damaged(
                "its table does not end at its position".into(),
            ));
        }
        {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            let unmerge_rules = state.graph.unmerge_rules().to_vec();
            state.graph =
                IdentityGraph::from_parts(restored.graph, rules, unmerge_rules, restored.links)
                    .map_err(snapshot::Refusal::Damaged)?;
            state.people = restored.people;
            state.applied = header.seq;
        }
        *self.interactions.write().unwrap_or_else(|e| e.into_inner()) = restored.table;
        // The tail; then every event the log holds must be in the table: fewer in the
        // log means events the snapshot covers were removed since (an erasure whose
        // projection never heard of it, a crash between the two).
        for _ in 0..5 {
            self.catch_up().await.map_err(store)?;
            let log = self.log.stats().await.map_err(store)?.events;
            let held = self
                .interactions
                .read()
                .map(|t| t.rows().len() as u64)
                .unwrap_or(0);
            if log == held {
                return Ok(header.seq);
            }
            if log < held {
                return Err(snapshot::Refusal::Removed {
                    snapshot: held,
                    log,
                });
            }
        }
        Err(snapshot::Refusal::Unsettled)
    }

    /// Empties the state and the table, as before a replay of the whole log.
    async fn reset(&self) -> Result<(), StoreError> {
        let rules = self.rules.get();
        let unmerge_rules = load_unmerge_rules(&*self.log, &rules).await?;
        let links = load_link_decisions(&*self.log, &rules).await?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) =
            State::new(self.new_graph(rules, unmerge_rules), links);
        *self.interactions.write().unwrap_or_else(|e| e.into_inner()) =
            new_table(self.rows.as_deref());
        Ok(())
    }

    /// How the projection started: from a snapshot, or from the whole log (and why).
    pub fn start(&self) -> Start {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last snapshot this process took.
    pub fn last_snapshot(&self) -> Option<SnapshotTaken> {
        self.last_snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether this projection holds the same graph (profile ids included), profile
    /// states, position and interaction table as `other` — e.g. one started from a
    /// snapshot and one replayed from the whole log.
    pub fn same_as(&self, other: &IdentityProjection) -> bool {
        let (a, b) = (
            self.state.read().unwrap_or_else(|e| e.into_inner()),
            other.state.read().unwrap_or_else(|e| e.into_inner()),
        );
        let (ta, tb) = (
            self.interactions.read().unwrap_or_else(|e| e.into_inner()),
            other.interactions.read().unwrap_or_else(|e| e.into_inner()),
        );
        a.same_as(&b) && *ta == *tb
    }

    /// Writes a snapshot of the graph, the profile states and the interaction table as
    /// of the last event applied, in the folder given to [`Self::open_with_snapshots`]
    /// (none when there is none, nothing new since the last one, or a rebuild is due:
    /// the state is then not what a replay gives). The state is serialised straight to
    /// a temporary file on a low-priority thread while the projection's writer is held
    /// — readers of the state keep reading (shared locks only); events arriving
    /// meanwhile wait in the buffer, and so does [`Self::catch_up`] — then synced and
    /// renamed into place, unless an erasure or a rebuild came meanwhile.
    pub async fn take_snapshot(self: &Arc<Self>) -> Result<Option<SnapshotTaken>, StoreError> {
        let Some(dir) = self.snapshots.clone() else {
            return Ok(None);
        };
        let _one_at_a_time = self.taking_snapshot.lock().await;
        let started = std::time::Instant::now();
        let writer = self.writer.lock().await;
        if self.rebuilds_asked.load(Ordering::Acquire) > *self.rebuilds_done.borrow() {
            return Ok(None);
        }
        let epoch = self.snapshot_epoch.load(Ordering::Acquire);
        let seq = self.state.read().map(|s| s.applied).unwrap_or(0);
        if seq == 0 || self.last_snapshot().is_some_and(|l| l.seq == seq) {
            return Ok(None);
        }
        // The last event applied, to recognise this log by; erased since: wait for the
        // rebuild.
        let Some(last) = self
            .log
            .events_at(vec![seq])
            .await?
            .into_iter()
            .find(|e| e.seq == seq)
        else {
            return Ok(None);
        };
        let event = snapshot::event_digest(&last.event);
        let held_since = std::time::Instant::now();
        let projection = self.clone();
        let write_dir = dir.clone();
        let (done, written) = tokio::sync::oneshot::channel();
        let (forked, let_go) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("identity-snapshot".into())
            .spawn(move || {
                lower_this_threads_priority();
                let state = projection.state.read().unwrap_or_else(|e| e.into_inner());
                let table = projection
                    .interactions
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                let header = snapshot::Header {
                    seq,
                    event,
                    events: table.rows().len() as u64,
                    fingerprint: snapshot::fingerprint(
                        state.graph.rules(),
                        &state.graph,
                        &state.links,
                        seq,
                        &projection.computed,
                        &projection.analytics,
                    ),
                    taken_at: Timestamp::now(),
                };
                let write = || {
                    snapshot::write_partial(
                        &write_dir,
                        &header,
                        &state.graph,
                        &state.people,
                        &table,
                    )
                };
                // Written by a copy of the process as it is now: the locks, and the
                // writer, are let go as soon as it runs.
                let outcome = match forked::fork(|| write().map(|(_, bytes)| bytes)) {
                    Ok(child) => {
                        drop(table);
                        drop(state);
                        let _ = forked.send(());
                        child.wait().map(|outcome| {
                            let path = snapshot::partial_path(&write_dir);
                            (path, outcome.value, Some(outcome.private_bytes))
                        })
                    }
                    Err(e) => {
                        tracing::debug!(error = %Redacted(&e), "no child process for the snapshot: written under the writer's hold");
                        write().map(|(path, bytes)| (path, bytes, None))
                    }
                };
                let _ = done.send(outcome);
            })
            .map_err(|e| StoreError::Storage(format!("cannot start a snapshot: {e}")))?;
        // Held until the state is forked (or, where it cannot be, written).
        let _ = let_go.await;
        let held = held_since.elapsed();
        drop(writer);
        let (partial, bytes, memory) = written
            .await
            .map_err(|_| StoreError::Storage("a snapshot stopped half-way".into()))?
            .map_err(|e| StoreError::Storage(format!("cannot write a snapshot: {e}")))?;
        let projection = self.clone();
        let placed = tokio::task::spawn_blocking(move || {
            let _file = projection
                .snapshot_file
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if projection.snapshot_epoch.load(Ordering::Acquire) != epoch {
                let _ = std::fs::remove_file(&partial);
                return Ok(false);
            }
            snapshot::put_in_place(&partial, &dir).map(|()| true)
        })
        .await
        .map_err(|e| StoreError::Storage(format!("a snapshot stopped half-way: {e}")))?
        .map_err(|e| StoreError::Storage(format!("cannot put a snapshot in place: {e}")))?;
        if !placed {
            return Ok(None);
        }
        let taken = SnapshotTaken {
            seq,
            bytes,
            held,
            took: started.elapsed(),
            memory,
        };
        tracing::info!(
            seq,
            bytes,
            memory_mib = memory.map(|m| m >> 20),
            held_ms = held.as_millis() as u64,
            took_ms = taken.took.as_millis() as u64,
            "projections' snapshot taken"
        );
        *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(taken.clone());
        Ok(Some(taken))
    }

    /// Takes a snapshot on a task of its own, looking every `every`: when at least
    /// `after_events` events were applied since the last one (or since start), or any
    /// were and ten times `every` has passed. Must be called inside a Tokio runtime.
    pub fn snapshot_when_due(
        self: &Arc<Self>,
        every: Duration,
        after_events: i64,
    ) -> tokio::task::JoinHandle<()> {
        let projection = self.clone();
        tokio::spawn(async move {
            let mut since = tokio::time::Instant::now();
            let mut base = match projection.start() {
                Start::Snapshot { seq } => seq,
                Start::Replay { .. } => 0,
            };
            loop {
                tokio::time::sleep(every).await;
                if projection.stopping.load(Ordering::Acquire) {
                    return;
                }
                let applied = projection.state.read().map(|s| s.applied).unwrap_or(0);
                let new = applied - base;
                if new >= after_events || (new > 0 && since.elapsed() >= every * 10) {
                    match projection.take_snapshot().await {
                        Ok(Some(taken)) => {
                            base = taken.seq;
                            since = tokio::time::Instant::now();
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %Redacted(&e), "the projections' snapshot could not be taken; trying again later");
                        }
                    }
                }
            }
        })
    }

    /// Makes every snapshot stale and removes it: the state no longer is what the
    /// snapshot holds plus the log after it (an erasure, a rebuild, events about to be
    /// expired or stripped by retention).
    pub fn discard_snapshots(&self) {
        let Some(dir) = &self.snapshots else {
            return;
        };
        self.snapshot_epoch.fetch_add(1, Ordering::AcqRel);
        let _file = self.snapshot_file.lock().unwrap_or_else(|e| e.into_inner());
        *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        match snapshot::remove(dir) {
            Ok(true) => tracing::info!("the projections' snapshot was removed: it is stale"),
            Ok(false) => {}
            Err(e) => tracing::error!(
                path = %snapshot::path(dir).display(),
                error = %Redacted(&e),
                "cannot remove a stale snapshot of the projections; remove it by hand before the next start"
            ),
        }
    }

    /// Follows the log on a thread of its own: applies the events the intake pushes as
    /// they are stored, and reads the log itself for anything else (every few seconds,
    /// for writers in other processes such as `unavoce import`).
    ///
    /// The thread runs at a lower OS priority than the log's writer: when the two cores
    /// are busy, acknowledging data durably comes first and the profiles catch up a
    /// moment later. Must be called inside a Tokio runtime. Stops with [`Self::stop`].
    pub fn follow(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let projection = self.clone();
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("identity-projection".into())
            .spawn(move || {
                lower_this_threads_priority();
                while !projection.stopping.load(Ordering::Acquire) {
                    let progressed = projection.wait_for_push(IDLE_WAIT, GAP_WAIT) && {
                        let _writer = projection.writer.blocking_lock();
                        projection.apply_pushed() > 0
                    };
                    // Nothing pushed for a while, a gap that stayed (events from another
                    // process), or pushes left to the log while far behind: read it.
                    if progressed {
                        continue;
                    }
                    if let Err(e) = runtime.block_on(projection.catch_up()) {
                        tracing::warn!(error = %Redacted(&e), "identity projection could not read the log; retrying");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            })
    }

    /// Wakes the thread started by [`Self::follow`] to read the log now (another
    /// process committed events no push carries).
    pub fn read_log_now(&self) {
        // Noted under the buffer's lock, so a follower about to wait sees it.
        let _pushed = self.pushed.lock();
        self.log_moved.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Stops the thread started by [`Self::follow`].
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_all();
    }

    /// Waits until pushed events continue the applied ones, the log moved without them
    /// ([`Self::read_log_now`]), pushes were left to it, or time passes: `idle` with
    /// nothing pushed, `gap` while the buffer starts after a gap (appends are told out of
    /// order, so the push that fills it is usually on its way). Whether there are pushed
    /// events to apply (false: read the log).
    fn wait_for_push(&self, idle: Duration, gap: Duration) -> bool {
        let applied = self.applied();
        let began = Instant::now();
        let Ok(mut pushed) = self.pushed.lock() else {
            return false;
        };
        loop {
            if self.log_moved.swap(false, Ordering::AcqRel)
                || self.overflowed.load(Ordering::Acquire)
            {
                return false;
            }
            let limit = match pushed.first_key_value() {
                Some((&seq, _)) if seq <= applied + 1 => return true,
                Some(_) => gap,
                None => idle,
            };
            let Some(left) = limit.checked_sub(began.elapsed()) else {
                return false;
            };
            pushed = match self.wake.wait_timeout(pushed, left) {
                Ok((pushed, _)) => pushed,
                Err(_) => return false,
            };
        }
    }

    /// Prepares pushed events and holds them for the follower.
    fn take_pushed(&self, events: Vec<(i64, Event)>) {
        let prepared = prepare(events, &self.rules.get());
        if let Ok(mut pushed) = self.pushed.lock() {
            pushed.extend(prepared);
        }
        self.wake.notify_one();
    }

    /// Applies pushed events that continue the log without a gap; returns how many. The
    /// buffer is locked only to take the run out, so the intake never waits for the
    /// graph. Callers hold `writer`.
    fn apply_pushed(&self) -> usize {
        let applied = self.state.read().map(|s| s.applied).unwrap_or(i64::MAX);
        let run: Vec<(i64, Prepared)> = {
            let Ok(mut pushed) = self.pushed.lock() else {
                return 0;
            };
            let mut next = applied + 1;
            let mut run = Vec::new();
            let mut stale = Vec::new();
            while let Some(entry) = pushed.first_entry() {
                let seq = *entry.key();
                if seq < next {
                    stale.push(entry.remove());
                } else if seq == next {
                    run.push((seq, entry.remove()));
                    next += 1;
                } else {
                    break; // a gap: the log fills it
                }
            }
            self.held
                .fetch_sub(run.len() + stale.len(), Ordering::AcqRel);
            if !stale.is_empty() {
                self.helper.dispose(stale);
            }
            run
        };
        let applied = run.len();
        if applied == 0 || self.apply_run(&run).is_err() {
            return 0;
        }
        self.helper.dispose(run);
        applied
    }

    /// Applies prepared events in log order, a chunk at a time: readers of the state
    /// wait for one chunk, not the whole run. Callers hold `writer`.
    fn apply_run(&self, run: &[(i64, Prepared)]) -> Result<(), StoreError> {
        let rules = self.rules.get();
        for chunk in run.chunks(APPLIED_AT_ONCE) {
            self.add_interactions(chunk);
            let mut state = self
                .state
                .write()
                .map_err(|_| StoreError::Storage("identity state poisoned".into()))?;
            for (seq, prepared) in chunk {
                state.apply(
                    &self.computed,
                    *seq,
                    &prepared.event,
                    &prepared.identifiers(&rules),
                );
            }
        }
        if !run.is_empty() {
            self.changes.notify_one();
        }
        Ok(())
    }

    /// Applies every event committed before the call (at least one page of them, for
    /// writers in other processes the log's head does not count yet); returns the
    /// position reached. Events committed meanwhile are left to the next call: under
    /// continuous ingestion, a caller never chases the log's head for ever.
    pub async fn catch_up(&self) -> Result<i64, StoreError> {
        let _writer = self.writer.lock().await;
        // Pushes left to the log from here on are read by the next call.
        self.overflowed.store(false, Ordering::Release);
        let target = *self.log.committed().borrow();
        self.apply_pushed();
        let mut after = self.state.read().map(|s| s.applied).unwrap_or(0);
        let rules = self.rules.get();
        let mut reading = read_page(&self.log, after, rules.clone());
        loop {
            let mut events = reading.page().await?;
            let Some(&(last, _)) = events.last() else {
                self.settle_links();
                return Ok(after);
            };
            // The next page is read and prepared while this one is applied.
            let next = (events.len() == PAGE && last < target)
                .then(|| read_page(&self.log, last, rules.clone()));
            // Pushed events may have moved the state past the start of this page.
            let applied = self.applied();
            events.retain(|(seq, _)| *seq > applied);
            self.apply_run(&events)?;
            self.helper.dispose(events);
            let Some(next) = next else {
                self.settle_links();
                return Ok(last);
            };
            reading = next;
            self.apply_pushed();
            after = last;
        }
    }

    /// Settles links whose events an erasure removed from the log's newest positions
    /// (rare: only then is the lock taken).
    fn settle_links(&self) {
        let unsettled = self.state.read().is_ok_and(|s| s.has_unsettled_links());
        if unsettled && let Ok(mut state) = self.state.write() {
            state.settle_links();
        }
    }

    /// Adds events to the interaction table (those already in it are skipped).
    fn add_interactions(&self, events: &[(i64, Prepared)]) {
        let mut table = self.interactions.write().unwrap_or_else(|e| e.into_inner());
        for (seq, prepared) in events {
            table.push(*seq, &prepared.event, &self.analytics);
        }
    }

    /// Reads the graph and the interaction table together, as of the same log position.
    pub fn read_with_interactions<R>(
        &self,
        f: impl FnOnce(&IdentityGraph, &InteractionTable) -> R,
    ) -> R {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let table = self.interactions.read().unwrap_or_else(|e| e.into_inner());
        f(&state.graph, &table)
    }

    /// Reads the graph and every profile's state together.
    pub fn read_people<R>(&self, f: impl FnOnce(&IdentityGraph, &ProfileStates) -> R) -> R {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&state.graph, &state.people)
    }

    /// A person's facts at `now`, and the identifier types they can be reached by.
    pub fn person(&self, profile: ProfileId, now: Timestamp) -> (ProfileFacts, Vec<String>) {
        self.read_people(|graph, people| {
            let reachable = graph
                .profile(profile)
                .map(|n| {
                    n.identifiers
                        .iter()
                        .map(|(k, _)| graph.rules().type_rule(k.kind()).name.clone())
                        .collect()
                })
                .unwrap_or_default();
            let facts = match people.get(&profile) {
                Some(state) => state.facts(&self.computed, now),
                None => ProfileState::default().facts(&self.computed, now),
            };
            (facts, reachable)
        })
    }

    /// The computed traits profiles are kept with.
    pub fn computed_traits(&self) -> &Arc<Vec<ComputedTrait>> {
        &self.computed
    }

    /// The profiles whose state changed since the last call. The first call starts the
    /// tracking and returns every profile.
    pub fn take_changed(&self) -> Vec<ProfileId> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let taken = state
            .changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(HashSet::new());
        match taken {
            Some(changed) => changed.into_iter().collect(),
            None => state.people.keys().copied().collect(),
        }
    }

    /// Makes the next [`Self::take_changed`] give every profile, as the first one does.
    pub fn mark_all_changed(&self) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        *state.changed.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Waits until profiles may have changed since [`Self::take_changed`] (one waiter).
    pub async fn changed(&self) {
        self.changes.notified().await;
    }

    /// Wakes whoever waits in [`Self::changed`], e.g. when there is more to do.
    pub fn nudge(&self) {
        self.changes.notify_one();
    }

    /// The rules the interaction table was built under.
    pub fn analytics_rules(&self) -> &Arc<AnalyticsRules> {
        &self.analytics
    }

    /// Reads the graph.
    /// `profile` and the profiles merged into it since (what runs, decisions and sends
    /// made before a merge are kept under).
    pub fn with_merged(&self, profile: ProfileId) -> Vec<ProfileId> {
        let mut ids = vec![profile];
        self.read(|g| {
            if let Some(node) = g.profile(profile) {
                ids.extend(node.merges().iter().map(|m| m.from));
            }
        });
        ids
    }

    /// A profile (an id merged away resolves to the profile it was merged into) with the
    /// log positions of its events, ascending, read together.
    pub fn profile_with_events(&self, id: ProfileId) -> Option<(ProfileNode, Vec<i64>)> {
        self.read(|graph| {
            let node = graph.profile(id)?;
            Some((node.clone(), graph.events(node)))
        })
    }

    /// Waits until the work handed to the helper thread is done (applied events freed,
    /// pushed ones prepared): what the projection holds can then be measured.
    pub fn settle(&self) {
        self.helper.wait_idle();
    }

    /// The log position of the last event applied.
    pub fn applied(&self) -> i64 {
        self.state.read().map(|s| s.applied).unwrap_or(0)
    }

    pub fn read<R>(&self, f: impl FnOnce(&IdentityGraph) -> R) -> R {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&state.graph)
    }

    /// The rules of the graph in force.
    pub fn rules(&self) -> Arc<IdentityRules> {
        self.rules.get()
    }

    /// Puts new identity rules in force, from a configuration read again: the graph,
    /// every profile's state and the interaction table are rebuilt from the log under
    /// them (in the background; [`Self::rebuilt`] waits for it), and the graph in force
    /// keeps its rules until the rebuilt one replaces it. False when they are the same.
    pub fn reconfigure(&self, rules: Arc<IdentityRules>) -> bool {
        if rules.config == self.next_rules.get().config {
            return false;
        }
        self.next_rules.set(rules);
        self.ask_rebuild();
        true
    }

    /// Cuts `identifier` from `profile`: stores a rule that keeps it apart from the
    /// profile's other identifiers and rebuilds the graph by replaying the whole log
    /// under it, so the result is exactly what it would be had the link never been
    /// seen. Returns the profiles that now hold the former profile's identifiers.
    pub async fn unmerge(
        &self,
        profile: ProfileId,
        identifier: &Identifier,
    ) -> Result<Vec<ProfileId>, UnmergeError> {
        // Not while a rebuild runs: it would put back a state built without this rule.
        let _no_rebuild = self.rebuilding.lock().await;
        let _writer = self.writer.lock().await;
        let in_force = self.rules.get();
        let key = in_force
            .key_of(identifier)
            .ok_or_else(|| UnmergeError::UnknownIdentifier(identifier.clone()))?;
        let (rule, identifiers) = self.read(|graph| {
            let node = graph
                .profile(profile)
                .ok_or(UnmergeError::NoSuchProfile(profile))?;
            if !node.identifiers.iter().any(|(k, _)| k == &key) {
                return Err(UnmergeError::NotInProfile {
                    profile: node.id,
                    identifier: identifier.clone(),
                });
            }
            let rule = graph.unmerge_rule_for(profile, &key).ok_or_else(|| {
                UnmergeError::NothingToSplit {
                    profile: node.id,
                    identifier: identifier.clone(),
                }
            })?;
            let identifiers: Vec<_> = node.identifiers.iter().map(|(k, _)| k.clone()).collect();
            Ok((rule, identifiers))
        })?;
        // As stored: an erasure may have dropped some since the graph was built.
        let mut rules_in_force = load_unmerge_rules(&*self.log, &in_force).await?;
        rules_in_force.push(rule);
        self.log
            .put_setting(UNMERGE_RULES, rules_to_json(&in_force, &rules_in_force))
            .await?;
        // Read back under the rules the graph is rebuilt with (a reload may have changed
        // them: their keys differ).
        let next = self.next_rules.get();
        let unmerge_rules = load_unmerge_rules(&*self.log, &next).await?;
        let links = load_link_decisions(&*self.log, &next).await?;
        let rebuilt = self.replay(unmerge_rules, links).await?;
        let split: BTreeSet<ProfileId> = identifiers
            .iter()
            .filter_map(|k| next.key_of(&in_force.identifier_of(k)))
            .filter_map(|k| rebuilt.graph.lookup(&k).map(|p| p.id))
            .collect();
        self.install(rebuilt, None)?;
        Ok(split.into_iter().collect())
    }

    /// After a person's events were removed from the log (an erasure): takes them out
    /// at once — `profile` (and the ids merged into it) leaves the graph and the profile
    /// states — asks for a rebuild from the log, and forgets the unmerge rules and link
    /// decisions that name any of `erased` (their identifiers); the rebuild
    /// ([`Self::rebuild_when_asked`]) makes every projection exactly what a fresh replay
    /// gives; erasures close together share one.
    pub async fn forget(&self, erased: &[IdKey], profile: ProfileId) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        // Out of the live state first: whatever fails below, the person is gone from every
        // answer and a rebuild is asked for.
        // The interaction table keeps their rows until the rebuild: attributed to no one
        // now, they still count in anonymous totals (events per day) for those seconds.
        let seqs = self
            .state
            .write()
            .map_err(|_| StoreError::Storage("identity state poisoned".into()))?
            .remove_person(Some(profile), erased);
        // A snapshot holds them: it must never be read again.
        self.discard_snapshots();
        self.forgotten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Forgotten {
                keys: erased.to_vec(),
                seqs,
            });
        self.changes.notify_one();
        self.ask_rebuild();
        let named = |k: &IdKey| erased.contains(k);
        let unmerge_rules = load_unmerge_rules(&*self.log, &self.rules.get()).await?;
        let rules_before = unmerge_rules.len();
        let kept: Vec<UnmergeRule> = unmerge_rules
            .into_iter()
            .filter(|r| !named(&r.key) && !r.apart_from.iter().any(named))
            .collect();
        if kept.len() != rules_before {
            self.log
                .put_setting(UNMERGE_RULES, rules_to_json(&self.rules.get(), &kept))
                .await?;
        }
        let stored: Vec<LinkDecision> = match self.log.setting(LINK_DECISIONS).await? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => Vec::new(),
        };
        let stored_count = stored.len();
        let key = |i: &Identifier| self.rules.get().key_of(i);
        let kept: Vec<LinkDecision> = stored
            .into_iter()
            .filter(|d| {
                !key(&d.a).is_some_and(|k| named(&k)) && !key(&d.b).is_some_and(|k| named(&k))
            })
            .collect();
        if kept.len() != stored_count {
            self.log
                .put_setting(
                    LINK_DECISIONS,
                    serde_json::to_value(&kept).unwrap_or_default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Another node changed the shared setting `name` (`None`: any, perhaps): when it is an operator's decision
    /// about the graph (unmerge rules, link decisions), rebuilds from the log under the
    /// stored decisions, as that node did.
    pub fn take_in_setting(&self, name: Option<&str>) {
        if name.is_none_or(|name| name == UNMERGE_RULES || name == LINK_DECISIONS) {
            self.ask_rebuild();
        }
    }

    /// Asks [`Self::rebuild_when_asked`] for a rebuild.
    fn ask_rebuild(&self) {
        self.rebuilds_asked.fetch_add(1, Ordering::AcqRel);
        self.rebuild_wake.notify_one();
    }

    /// Rebuilds on a task of its own when asked (after erasures): once no ask has come
    /// for [`REBUILD_QUIET`] (or [`REBUILD_AT_THE_LATEST`] after the first), so that a
    /// burst of erasures shares one rebuild. Must be called inside a Tokio runtime.
    pub fn rebuild_when_asked(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let projection = self.clone();
        tokio::spawn(async move {
            loop {
                projection.rebuild_wake.notified().await;
                let first = tokio::time::Instant::now();
                loop {
                    let asked = projection.rebuilds_asked.load(Ordering::Acquire);
                    tokio::time::sleep(REBUILD_QUIET).await;
                    if projection.rebuilds_asked.load(Ordering::Acquire) == asked
                        || first.elapsed() >= REBUILD_AT_THE_LATEST
                    {
                        break;
                    }
                }
                while projection.rebuilds_asked.load(Ordering::Acquire)
                    > *projection.rebuilds_done.borrow()
                {
                    if let Err(e) = projection.rebuild().await {
                        tracing::warn!(error = %Redacted(&e), "the projections could not be rebuilt; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }

    /// Waits until every rebuild asked for so far is done: the projections are then
    /// exactly what a fresh replay of the log gives.
    pub async fn rebuilt(&self) {
        let asked = self.rebuilds_asked.load(Ordering::Acquire);
        let mut done = self.rebuilds_done.subscribe();
        let _ = done.wait_for(|done| *done >= asked).await;
    }

    /// Rebuilds the graph, every profile's state and the interaction table from the log
    /// as it is now, under the stored unmerge rules and link decisions — exactly what a
    /// fresh replay gives — e.g. after events were removed (retention, erasure). The
    /// replay runs on a thread of its own at the follower's low OS priority, so that
    /// acknowledging data comes first; the projection keeps following the log meanwhile,
    /// and only the last events and the swap hold it.
    pub async fn rebuild(self: &Arc<Self>) -> Result<(), StoreError> {
        let projection = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let (done, finished) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("identity-rebuild".into())
            .spawn(move || {
                lower_this_threads_priority();
                let _ = done.send(runtime.block_on(projection.replay_and_swap()));
            })
            .map_err(|e| StoreError::Storage(format!("cannot start a rebuild: {e}")))?;
        finished
            .await
            .map_err(|_| StoreError::Storage("a rebuild stopped half-way".into()))?
    }

    /// The rebuild itself (see [`Self::rebuild`]).
    async fn replay_and_swap(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.rebuilding.lock().await;
        let asked = self.rebuilds_asked.load(Ordering::Acquire);
        let since = self
            .forgotten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        let rules = self.next_rules.get();
        let unmerge_rules = load_unmerge_rules(&*self.log, &rules).await?;
        let links = load_link_decisions(&*self.log, &rules).await?;
        let mut rebuilt = State::new(self.new_graph(rules, unmerge_rules), links);
        let mut table = new_table(self.rows.as_deref());
        // Up to what was committed when each round began, so that a log growing faster
        // than the replay does not keep it going: a few rounds, then the rest with the
        // projection held.
        for _ in 0..REBUILD_ROUNDS {
            let target = *self.log.committed().borrow();
            self.replay_into(&mut rebuilt, Some(&mut table), Some(target))
                .await?;
            if *self.log.committed().borrow() - rebuilt.applied <= PAGE as i64 {
                break;
            }
        }
        let _writer = self.writer.lock().await;
        self.replay_into(&mut rebuilt, Some(&mut table), None)
            .await?;
        // Erasures while it read the log: their events may have been read before they
        // were removed, so they are taken out again, and another rebuild makes it exact.
        let late: Vec<Forgotten> = {
            let mut forgotten = self.forgotten.lock().unwrap_or_else(|e| e.into_inner());
            forgotten.drain(..).skip(since).collect()
        };
        for erasure in &late {
            let mut seqs = rebuilt.remove_person(None, &erasure.keys);
            seqs.extend(&erasure.seqs);
            seqs.sort_unstable();
            seqs.dedup();
            table.remove(&seqs);
        }
        self.install(rebuilt, Some(table))?;
        self.rebuilds_done
            .send_modify(|done| *done = (*done).max(asked));
        if !late.is_empty() {
            self.ask_rebuild();
        }
        Ok(())
    }

    /// A state replayed from the whole log under these rules and decisions.
    async fn replay(
        &self,
        unmerge_rules: Vec<UnmergeRule>,
        links: BTreeMap<i64, Vec<(IdKey, IdKey, Timestamp)>>,
    ) -> Result<State, StoreError> {
        let rules = self.next_rules.get();
        let mut rebuilt = State::new(self.new_graph(rules, unmerge_rules), links);
        self.replay_into(&mut rebuilt, None, None).await?;
        Ok(rebuilt)
    }

    /// Applies to `rebuilt` every event after the last it applied — up to log position
    /// `until` at least, when given — and adds them to `table` when given.
    async fn replay_into(
        &self,
        rebuilt: &mut State,
        mut table: Option<&mut InteractionTable>,
        until: Option<i64>,
    ) -> Result<(), StoreError> {
        if until.is_some_and(|until| rebuilt.applied >= until) {
            return Ok(());
        }
        let rules = rebuilt.graph.rules().clone();
        let mut reading = read_page(&self.log, rebuilt.applied, rules.clone());
        loop {
            let events = reading.page().await?;
            let Some(&(last, _)) = events.last() else {
                rebuilt.settle_links();
                return Ok(());
            };
            // The next page is read and prepared while this one is applied.
            let next = until
                .is_none_or(|until| last < until)
                .then(|| read_page(&self.log, last, rules.clone()));
            for (seq, prepared) in &events {
                let set = prepared.identifiers(&rules);
                rebuilt.apply(&self.computed, *seq, &prepared.event, &set);
                if let Some(table) = table.as_deref_mut() {
                    table.push(*seq, &prepared.event, &self.analytics);
                }
            }
            self.helper.dispose(events);
            let Some(next) = next else {
                return Ok(());
            };
            reading = next;
        }
    }

    /// Puts a rebuilt state in place; every profile may have changed, so whoever
    /// watches changes looks at them all.
    fn install(
        &self,
        mut rebuilt: State,
        table: Option<InteractionTable>,
    ) -> Result<(), StoreError> {
        let mut state = self
            .state
            .write()
            .map_err(|_| StoreError::Storage("identity state poisoned".into()))?;
        let tracking = state
            .changed
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        *rebuilt.changed.get_mut().unwrap_or_else(|e| e.into_inner()) =
            tracking.then(|| rebuilt.people.keys().copied().collect());
        // The rules with the graph they built, under the same lock.
        self.rules.set(rebuilt.graph.rules().clone());
        self.discard_snapshots();
        *state = rebuilt;
        // The table with the graph, so that no reader pairs the new one with the old.
        if let Some(table) = table {
            *self.interactions.write().unwrap_or_else(|e| e.into_inner()) = table;
        }
        drop(state);
        self.changes.notify_one();
        Ok(())
    }
}

/// A store for per-event rows: a mapped file in `folder` when given (and it can be
/// made), else the heap.
fn row_store<T: bytemuck::Pod + Send + Sync>(folder: Option<&Path>) -> Box<dyn RowStore<T>> {
    let Some(folder) = folder else {
        return Box::new(Vec::new());
    };
    match MappedRows::new_in(folder) {
        Ok(store) => Box::new(store),
        Err(e) => {
            tracing::warn!(
                folder = %folder.display(),
                error = %Redacted(&e),
                "cannot make a row file for the projections; their rows stay in memory"
            );
            Box::new(Vec::new())
        }
    }
}

/// An empty graph keeping its event links as [`row_store`] does.
fn new_graph(
    folder: Option<&Path>,
    rules: Arc<IdentityRules>,
    unmerge_rules: Vec<UnmergeRule>,
) -> IdentityGraph {
    IdentityGraph::new_in(rules, unmerge_rules, row_store(folder))
}

/// An empty interaction table keeping its rows as [`row_store`] does.
fn new_table(folder: Option<&Path>) -> InteractionTable {
    InteractionTable::new_in(row_store(folder))
}

impl IdentityProjection {
    fn new_graph(
        &self,
        rules: Arc<IdentityRules>,
        unmerge_rules: Vec<UnmergeRule>,
    ) -> IdentityGraph {
        new_graph(self.rows.as_deref(), rules, unmerge_rules)
    }
}

impl IdentityProjection {
    /// Links the profiles holding `a` and `b` by a decision taken now (after the last
    /// event applied), stored so that every replay takes it at the same point.
    pub async fn link(
        &self,
        a: &Identifier,
        b: &Identifier,
        by: &str,
        probability: Option<f64>,
    ) -> Result<ProfileId, LinkError> {
        // Not while a rebuild runs: it would put back a state built without this link.
        let _no_rebuild = self.rebuilding.lock().await;
        let _writer = self.writer.lock().await;
        let key = |i: &Identifier| {
            self.rules
                .get()
                .key_of(i)
                .ok_or_else(|| LinkError::UnknownIdentifier(i.clone()))
        };
        let (ka, kb) = (key(a)?, key(b)?);
        let at = Timestamp::now();
        let after_seq = {
            let state = self
                .state
                .read()
                .map_err(|_| StoreError::Storage("identity state poisoned".into()))?;
            state.graph.check_link(at, &ka, &kb)?;
            state.applied
        };
        let mut stored: Vec<LinkDecision> = match self.log.setting(LINK_DECISIONS).await? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => Vec::new(),
        };
        stored.push(LinkDecision {
            a: self.rules.get().identifier_of(&ka),
            b: self.rules.get().identifier_of(&kb),
            after_seq,
            at,
            by: by.to_string(),
            probability,
        });
        self.log
            .put_setting(
                LINK_DECISIONS,
                serde_json::to_value(&stored).unwrap_or_default(),
            )
            .await?;
        let mut state = self
            .state
            .write()
            .map_err(|_| StoreError::Storage("identity state poisoned".into()))?;
        state
            .links
            .entry(after_seq)
            .or_default()
            .push((ka.clone(), kb.clone(), at));
        let resolution = state.graph.link_decision(after_seq, at, &ka, &kb)?;
        let profile = state.absorb(&resolution);
        drop(state);
        self.changes.notify_one();
        profile.ok_or(LinkError::Refused(
            unavoce_core::identity::LinkRefusal::UnknownIdentifier,
        ))
    }

    /// Whether the profiles holding `a` and `b` could be linked now.
    pub fn can_link(&self, a: &Identifier, b: &Identifier) -> bool {
        match (self.rules.get().key_of(a), self.rules.get().key_of(b)) {
            (Some(ka), Some(kb)) => self.read(|g| g.check_link(Timestamp::now(), &ka, &kb).is_ok()),
            _ => false,
        }
    }

    /// The identifier a person's own events can be recorded under (a consent taken by
    /// an agent, a segment membership): `("userId", id)`, else `("anonymousId", id)`.
    pub fn event_identity(
        &self,
        node: &unavoce_core::identity::graph::ProfileNode,
    ) -> Option<(&'static str, String)> {
        self.identifier_of_kind(node, "user_id")
            .map(|v| ("userId", v))
            .or_else(|| {
                self.identifier_of_kind(node, "anonymous_id")
                    .map(|v| ("anonymousId", v))
            })
    }

    /// The profile's most recently linked identifier of type `kind` (`email`, `phone`,
    /// ...): where to reach them on a channel.
    pub fn identifier_of_kind(
        &self,
        node: &unavoce_core::identity::graph::ProfileNode,
        kind: &str,
    ) -> Option<String> {
        node.identifiers
            .iter()
            .rev()
            .map(|(k, _)| self.rules.get().identifier_of(k))
            .find(|i| i.kind.as_str() == kind)
            .map(|i| i.value)
    }

    /// The log a projection reads.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }
}

async fn load_link_decisions(
    log: &dyn EventLog,
    rules: &IdentityRules,
) -> Result<BTreeMap<i64, Vec<(IdKey, IdKey, Timestamp)>>, StoreError> {
    let mut links: BTreeMap<i64, Vec<(IdKey, IdKey, Timestamp)>> = BTreeMap::new();
    let Some(value) = log.setting(LINK_DECISIONS).await? else {
        return Ok(links);
    };
    let decisions: Vec<LinkDecision> = serde_json::from_value(value).unwrap_or_default();
    for d in decisions {
        if let (Some(a), Some(b)) = (rules.key_of(&d.a), rules.key_of(&d.b)) {
            links.entry(d.after_seq).or_default().push((a, b, d.at));
        }
    }
    Ok(links)
}

fn rules_to_json(rules: &IdentityRules, unmerge_rules: &[UnmergeRule]) -> Value {
    Value::Array(
        unmerge_rules
            .iter()
            .map(|rule| {
                json!({
                    "identifier": rules.identifier_of(&rule.key),
                    "apart_from": rule.apart_from.iter().map(|k| rules.identifier_of(k)).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

async fn load_unmerge_rules(
    log: &dyn EventLog,
    rules: &IdentityRules,
) -> Result<Vec<UnmergeRule>, StoreError> {
    let Some(Value::Array(stored)) = log.setting(UNMERGE_RULES).await? else {
        return Ok(Vec::new());
    };
    let mut loaded = Vec::new();
    for entry in stored {
        let key = serde_json::from_value::<Identifier>(entry["identifier"].clone())
            .ok()
            .and_then(|i| rules.key_of(&i));
        let apart_from: BTreeSet<_> =
            serde_json::from_value::<Vec<Identifier>>(entry["apart_from"].clone())
                .unwrap_or_default()
                .iter()
                .filter_map(|i| rules.key_of(i))
                .collect();
        match key {
            Some(key) if !apart_from.is_empty() => loaded.push(UnmergeRule { key, apart_from }),
            _ => tracing::warn!(
                "an unmerge rule names identifier types no longer configured; it is ignored"
            ),
        }
    }
    Ok(loaded)
}

impl unavoce_intake::Observer for IdentityProjection {
    fn stored(&self, events: Vec<(i64, Event)>) {
        let count = events.len();
        // Far behind: these are left to the log, which has every event; what is held
        // stays, so the projection applies it before reading the gap.
        if self.held.fetch_add(count, Ordering::AcqRel) + count > PUSHED_MAX {
            self.held.fetch_sub(count, Ordering::AcqRel);
            self.overflowed.store(true, Ordering::Release);
            self.wake.notify_one();
            self.helper.dispose(events);
            return;
        }
        // Prepared (their identifiers extracted) on the helper's thread: the sender is
        // answered once this returns, and the projection's thread is left to applying.
        let itself = self.itself.clone();
        self.helper.run(move || {
            if let Some(projection) = itself.upgrade() {
                projection.take_pushed(events);
            }
        });
    }
}

fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments. On Linux, PRIO_PROCESS
        // with who = 0 applies to the calling thread alone.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
        if result != 0 {
            tracing::debug!("could not lower an identity projection thread's priority");
        }
    }
}
