//! Properties of the identity graph (`identity::graph`), over random histories of events
//! that share identifiers, run into the limits, carry blocked values, aliases,
//! distinguishing traits and link decisions:
//!
//! - an unmerge (a rule, then a replay) gives the graph a replay of the same log gives
//!   had the cut link never been seen;
//! - the same events in the same order give the same graph, profile ids included;
//! - whatever the history, the graph keeps its own rules (one owner per identifier,
//!   limits, blocked values, ids that are log positions).
//!
//! `PROPTEST_CASES` runs more cases than the defaults here.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use unavoce_core::identity::graph::{MergeRecord, ProfileNode};
use unavoce_core::identity::{
    EventLink, Flag, GraphParts, IdKey, IdentifierSet, IdentityConfig, IdentityGraph,
    IdentityRules, ProfileId, UnmergeRule,
};
use unavoce_core::log_time::LogTime;
use unavoce_core::rows::Rows;

/// The cases of each property: `PROPTEST_CASES`, else `default`.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        // Failures become regular tests below, not files in the tree.
        failure_persistence: None,
        ..Config::default()
    }
}

/// The values of each identifier type, in the default priority order (user id, e-mail,
/// loyalty card, phone, device, anonymous id): few, so that events share them; the last
/// of each is blocked (built in, configured, or by a pattern).
const POOLS: [&[&str]; 6] = [
    &["u0", "u1", "u2", "u3", "guest-7"],
    &[
        "e0@example.com",
        "e1@example.com",
        "e2@example.com",
        "e3@example.com",
        "test@test.com",
    ],
    &["L0", "L1", "L2", "blocked-card"],
    &["+393331234560", "+393331234561", "+393331234562", "null"],
    &["d0", "d1", "d2", "0000000"],
    &["a0", "a1", "a2", "a3", "a4", "anonymous"],
];
/// An alias's `previousId`: an earlier user id or anonymous id.
const PREVIOUS: [&str; 6] = ["u0", "u1", "a0", "a1", "a2", "null"];
const FIRST_NAMES: [&str; 2] = ["anna", "luca"];
const BIRTH_DATES: [&str; 2] = ["1980-01-01", "2010-06-30"];

/// One entry of the log, or an operator's (or matcher's) decision to link two
/// identifiers' profiles, taken after the events before it.
#[derive(Debug, Clone)]
enum Op {
    Event {
        ids: Vec<(u16, usize)>,
        first_name: Option<usize>,
        birth_date: Option<usize>,
        alias_previous: Option<usize>,
        /// Minutes since the previous entry.
        after: i64,
    },
    Link {
        a: (u16, usize),
        b: (u16, usize),
    },
}

fn id() -> impl Strategy<Value = (u16, usize)> {
    (0u16..6).prop_flat_map(|kind| (Just(kind), 0..POOLS[kind as usize].len()))
}

fn op() -> impl Strategy<Value = Op> {
    let event = (
        prop::collection::vec(id(), 0..4),
        prop::option::weighted(0.15, 0..FIRST_NAMES.len()),
        prop::option::weighted(0.1, 0..BIRTH_DATES.len()),
        prop::option::weighted(0.1, 0..PREVIOUS.len()),
        prop_oneof![0i64..120, 0i64..4_000],
    )
        .prop_map(
            |(ids, first_name, birth_date, alias_previous, after)| Op::Event {
                ids,
                first_name,
                birth_date,
                alias_previous,
                after,
            },
        );
    prop_oneof![
        9 => event,
        1 => (id(), id()).prop_map(|(a, b)| Op::Link { a, b }),
    ]
}

/// Rules whose limits bite with these few values: a low flagging threshold, one to
/// three e-mails, sometimes one device a day; a configured value and a pattern blocked.
fn rules() -> impl Strategy<Value = Arc<IdentityRules>> {
    (
        prop::sample::select(vec![2usize, 3, 8]),
        1usize..=3,
        any::<bool>(),
    )
        .prop_map(|(flag_after, emails, device_a_day)| {
            let mut config = IdentityConfig {
                flag_after,
                blocked_values: vec!["Blocked-Card".into()],
                blocked_patterns: vec!["^guest-".into()],
                ..IdentityConfig::default()
            };
            config.types[1].limit = Some(emails);
            if device_a_day {
                config.types[4].limit = Some(1);
                config.types[4].window_days = Some(1);
            }
            IdentityRules::new(config).expect("valid rules")
        })
}

fn key((kind, i): (u16, usize)) -> IdKey {
    IdKey::new(kind, POOLS[kind as usize][i])
}

fn start() -> Timestamp {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

/// The identifiers an event carries, as `extract` would give them.
fn identifier_set(rules: &IdentityRules, op: &Op) -> Option<IdentifierSet> {
    let Op::Event {
        ids,
        first_name,
        birth_date,
        alias_previous,
        ..
    } = op
    else {
        return None;
    };
    let mut keys: Vec<IdKey> = ids.iter().copied().map(key).collect();
    keys.sort();
    keys.dedup();
    let position = |name: &str| {
        rules
            .config
            .distinguishing_traits
            .iter()
            .position(|t| t == name)
            .expect("a default distinguishing trait") as u16
    };
    let mut traits = Vec::new();
    if let Some(i) = first_name {
        traits.push((position("firstName"), FIRST_NAMES[*i].to_string()));
    }
    if let Some(i) = birth_date {
        traits.push((position("birthDate"), BIRTH_DATES[*i].to_string()));
    }
    Some(IdentifierSet {
        keys,
        alias_previous: alias_previous.map(|i| PREVIOUS[i].to_string()),
        traits,
        ..IdentifierSet::default()
    })
}

/// Replays `ops` into a graph under `unmerge_rules`; `edit` may change each event's
/// identifiers (against the graph so far) and refuse a link, before the graph sees them.
fn replay(
    rules: &Arc<IdentityRules>,
    unmerge_rules: Vec<UnmergeRule>,
    ops: &[Op],
    mut edit: impl FnMut(&IdentityGraph, &mut IdentifierSet),
    mut allow_link: impl FnMut(&IdentityGraph, &IdKey, &IdKey) -> bool,
) -> IdentityGraph {
    let mut graph = IdentityGraph::new(rules.clone(), unmerge_rules);
    let (mut seq, mut at) = (0i64, start());
    for op in ops {
        match op {
            Op::Event { after, .. } => {
                seq += 1;
                at += SignedDuration::from_mins(*after);
                let mut set = identifier_set(rules, op).expect("an event");
                edit(&graph, &mut set);
                graph.apply(seq, at, &set);
            }
            Op::Link { a, b } => {
                let (a, b) = (key(*a), key(*b));
                if allow_link(&graph, &a, &b) {
                    // Refused links (unknown, same profile, limits, unmerged) change nothing.
                    let _ = graph.link_decision(seq, at, &a, &b);
                }
            }
        }
    }
    graph
}

fn build(rules: &Arc<IdentityRules>, unmerge_rules: Vec<UnmergeRule>, ops: &[Op]) -> IdentityGraph {
    replay(rules, unmerge_rules, ops, |_, _| {}, |_, _, _| true)
}

/// A profile as the graph tells it: all but how its events are chained.
#[derive(Debug, PartialEq)]
struct Told {
    id: ProfileId,
    created_at: LogTime,
    identifiers: Vec<(IdKey, LogTime)>,
    merges: Vec<MergeRecord>,
    traits: Vec<(u16, String)>,
    events: Vec<i64>,
}

impl Told {
    fn of(graph: &IdentityGraph, node: &ProfileNode) -> Told {
        Told {
            id: node.id,
            created_at: node.created_at,
            identifiers: node.identifiers.to_vec(),
            merges: node.merges().to_vec(),
            traits: node.traits().to_vec(),
            events: graph.events(node),
        }
    }
}

/// Everything the graph says: its profiles in id order (each with its events, in place
/// of the chains that hold them), flags, shared identifiers (by identifier) and the
/// events it could attribute to no one.
type Snapshot = (Vec<Told>, Vec<Flag>, Vec<(IdKey, (IdKey, IdKey))>, u64);

fn snapshot(graph: &IdentityGraph) -> Snapshot {
    let mut shared: Vec<_> = graph
        .shared()
        .map(|(k, evidence)| (k.clone(), evidence.clone()))
        .collect();
    shared.sort();
    (
        graph
            .profiles_after(None)
            .map(|node| Told::of(graph, node))
            .collect(),
        graph.flags().cloned().collect(),
        shared,
        graph.unattributed(),
    )
}

/// The key an alias's `previousId` stands for in `graph`: an earlier user id when the
/// graph knows it, else an anonymous id (as the graph reads it).
fn alias_key(graph: &IdentityGraph, previous: &str) -> Option<IdKey> {
    let rules = graph.rules();
    let as_kind = |name: &str| {
        let kind = rules.type_index(name)?;
        Some(IdKey::new(kind, &rules.normalise(kind, previous)?))
    };
    as_kind("user_id")
        .filter(|k| graph.lookup(k).is_some())
        .or_else(|| as_kind("anonymous_id"))
}

/// The event without the links `cuts` undo: the cut identifier is left out wherever it
/// came with one it was cut from.
fn without_cut_links(graph: &IdentityGraph, cuts: &[UnmergeRule], set: &mut IdentifierSet) {
    let rules = graph.rules();
    for cut in cuts {
        let alias = set
            .alias_previous
            .as_deref()
            .and_then(|p| alias_key(graph, p));
        let carried: Vec<&IdKey> = set
            .keys
            .iter()
            .chain(&alias)
            .filter(|k| !rules.is_blocked(k.value()))
            .collect();
        if carried.contains(&&cut.key) && carried.iter().any(|k| cut.apart_from.contains(*k)) {
            set.keys.retain(|k| *k != cut.key);
            if alias.as_ref() == Some(&cut.key) {
                set.alias_previous = None;
            }
        }
    }
}

/// Whether linking `a`'s and `b`'s profiles would put a cut identifier back with one it
/// was cut from.
fn rejoins_a_cut(graph: &IdentityGraph, cuts: &[UnmergeRule], a: &IdKey, b: &IdKey) -> bool {
    let held = |k: &IdKey| -> BTreeSet<IdKey> {
        graph
            .lookup(k)
            .map(|p| p.identifiers.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    };
    let (one, other) = (held(a), held(b));
    cuts.iter().any(|cut| {
        let apart = |x: &BTreeSet<IdKey>, y: &BTreeSet<IdKey>| {
            x.contains(&cut.key) && y.iter().any(|k| cut.apart_from.contains(k))
        };
        apart(&one, &other) || apart(&other, &one)
    })
}

/// An unmerge rule for the graph as it is: the `pick`-th identifier (of those in
/// profiles holding at least two) cut from its profile.
fn pick_cut(graph: &IdentityGraph, pick: usize) -> Option<UnmergeRule> {
    let candidates: Vec<(ProfileId, IdKey)> = graph
        .profiles_after(None)
        .filter(|p| p.identifiers.len() >= 2)
        .flat_map(|p| p.identifiers.iter().map(|(k, _)| (p.id, k.clone())))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let (profile, key) = &candidates[pick % candidates.len()];
    graph.unmerge_rule_for(*profile, key)
}

proptest! {
    #![proptest_config(config(768))]

    /// Unmerging an identifier (one or two unmerges in a row) gives exactly the graph of
    /// the same log in which the cut identifier never came with those it was cut from,
    /// and no decision put it back with them: same profiles and ids, same events in
    /// each, same merges, same flagged and shared identifiers.
    #[test]
    fn an_unmerge_equals_a_replay_without_the_link(
        rules in rules(),
        ops in prop::collection::vec(op(), 1..40),
        picks in prop::collection::vec(any::<usize>(), 1..=2),
    ) {
        let mut cuts: Vec<UnmergeRule> = Vec::new();
        for pick in picks {
            let graph = build(&rules, cuts.clone(), &ops);
            if let Some(cut) = pick_cut(&graph, pick) {
                cuts.push(cut);
            }
        }
        prop_assume!(!cuts.is_empty());
        let unmerged = build(&rules, cuts.clone(), &ops);
        let fresh = replay(
            &rules,
            Vec::new(),
            &ops,
            |graph, set| without_cut_links(graph, &cuts, set),
            |graph, a, b| !rejoins_a_cut(graph, &cuts, a, b),
        );
        prop_assert_eq!(snapshot(&unmerged), snapshot(&fresh), "cuts: {:?}", cuts);
        // And the cut holds against new events: one that carries a cut identifier with
        // one it was cut from does not put them together. (Other evidence in the log
        // may still join them through a third identifier, as it would in a replay
        // without the link.)
        let (seq, at) = (ops.len() as i64 + 1, start() + SignedDuration::from_hours(24 * 400));
        for cut in &cuts {
            for other in &cut.apart_from {
                let owner = |g: &IdentityGraph, k: &IdKey| g.lookup(k).map(|p| p.id);
                if owner(&unmerged, &cut.key).is_some_and(|p| Some(p) == owner(&unmerged, other)) {
                    continue;
                }
                let mut after = unmerged.clone();
                let mut keys = vec![cut.key.clone(), other.clone()];
                keys.sort();
                after.apply(seq, at, &IdentifierSet { keys, ..IdentifierSet::default() });
                let joined = owner(&after, &cut.key).is_some_and(|p| Some(p) == owner(&after, other));
                prop_assert!(!joined, "{:?} joined {:?} again", cut.key, other);
            }
        }
    }

    /// The same events in the same order give the same graph, profile ids included
    /// (a replay at start-up, on another node, after an unmerge).
    #[test]
    fn the_same_log_gives_the_same_graph(
        rules in rules(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let once = build(&rules, Vec::new(), &ops);
        let again = build(&rules, Vec::new(), &ops);
        prop_assert_eq!(snapshot(&once), snapshot(&again));
    }

    /// Whatever the history: each identifier has one owner and `lookup` finds it; a
    /// profile's id is the log position of its first event; no profile exceeds a limit
    /// that has no window; blocked values identify no one; merged-away ids resolve to
    /// the profile that absorbed them.
    #[test]
    fn the_graph_keeps_its_rules(
        rules in rules(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let graph = build(&rules, Vec::new(), &ops);
        let mut owners = BTreeSet::new();
        for node in graph.profiles_after(None) {
            let events = graph.events(node);
            prop_assert_eq!(events.first(), Some(&node.id.0), "{:?}", node);
            prop_assert!(events.windows(2).all(|w| w[0] < w[1]), "{:?}", node);
            prop_assert_eq!(events.len() as u64, node.event_count(), "{:?}", node);
            for (k, _) in &node.identifiers {
                prop_assert!(owners.insert(k.clone()), "{:?} held twice", k);
                prop_assert_eq!(graph.lookup(k).map(|p| p.id), Some(node.id));
                prop_assert!(!rules.is_blocked(k.value()), "blocked {:?} linked", k);
            }
            for (kind, rule) in rules.config.types.iter().enumerate() {
                let held = node.identifiers.iter().filter(|(k, _)| k.kind() as usize == kind).count();
                if let (Some(limit), None) = (rule.limit, rule.window_days) {
                    prop_assert!(held <= limit, "{} {}s in {:?}", held, rule.name, node);
                }
            }
            for merge in node.merges() {
                prop_assert_eq!(graph.profile(merge.from).map(|p| p.id), Some(node.id));
                prop_assert!(merge.from > merge.into, "the older profile survives: {:?}", merge);
            }
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// A graph written as a snapshot writes it (MessagePack, each identifier's text once)
    /// and read back is the same graph, owners found again from the profiles — after an
    /// erasure too, which leaves evidence about identifiers no profile holds.
    #[test]
    fn a_graph_read_back_from_its_binary_form_is_the_same(
        rules in rules(),
        ops in prop::collection::vec(op(), 1..60),
        erase in any::<bool>(),
    ) {
        let mut graph = build(&rules, Vec::new(), &ops);
        let first = graph.profiles_after(None).next().map(|n| n.id);
        if erase && let Some(first) = first {
            graph.remove_profile(first);
        }
        let bytes = IdKey::written_once(|| rmp_serde::to_vec(&graph)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parts: GraphParts = IdKey::read_once(|| rmp_serde::from_slice(&bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut links = Rows::<EventLink>::default();
        links.extend_from_bytes(graph.event_links().rows().as_bytes()).map_err(TestCaseError::fail)?;
        let back = IdentityGraph::from_parts(parts, rules.clone(), Vec::new(), links).map_err(TestCaseError::fail)?;
        prop_assert!(back == graph, "read back: {:?}\nwritten: {:?}", back, graph);
    }
}

/// Found by `an_unmerge_equals_a_replay_without_the_link`: an agent types Ada's e-mail
/// on Bob's account, and the operator cuts it from Bob. Had that link never been seen,
/// Ada's own account would take her e-mail; the graph used to count the cut meeting as
/// evidence that the e-mail is shared by two user ids, so it linked no one.
#[test]
fn a_cut_link_is_no_evidence_of_sharing() {
    let rules = IdentityRules::default_rules();
    let kind = |name: &str| rules.type_index(name).unwrap();
    let k = |name: &str, value: &str| IdKey::new(kind(name), value);
    let (bob, ada, email) = (
        k("user_id", "bob"),
        k("user_id", "ada"),
        k("email", "ada@example.com"),
    );
    let set = |keys: &[&IdKey]| {
        let mut keys: Vec<IdKey> = keys.iter().map(|k| (*k).clone()).collect();
        keys.sort();
        IdentifierSet {
            keys,
            ..IdentifierSet::default()
        }
    };
    let log = [set(&[&bob, &email]), set(&[&ada, &email])];
    let replay = |cuts: Vec<UnmergeRule>, log: &[IdentifierSet]| {
        let mut graph = IdentityGraph::new(rules.clone(), cuts);
        for (i, s) in log.iter().enumerate() {
            graph.apply(i as i64 + 1, start(), s);
        }
        graph
    };
    let cut = replay(Vec::new(), &log)
        .unmerge_rule_for(ProfileId(1), &email)
        .unwrap();
    let unmerged = replay(vec![cut], &log);
    let never_seen = replay(Vec::new(), &[set(&[&bob]), set(&[&ada, &email])]);
    assert_eq!(snapshot(&unmerged), snapshot(&never_seen));
    assert_eq!(unmerged.lookup(&email).map(|p| p.id), Some(ProfileId(2)));
    assert!(!unmerged.is_ambiguous(&email));
}
