//! The deterministic identity graph.
//!
//! Each event's identifiers either find the profile(s) that already hold them or start
//! a new profile. When they touch several profiles, those are merged — unless the merged
//! profile would hold more identifiers of a type than that type's limit (two user ids, a
//! sixth e-mail), in which case the event's lowest-priority identifier is dropped and the
//! event resolved again. So a family's shared e-mail or a store's walk-in phone number
//! cannot fuse different people: the higher-priority identifiers win.
//!
//! Profile ids are the log position of the event that created the profile, and a merge
//! keeps the older profile, so replaying the same events under the same rules gives the
//! same ids.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::extract::IdentifierSet;

/// The graph's hash maps: foldhash is several times cheaper than SipHash on short keys
/// and still seeded per process, so identifiers sent by outsiders cannot be chosen to
/// collide.
type FastMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;
use super::rules::{IdKey, IdentityRules};
use crate::log_time::LogTime;
use crate::rows::{LogRows, RowStore, Rows, Runs};
use crate::small_map::{extend_exact, push_exact};

/// A profile's id: `p-` and the log position of the event that created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(pub i64);

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p-{}", self.0)
    }
}

impl FromStr for ProfileId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix("p-")
            .and_then(|n| n.parse().ok())
            .map(ProfileId)
            .ok_or(())
    }
}

/// As text (`p-123`) in human-readable formats (JSON), as the number in binary ones
/// (snapshots).
impl Serialize for ProfileId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for ProfileId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return i64::deserialize(d).map(ProfileId);
        }
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|()| serde::de::Error::custom(format!("{text:?} is not a profile id")))
    }
}

/// Why an identifier of an event was not linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// A blocked value (configured, built in, or matching a pattern).
    Blocked,
    /// Flagged automatically: seen with implausibly many people.
    Flagged,
    /// Proven shared: seen with two values of a type one person holds only one of (two
    /// user ids, two loyalty cards), so it cannot tell people apart.
    Shared,
    /// Cut from a profile by an unmerge.
    Unmerged,
    /// Linking it would exceed its type's limit.
    Limit,
    /// It would merge profiles that hold different values of a distinguishing trait
    /// (another first name, another date of birth).
    Conflict,
}

/// An identifier that was not linked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub key: IdKey,
    pub reason: DropReason,
}

/// What applying one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// The profile the event belongs to; `None` when it carried no usable identifier.
    pub profile: Option<ProfileId>,
    pub created: bool,
    /// Profiles merged into `profile` by this event.
    pub merged: Vec<ProfileId>,
    /// Identifiers newly linked to `profile`.
    pub linked: Vec<IdKey>,
    pub dropped: Vec<Dropped>,
    /// Identifiers this event caused to be flagged.
    pub flagged: Vec<IdKey>,
}

/// A merge, with the event and the identifiers that caused it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MergeRecord {
    pub seq: i64,
    pub at: Timestamp,
    pub into: ProfileId,
    pub from: ProfileId,
    /// The event's identifiers that were held by `from`.
    pub via: Vec<IdKey>,
    /// Made by a decision (a reviewed or automatic probabilistic match) taken after
    /// event `seq`, rather than by that event.
    pub decided: bool,
}

/// Why a decision to link two profiles was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum LinkRefusal {
    #[error("no profile holds one of the identifiers")]
    UnknownIdentifier,
    #[error("the identifiers are already in one profile")]
    SameProfile,
    #[error("the merged profile would exceed an identifier limit")]
    Limit,
    #[error("an unmerge keeps these identifiers apart")]
    Unmerged,
}

/// An identifier flagged as shared by too many people, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Flag {
    pub key: IdKey,
    /// The event that crossed the threshold.
    pub seq: i64,
    pub at: Timestamp,
    /// Distinct higher-priority identifiers it was seen with (at least the threshold + 1).
    pub seen_with: Vec<IdKey>,
}

/// "This identifier never links with these": what an unmerge leaves behind, so the cut
/// holds when the log is replayed and when new events arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmergeRule {
    pub key: IdKey,
    pub apart_from: BTreeSet<IdKey>,
}

/// One profile's identity: its identifiers (with when each was first linked), its events
/// (as chains, see [`IdentityGraph::events`]) and its merge history. 56 bytes, held
/// millions of times over: its first chain inline, what most profiles lack (more chains,
/// merges, distinguishing traits) boxed apart. Serialised as the flat record it was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "FlatNode")]
pub struct ProfileNode {
    pub id: ProfileId,
    pub created_at: LogTime,
    /// Lists exactly their length (a profile node is held millions of times over).
    pub identifiers: Box<[(IdKey, LogTime)]>,
    /// Its first chain (its own newest events); `count` 0 when it has none, and then
    /// no other.
    first: Chain,
    /// `None` while all of it is empty.
    more: Option<Box<NodeMore>>,
}

/// What few profiles have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NodeMore {
    /// The chains after the first: its own older ones, those of the profiles merged in.
    chains: Box<[Chain]>,
    merges: Box<[MergeRecord]>,
    traits: Box<[(u16, String)]>,
}

/// A [`ProfileNode`] as it is serialised.
#[derive(serde::Deserialize)]
struct FlatNode {
    id: ProfileId,
    created_at: LogTime,
    identifiers: Box<[(IdKey, LogTime)]>,
    chains: Vec<Chain>,
    merges: Box<[MergeRecord]>,
    traits: Box<[(u16, String)]>,
}

impl From<FlatNode> for ProfileNode {
    /// A chain without events (none is ever made) is left out.
    fn from(flat: FlatNode) -> Self {
        let mut chains = flat.chains.into_iter().filter(|c| c.count > 0);
        let mut node = ProfileNode::new(flat.id, flat.created_at);
        node.identifiers = flat.identifiers;
        if let Some(first) = chains.next() {
            node.first = first;
        }
        node.set_more(NodeMore {
            chains: chains.collect(),
            merges: flat.merges,
            traits: flat.traits,
        });
        node
    }
}

impl serde::Serialize for ProfileNode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Chains<'a>(&'a ProfileNode);
        impl serde::Serialize for Chains<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.chains())
            }
        }
        let mut flat = s.serialize_struct("FlatNode", 6)?;
        flat.serialize_field("id", &self.id)?;
        flat.serialize_field("created_at", &self.created_at)?;
        flat.serialize_field("identifiers", &self.identifiers)?;
        flat.serialize_field("chains", &Chains(self))?;
        flat.serialize_field("merges", self.merges())?;
        flat.serialize_field("traits", self.traits())?;
        flat.end()
    }
}

impl ProfileNode {
    /// A new profile without identifiers or events.
    pub fn new(id: ProfileId, created_at: LogTime) -> Self {
        ProfileNode {
            id,
            created_at,
            identifiers: Box::default(),
            first: Chain { last: 0, count: 0 },
            more: None,
        }
    }

    /// Its id and those of the profiles merged into it (what runs, decisions and sends
    /// made before a merge are kept under).
    pub fn ids(&self) -> impl Iterator<Item = ProfileId> + '_ {
        std::iter::once(self.id).chain(self.merges().iter().map(|m| m.from))
    }

    /// Its events: its own chain first, then those of the profiles merged into it.
    pub fn chains(&self) -> impl Iterator<Item = &Chain> {
        let first = (self.first.count > 0).then_some(&self.first);
        let more = self.more.as_ref().map_or(&[][..], |m| &m.chains);
        first.into_iter().chain(more)
    }

    /// Its merge history.
    pub fn merges(&self) -> &[MergeRecord] {
        self.more.as_ref().map_or(&[], |m| &m.merges)
    }

    /// The first value seen of each distinguishing trait.
    pub fn traits(&self) -> &[(u16, String)] {
        self.more.as_ref().map_or(&[], |m| &m.traits)
    }

    /// How many events it has.
    pub fn event_count(&self) -> u64 {
        self.chains().map(|c| c.count).sum()
    }

    /// The log position of its latest event.
    pub fn last_event(&self) -> Option<i64> {
        self.chains().map(|c| c.last).max()
    }

    /// Changes what few profiles have (only ever adding to it).
    fn change_more(&mut self, f: impl FnOnce(&mut NodeMore)) {
        match &mut self.more {
            Some(more) => f(more),
            None => {
                let mut more = NodeMore::default();
                f(&mut more);
                self.set_more(more);
            }
        }
    }

    /// Adds chains after its own (a merge).
    fn append_chains(&mut self, chains: impl IntoIterator<Item = Chain>) {
        let mut chains = chains.into_iter().filter(|c| c.count > 0).peekable();
        if self.first.count == 0
            && let Some(first) = chains.next()
        {
            self.first = first;
        }
        let rest: Box<[Chain]> = chains.collect();
        if !rest.is_empty() {
            self.change_more(|m| extend_exact(&mut m.chains, rest));
        }
    }

    fn set_more(&mut self, more: NodeMore) {
        let empty = more.chains.is_empty() && more.merges.is_empty() && more.traits.is_empty();
        self.more = (!empty).then(|| Box::new(more));
    }

    /// Records the distinguishing trait `name`'s first value, unless it has one.
    fn keep_trait(&mut self, name: u16, value: &str) {
        if !self.traits().iter().any(|(n, _)| *n == name) {
            self.change_more(|m| push_exact(&mut m.traits, (name, value.to_string())));
        }
    }
}
/// A profile's events, newest first: the newest's log position, and how many there are.
/// Each event's [`EventLink`] leads to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chain {
    pub last: i64,
    pub count: u64,
}

/// An event's link to the previous event of its profile's chain: how many log positions
/// back it is (`back` 0: the first of its chain, or an event attributed to no one). One
/// per event applied, in log order: the graph's only state that grows with the log, so
/// it is kept in [`LogRows`] (a mapped file in a server with a data folder), which holds
/// the event's own position apart; 4 bytes (a profile whose next event comes more than
/// `u32::MAX` positions after its last starts a new chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct EventLink {
    pub back: u32,
}

impl EventLink {
    /// The link of the first event of a chain.
    const FIRST: EventLink = EventLink { back: 0 };

    /// The position of the previous event, for the event at `seq`.
    pub fn prev(self, seq: i64) -> Option<i64> {
        (self.back > 0).then(|| seq - i64::from(self.back))
    }
}

/// The identity graph. See the module docs.
///
/// Serialised without its rules and unmerge rules (a snapshot is tied to them by a
/// fingerprint instead) and without the owner of each identifier (the profile node that
/// lists it, found again on reading); read back with [`GraphParts`] and
/// [`IdentityGraph::from_parts`].
#[derive(Debug, Clone)]
pub struct IdentityGraph {
    rules: Arc<IdentityRules>,
    /// Each identifier's profile: always the node whose `identifiers` list it.
    owners: FastMap<IdKey, ProfileId>,
    /// Boxed: the tree's nodes, about half full, then hold pointers, not whole nodes.
    profiles: BTreeMap<ProfileId, Box<ProfileNode>>,
    redirects: FastMap<ProfileId, ProfileId>,
    /// For each identifier, the distinct higher-priority identifiers seen with it
    /// (capped), the evidence for `shared` and `flags`.
    seen_with: FastMap<IdKey, Box<[IdKey]>>,
    /// Identifiers proven shared by two people; they no longer link.
    shared: FastMap<IdKey, (IdKey, IdKey)>,
    flags: BTreeMap<IdKey, Flag>,
    unmerge_rules: Vec<UnmergeRule>,
    unattributed: u64,
    /// Serialised as their positions; the rows are written and read as raw rows (see
    /// [`Self::event_links`]).
    links: LogRows<EventLink>,
}

/// A serialised [`IdentityGraph`] read back, waiting for the rules it was built under
/// and its event links.
#[derive(Debug, serde::Deserialize)]
pub struct GraphParts {
    profiles: BTreeMap<ProfileId, Box<ProfileNode>>,
    redirects: FastMap<ProfileId, ProfileId>,
    seen_with: FastMap<IdKey, Box<[IdKey]>>,
    shared: FastMap<IdKey, (IdKey, IdKey)>,
    flags: BTreeMap<IdKey, Flag>,
    unattributed: u64,
    /// The event links' positions.
    links: Runs,
}

/// Two graphs are equal when they hold the same profiles, identifiers and evidence
/// under the same configuration and unmerge rules.
impl PartialEq for IdentityGraph {
    fn eq(&self, other: &Self) -> bool {
        self.rules.config == other.rules.config
            && self.owners == other.owners
            && self.profiles == other.profiles
            && self.redirects == other.redirects
            && self.seen_with == other.seen_with
            && self.shared == other.shared
            && self.flags == other.flags
            && self.unmerge_rules == other.unmerge_rules
            && self.unattributed == other.unattributed
            && self.links == other.links
    }
}

/// As [`GraphParts`] reads it back. The evidence is written in the profiles' order (each
/// node's identifiers', then that of identifiers no one holds), so that in a binary
/// format written by [`IdKey::written_once`] a key's later references follow its first
/// closely, and reading them back stays in cache.
impl Serialize for IdentityGraph {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        let mut fields = s.serialize_struct("IdentityGraph", 7)?;
        fields.serialize_field("profiles", &self.profiles)?;
        fields.serialize_field("redirects", &self.redirects)?;
        fields.serialize_field("seen_with", &SeenInProfileOrder(self))?;
        fields.serialize_field("shared", &self.shared)?;
        fields.serialize_field("flags", &self.flags)?;
        fields.serialize_field("unattributed", &self.unattributed)?;
        fields.serialize_field("links", &self.links)?;
        fields.end()
    }
}

/// A graph's `seen_with`, in the order of its profiles.
struct SeenInProfileOrder<'a>(&'a IdentityGraph);

impl Serialize for SeenInProfileOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};

        let graph = self.0;
        let held = graph
            .profiles
            .values()
            .flat_map(|node| node.identifiers.iter());
        let held = held.filter_map(|(key, _)| graph.seen_with.get_key_value(key));
        let unheld = graph
            .seen_with
            .iter()
            .filter(|(key, _)| !graph.owners.contains_key(*key));
        let mut map = s.serialize_map(Some(graph.seen_with.len()))?;
        let mut written = 0;
        for (key, seen) in held.chain(unheld) {
            map.serialize_entry(key, seen)?;
            written += 1;
        }
        if written != graph.seen_with.len() {
            return Err(S::Error::custom(format!(
                "the evidence of {written} identifiers written, of {}: an identifier is listed by two profiles, or its owner is not the profile that lists it",
                graph.seen_with.len()
            )));
        }
        map.end()
    }
}

impl IdentityGraph {
    /// An empty graph.
    pub fn new(rules: Arc<IdentityRules>, unmerge_rules: Vec<UnmergeRule>) -> Self {
        IdentityGraph {
            rules,
            owners: FastMap::default(),
            profiles: BTreeMap::new(),
            redirects: FastMap::default(),
            seen_with: FastMap::default(),
            shared: FastMap::default(),
            flags: BTreeMap::new(),
            unmerge_rules,
            unattributed: 0,
            links: LogRows::default(),
        }
    }

    /// An empty graph keeping its event links in `links` (see [`EventLink`]).
    pub fn new_in(
        rules: Arc<IdentityRules>,
        unmerge_rules: Vec<UnmergeRule>,
        links: Box<dyn RowStore<EventLink>>,
    ) -> Self {
        IdentityGraph {
            links: LogRows::new_in(links),
            ..Self::new(rules, unmerge_rules)
        }
    }

    /// The graph serialised as `parts`, with its event `links` (see
    /// [`Self::event_links`]), under the rules and unmerge rules it was built with (the
    /// caller checks they are those: the parts do not hold them). Refused when the links
    /// are not those the parts place.
    pub fn from_parts(
        parts: GraphParts,
        rules: Arc<IdentityRules>,
        unmerge_rules: Vec<UnmergeRule>,
        links: Rows<EventLink>,
    ) -> Result<Self, String> {
        let GraphParts {
            profiles,
            redirects,
            seen_with,
            shared,
            flags,
            unattributed,
            links: positions,
        } = parts;
        let links =
            LogRows::from_parts(links, positions).map_err(|e| format!("the event links: {e}"))?;
        let held = profiles.values().map(|node| node.identifiers.len()).sum();
        let mut owners = FastMap::with_capacity_and_hasher(held, Default::default());
        for node in profiles.values() {
            for (key, _) in &node.identifiers {
                if let Some(other) = owners.insert(key.clone(), node.id) {
                    return Err(format!(
                        "an identifier of type {} is held by two profiles, {other} and {}",
                        key.kind(),
                        node.id
                    ));
                }
            }
        }
        Ok(IdentityGraph {
            rules,
            owners,
            profiles,
            redirects,
            seen_with,
            shared,
            flags,
            unmerge_rules,
            unattributed,
            links,
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> &Arc<IdentityRules> {
        &self.rules
    }

    /// Applies the event at log position `seq`, which happened at `at`.
    /// Events must be applied in log order.
    pub fn apply(&mut self, seq: i64, at: Timestamp, set: &IdentifierSet) -> Resolution {
        let resolution = self.resolve(seq, at, set);
        // Every event has a link row, attributed or not, so that the links are dense in
        // log positions (a chain's step is a lookup in few runs); one the resolution
        // added already is kept.
        self.links.push(seq, EventLink::FIRST);
        resolution
    }

    fn resolve(&mut self, seq: i64, at: Timestamp, set: &IdentifierSet) -> Resolution {
        let mut resolution = Resolution::default();
        let mut ids = set.keys.clone();
        if let Some(previous) = &set.alias_previous
            && let Some(key) = self.alias_key(previous)
        {
            ids.push(key);
            ids.sort();
            ids.dedup();
        }
        ids.retain(|key| {
            if !self.rules.is_blocked(key.value()) {
                return true;
            }
            resolution.dropped.push(Dropped {
                key: key.clone(),
                reason: DropReason::Blocked,
            });
            false
        });
        // An unmerge cuts the link before anything learns from the event: the graph is
        // what it would be had the cut identifier never come with those it was cut from,
        // so that meeting does not count as evidence of sharing either.
        for rule in &self.unmerge_rules {
            if ids.contains(&rule.key) && ids.iter().any(|k| rule.apart_from.contains(k)) {
                ids.retain(|k| k != &rule.key);
                resolution.dropped.push(Dropped {
                    key: rule.key.clone(),
                    reason: DropReason::Unmerged,
                });
            }
        }
        self.detect_shared(seq, at, &mut ids, &mut resolution);
        // The common case: every identifier is already in one profile.
        if let Some(first) = ids.first().and_then(|k| self.owners.get(k)).copied() {
            let home = self.current(first);
            let all_home = ids.iter().all(|k| {
                self.owners
                    .get(k)
                    .is_some_and(|p| *p == home || self.current(*p) == home)
            });
            let agrees = set.traits.iter().all(|(name, value)| {
                self.profiles[&home]
                    .traits()
                    .iter()
                    .all(|(n, v)| n != name || v == value)
            });
            if all_home && agrees {
                let node = self
                    .profiles
                    .get_mut(&home)
                    .expect("owners point to live profiles");
                add_event(node, &mut self.links, seq);
                for (name, value) in &set.traits {
                    node.keep_trait(*name, value);
                }
                resolution.profile = Some(home);
                return resolution;
            }
        }
        loop {
            if ids.is_empty() {
                self.unattributed += 1;
                return resolution;
            }
            let matched: BTreeSet<ProfileId> = ids
                .iter()
                .filter_map(|k| self.owners.get(k))
                .map(|p| self.current(*p))
                .collect();
            let conflicting = self.conflicting(&matched, &ids, &set.traits);
            if !conflicting.is_empty() {
                for key in conflicting {
                    ids.retain(|k| k != &key);
                    resolution.dropped.push(Dropped {
                        key,
                        reason: DropReason::Conflict,
                    });
                }
                continue;
            }
            if self.within_limits(&matched, &ids, at) {
                let profile = self.link(seq, at, &ids, matched, &mut resolution);
                if let Some(node) = self.profiles.get_mut(&profile) {
                    for (name, value) in &set.traits {
                        node.keep_trait(*name, value);
                    }
                }
                resolution.profile = Some(profile);
                return resolution;
            }
            let key = self.least_wanted(&ids);
            ids.retain(|k| k != &key);
            resolution.dropped.push(Dropped {
                key,
                reason: DropReason::Limit,
            });
        }
    }

    /// An alias's `previousId`: an earlier user id when one is known, else an anonymous id.
    fn alias_key(&self, previous: &str) -> Option<IdKey> {
        let user = self.rules.type_index("user_id").and_then(|kind| {
            let value = self.rules.normalise(kind, previous)?;
            Some(IdKey::new(kind, &value))
        });
        if let Some(user) = user.filter(|k| self.owners.contains_key(k)) {
            return Some(user);
        }
        let kind = self.rules.type_index("anonymous_id")?;
        let value = self.rules.normalise(kind, previous)?;
        Some(IdKey::new(kind, &value))
    }

    /// Records, for each identifier of the event, the higher-priority identifiers it
    /// came with. One seen with two values of a type limited to one per person is
    /// proven shared and stops linking; one seen with more than `flag_after` values of a
    /// type is flagged for the operator too.
    fn detect_shared(
        &mut self,
        seq: i64,
        at: Timestamp,
        ids: &mut Vec<IdKey>,
        resolution: &mut Resolution,
    ) {
        let threshold = self.rules.config.flag_after;
        for key in ids.iter() {
            if !ids.iter().any(|k| k.kind() < key.kind()) {
                continue;
            }
            // Only a new anchor can change the evidence.
            let known = self.seen_with.get(key);
            let fresh: Vec<&IdKey> = ids
                .iter()
                .filter(|a| a.kind() < key.kind() && known.is_none_or(|seen| !seen.contains(a)))
                .collect();
            if fresh.is_empty() {
                continue;
            }
            let seen = self
                .seen_with
                .entry(own_copy(&self.owners, key))
                .or_default();
            for anchor in fresh {
                let same_kind = seen.iter().filter(|s| s.kind() == anchor.kind()).count();
                if same_kind > threshold {
                    continue;
                }
                push_exact(seen, own_copy(&self.owners, anchor));
                let values: Vec<&IdKey> =
                    seen.iter().filter(|s| s.kind() == anchor.kind()).collect();
                if values.len() > threshold && !self.flags.contains_key(key) {
                    self.flags.insert(
                        key.clone(),
                        Flag {
                            key: key.clone(),
                            seq,
                            at,
                            seen_with: values.iter().map(|k| (*k).clone()).collect(),
                        },
                    );
                    resolution.flagged.push(key.clone());
                }
                if values.len() >= 2
                    && self.rules.type_rule(anchor.kind()).limit == Some(1)
                    && !self.shared.contains_key(key)
                {
                    self.shared
                        .insert(key.clone(), (values[0].clone(), values[1].clone()));
                }
            }
        }
        ids.retain(|k| {
            let reason = if self.flags.contains_key(k) {
                DropReason::Flagged
            } else if self.shared.contains_key(k) {
                DropReason::Shared
            } else {
                return true;
            };
            resolution.dropped.push(Dropped {
                key: k.clone(),
                reason,
            });
            false
        });
    }

    /// The identifiers of the event that lead to a profile disagreeing on a
    /// distinguishing trait — with the event itself, or with the profile of the event's
    /// highest-priority identifier. Empty when there is no disagreement.
    fn conflicting(
        &self,
        matched: &BTreeSet<ProfileId>,
        ids: &[IdKey],
        traits: &[(u16, String)],
    ) -> Vec<IdKey> {
        if matched.len() + usize::from(!traits.is_empty()) < 2 {
            return Vec::new();
        }
        let owner = |k: &IdKey| self.owners.get(k).map(|p| self.current(*p));
        // What the event says, completed by the profile of its best identifier.
        let mut reference: Vec<(u16, String)> = traits.to_vec();
        let home = ids.iter().find_map(owner);
        if let Some(home) = home {
            for (name, value) in self.profiles[&home].traits() {
                if !reference.iter().any(|(n, _)| n == name) {
                    reference.push((*name, value.clone()));
                }
            }
        }
        let disagrees = |profile: &ProfileId| {
            self.profiles[profile]
                .traits()
                .iter()
                .any(|(name, value)| reference.iter().any(|(n, v)| n == name && v != value))
        };
        let against: BTreeSet<ProfileId> =
            matched.iter().filter(|p| disagrees(p)).copied().collect();
        ids.iter()
            .filter(|k| owner(k).is_some_and(|p| against.contains(&p)))
            .cloned()
            .collect()
    }

    /// Whether the profiles in `matched`, merged, plus `ids`, respect every limit.
    fn within_limits(&self, matched: &BTreeSet<ProfileId>, ids: &[IdKey], at: Timestamp) -> bool {
        let types = &self.rules.config.types;
        let counted = |kind: u16, first: LogTime| match types[kind as usize].window_days {
            Some(days) => {
                first >= LogTime::of(at - SignedDuration::from_hours(24 * i64::from(days)))
            }
            None => true,
        };
        // Each identifier is held by one profile at most, so the merged profile's counts
        // are the sums of the matched profiles' counts plus the event's new identifiers.
        let mut counts = vec![0usize; types.len()];
        for profile in matched {
            for (key, first) in &self.profiles[profile].identifiers {
                if counted(key.kind(), *first) {
                    counts[key.kind() as usize] += 1;
                }
            }
        }
        for key in ids {
            if !self.owners.contains_key(key) && counted(key.kind(), LogTime::of(at)) {
                counts[key.kind() as usize] += 1;
            }
        }
        counts
            .iter()
            .zip(types)
            .all(|(count, rule)| rule.limit.is_none_or(|limit| *count <= limit))
    }

    /// The identifier to give up when limits are exceeded: of the lowest priority type,
    /// preferably one held by a profile other than the event's highest-priority match.
    fn least_wanted(&self, ids: &[IdKey]) -> IdKey {
        let lowest = ids.iter().map(|k| k.kind()).max().unwrap_or_default();
        let anchor_owner = ids
            .iter()
            .find_map(|k| self.owners.get(k))
            .map(|p| self.current(*p));
        let candidates: Vec<&IdKey> = ids.iter().filter(|k| k.kind() == lowest).collect();
        candidates
            .iter()
            .rev()
            .find(|k| {
                self.owners
                    .get(**k)
                    .is_some_and(|p| Some(self.current(*p)) != anchor_owner)
            })
            .or(candidates.last())
            .map(|k| (*k).clone())
            .unwrap_or_else(|| ids[ids.len() - 1].clone())
    }

    /// Whether [`Self::link_decision`] would link `a` and `b` now, without doing it.
    /// Distinguishing traits do not block a decision: a probabilistic match has weighed
    /// the differences (a typo in a first name), and a reviewer has looked at them.
    pub fn check_link(&self, at: Timestamp, a: &IdKey, b: &IdKey) -> Result<(), LinkRefusal> {
        let owner = |k: &IdKey| self.owners.get(k).map(|p| self.current(*p));
        let (Some(pa), Some(pb)) = (owner(a), owner(b)) else {
            return Err(LinkRefusal::UnknownIdentifier);
        };
        if pa == pb {
            return Err(LinkRefusal::SameProfile);
        }
        let matched: BTreeSet<ProfileId> = [pa, pb].into();
        if !self.within_limits(&matched, &[], at) {
            return Err(LinkRefusal::Limit);
        }
        // An unmerge outranks a match: what it cut apart stays apart.
        let held = |p: ProfileId| -> BTreeSet<&IdKey> {
            self.profiles[&p]
                .identifiers
                .iter()
                .map(|(k, _)| k)
                .collect()
        };
        let (sa, sb) = (held(pa), held(pb));
        let apart = |one: &BTreeSet<&IdKey>, other: &BTreeSet<&IdKey>| {
            self.unmerge_rules
                .iter()
                .any(|r| one.contains(&r.key) && other.iter().any(|k| r.apart_from.contains(*k)))
        };
        if apart(&sa, &sb) || apart(&sb, &sa) {
            return Err(LinkRefusal::Unmerged);
        }
        Ok(())
    }

    /// Links the profiles holding `a` and `b` by a decision taken after log position
    /// `seq` (a reviewed or automatic probabilistic match): merged as if an event had
    /// carried both, unless a limit or a distinguishing trait forbids it.
    pub fn link_decision(
        &mut self,
        seq: i64,
        at: Timestamp,
        a: &IdKey,
        b: &IdKey,
    ) -> Result<Resolution, LinkRefusal> {
        self.check_link(at, a, b)?;
        let owner = |k: &IdKey| self.owners.get(k).map(|p| self.current(*p));
        let matched: BTreeSet<ProfileId> = [owner(a), owner(b)].into_iter().flatten().collect();
        let ids = [own_copy(&self.owners, a), own_copy(&self.owners, b)];
        let mut resolution = Resolution::default();
        resolution.profile = Some(self.merge(seq, at, &ids, matched, &mut resolution, true));
        Ok(resolution)
    }

    fn link(
        &mut self,
        seq: i64,
        at: Timestamp,
        ids: &[IdKey],
        matched: BTreeSet<ProfileId>,
        resolution: &mut Resolution,
    ) -> ProfileId {
        self.merge(seq, at, ids, matched, resolution, false)
    }

    /// Merges `matched` (creating a profile when empty) and links `ids`; the event at
    /// `seq` joins the profile unless this is a decision.
    fn merge(
        &mut self,
        seq: i64,
        at: Timestamp,
        ids: &[IdKey],
        matched: BTreeSet<ProfileId>,
        resolution: &mut Resolution,
        decided: bool,
    ) -> ProfileId {
        let mut matched = matched.into_iter();
        let survivor = match matched.next() {
            Some(oldest) => oldest,
            None => {
                let id = ProfileId(seq);
                self.profiles
                    .insert(id, Box::new(ProfileNode::new(id, LogTime::of(at))));
                resolution.created = true;
                id
            }
        };
        for absorbed in matched {
            let Some(node) = self.profiles.remove(&absorbed) else {
                continue;
            };
            let via: Vec<IdKey> = ids
                .iter()
                .filter(|k| self.owners.get(*k).map(|p| self.current(*p)) == Some(absorbed))
                .cloned()
                .collect();
            let ProfileNode {
                identifiers,
                first,
                more,
                ..
            } = *node;
            let more = more.map(|m| *m).unwrap_or_default();
            for (key, _) in &identifiers {
                self.owners.insert(key.clone(), survivor);
            }
            self.redirects.insert(absorbed, survivor);
            let target = self
                .profiles
                .get_mut(&survivor)
                .expect("the surviving profile exists");
            extend_exact(&mut target.identifiers, identifiers);
            target.append_chains(std::iter::once(first).chain(more.chains));
            for (name, value) in &more.traits {
                target.keep_trait(*name, value);
            }
            let record = MergeRecord {
                seq,
                at,
                into: survivor,
                from: absorbed,
                via,
                decided,
            };
            target.change_more(|m| {
                extend_exact(&mut m.merges, more.merges);
                push_exact(&mut m.merges, record);
            });
            resolution.merged.push(absorbed);
        }
        let target = self
            .profiles
            .get_mut(&survivor)
            .expect("the surviving profile exists");
        for key in ids {
            if !self.owners.contains_key(key) {
                self.owners.insert(key.clone(), survivor);
                push_exact(&mut target.identifiers, (key.clone(), LogTime::of(at)));
                resolution.linked.push(key.clone());
            }
        }
        if !decided {
            add_event(target, &mut self.links, seq);
        }
        survivor
    }

    /// The profile an id now lives in, following merges.
    fn current(&self, mut id: ProfileId) -> ProfileId {
        while let Some(next) = self.redirects.get(&id) {
            id = *next;
        }
        id
    }

    /// A profile by id; an id merged away resolves to the profile it was merged into.
    pub fn profile(&self, id: ProfileId) -> Option<&ProfileNode> {
        self.profiles.get(&self.current(id)).map(|node| &**node)
    }

    /// Takes a profile out at once (an erasure): the profile, its identifiers and the
    /// ids merged into it, and what the graph keeps about those identifiers (seen with,
    /// shared, flagged); the node removed, if there was one. What other identifiers'
    /// counts learnt from them stays until the graph is built again from the log without
    /// its events, which is what makes it exact.
    pub fn remove_profile(&mut self, id: ProfileId) -> Option<RemovedProfile> {
        let node = self.profiles.remove(&self.current(id))?;
        // Their event links stay, reached from no profile, until the graph is built again
        // (removing rows costs a pass over them all, as the interaction table's would).
        let events = self.events(&node);
        let theirs: BTreeSet<&IdKey> = node.identifiers.iter().map(|(k, _)| k).collect();
        for key in &theirs {
            self.owners.remove(*key);
            self.seen_with.remove(*key);
        }
        self.shared
            .retain(|k, (a, b)| !theirs.contains(k) && !theirs.contains(a) && !theirs.contains(b));
        self.flags.retain(|k, _| !theirs.contains(k));
        for flag in self.flags.values_mut() {
            flag.seen_with.retain(|k| !theirs.contains(k));
        }
        for merge in node.merges() {
            self.redirects.remove(&merge.from);
        }
        Some(RemovedProfile {
            node: *node,
            events,
        })
    }

    /// The log positions of a profile's events, ascending.
    pub fn events(&self, node: &ProfileNode) -> Vec<i64> {
        let mut events = Vec::with_capacity(usize::try_from(node.event_count()).unwrap_or(0));
        self.for_each_event(node, |seq| events.push(seq));
        events.sort_unstable();
        events.dedup();
        events
    }

    /// Calls `f` with the log position of each of a profile's events, in no set order
    /// (its chains walked, newest first).
    pub fn for_each_event(&self, node: &ProfileNode, mut f: impl FnMut(i64)) {
        let links = self.links.as_slice();
        for chain in node.chains() {
            let mut seq = chain.last;
            while seq > 0 {
                f(seq);
                // Links point back; anything else (a damaged row) ends the walk.
                seq = match self.links.position(seq) {
                    Some(i) => links[i].prev(seq).unwrap_or(0),
                    None => 0,
                };
            }
        }
    }

    /// Every event's link, in log order: serialising the graph writes only their
    /// positions.
    pub fn event_links(&self) -> &LogRows<EventLink> {
        &self.links
    }

    /// The event links' heap memory, in bytes (only their positions' runs when the rows
    /// are kept in a mapped file).
    pub fn links_heap_bytes(&self) -> usize {
        self.links.heap_bytes()
    }

    /// The profile holding an identifier.
    pub fn lookup(&self, key: &IdKey) -> Option<&ProfileNode> {
        self.owners.get(key).and_then(|p| self.profile(*p))
    }

    /// Profiles in id order, after `after`.
    pub fn profiles_after(
        &self,
        after: Option<ProfileId>,
    ) -> impl Iterator<Item = &ProfileNode> + '_ {
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        self.profiles
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, node)| &**node)
    }

    /// How many profiles there are.
    pub fn profile_count(&self) -> usize {
        self.profiles.len()
    }

    /// Events that carried no usable identifier.
    pub fn unattributed(&self) -> u64 {
        self.unattributed
    }

    /// Identifiers flagged as shared by implausibly many people.
    pub fn flags(&self) -> impl Iterator<Item = &Flag> {
        self.flags.values()
    }

    /// Whether an identifier no longer tells people apart (flagged or proven shared).
    pub fn is_ambiguous(&self, key: &IdKey) -> bool {
        self.flags.contains_key(key) || self.shared.contains_key(key)
    }

    /// Identifiers proven shared (seen with two identifiers that each belong to one
    /// person only), with that evidence.
    pub fn shared(&self) -> impl Iterator<Item = (&IdKey, &(IdKey, IdKey))> {
        self.shared.iter()
    }

    /// The unmerge rules in force.
    pub fn unmerge_rules(&self) -> &[UnmergeRule] {
        &self.unmerge_rules
    }

    /// The rule that cuts `key` from the profile holding it, or why there is none.
    pub fn unmerge_rule_for(&self, profile: ProfileId, key: &IdKey) -> Option<UnmergeRule> {
        let node = self.profile(profile)?;
        if !node.identifiers.iter().any(|(k, _)| k == key) {
            return None;
        }
        let apart_from: BTreeSet<IdKey> = node
            .identifiers
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| k != key)
            .collect();
        (!apart_from.is_empty()).then(|| UnmergeRule {
            key: key.clone(),
            apart_from,
        })
    }
}

/// Adds the event at `seq` to the front of the profile's own chain (once).
fn add_event(node: &mut ProfileNode, links: &mut LogRows<EventLink>, seq: i64) {
    if node.chains().any(|c| c.last >= seq) || links.last_seq().is_some_and(|l| l >= seq) {
        return;
    }
    // The distance back to its first chain's last event, when a link can hold it.
    let own = &mut node.first;
    match (own.count > 0)
        .then(|| u32::try_from(seq - own.last).ok())
        .flatten()
    {
        Some(back) => {
            links.push(seq, EventLink { back });
            own.last = seq;
            own.count += 1;
        }
        None => {
            // A new chain, first (the one before, if any, is kept after it).
            links.push(seq, EventLink::FIRST);
            let new = Chain {
                last: seq,
                count: 1,
            };
            let before = std::mem::replace(own, new);
            if before.count > 0 {
                node.change_more(|m| {
                    m.chains = std::iter::once(before)
                        .chain(m.chains.iter().copied())
                        .collect();
                });
            }
        }
    }
}

/// A profile taken out of the graph, with its events' log positions (ascending).
#[derive(Debug)]
pub struct RemovedProfile {
    pub node: ProfileNode,
    pub events: Vec<i64>,
}

/// The graph's own copy of `key` when it knows the identifier (an event's is a new
/// one), so that what the graph keeps of an identifier shares one text. Taken only
/// where a key is kept, not for every event.
fn own_copy(owners: &FastMap<IdKey, ProfileId>, key: &IdKey) -> IdKey {
    owners
        .get_key_value(key)
        .map_or_else(|| key.clone(), |(known, _)| known.clone())
}

#[cfg(test)]
mod tests;
