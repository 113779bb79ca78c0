use super::*;
use crate::identity::rules::{IdentityConfig, TypeRule};

fn keys(rules: &IdentityRules, ids: &[(&str, &str)]) -> IdentifierSet {
    let mut keys: Vec<IdKey> = ids
        .iter()
        .map(|(t, v)| {
            let kind = rules.type_index(t).unwrap();
            IdKey::new(kind, &rules.normalise(kind, v).unwrap())
        })
        .collect();
    keys.sort();
    IdentifierSet {
        keys,
        ..Default::default()
    }
}

fn at(minutes: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_mins(minutes + 28_000_000)
}

struct Run {
    graph: IdentityGraph,
    seq: i64,
}

impl Run {
    fn new(rules: Arc<IdentityRules>) -> Self {
        Run {
            graph: IdentityGraph::new(rules, Vec::new()),
            seq: 0,
        }
    }

    fn event(&mut self, ids: &[(&str, &str)]) -> Resolution {
        self.seq += 1;
        let set = keys(self.graph.rules(), ids);
        self.graph.apply(self.seq, at(self.seq), &set)
    }

    fn owner(&self, t: &str, v: &str) -> Option<ProfileId> {
        let set = keys(self.graph.rules(), &[(t, v)]);
        self.graph.lookup(&set.keys[0]).map(|p| p.id)
    }
}

#[test]
fn an_anonymous_visitor_who_logs_in_is_one_profile() {
    let mut run = Run::new(IdentityRules::default_rules());
    let first = run.event(&[("anonymous_id", "a1")]);
    assert!(first.created);
    run.event(&[("anonymous_id", "a1")]);
    let login = run.event(&[
        ("user_id", "u1"),
        ("anonymous_id", "a1"),
        ("email", "Ada@Example.com"),
    ]);
    assert_eq!(login.profile, first.profile);
    assert_eq!(login.linked.len(), 2);
    let node = run.graph.profile(first.profile.unwrap()).unwrap();
    assert_eq!(run.graph.events(node), vec![1, 2, 3]);
    assert_eq!((node.event_count(), node.last_event()), (3, Some(3)));
    assert_eq!(run.owner("email", "ada@example.com"), first.profile);
}

#[test]
fn two_devices_merge_when_the_same_user_logs_in_on_both() {
    let mut run = Run::new(IdentityRules::default_rules());
    let web = run.event(&[("anonymous_id", "web")]).profile.unwrap();
    let app = run.event(&[("anonymous_id", "app")]).profile.unwrap();
    run.event(&[("user_id", "u1"), ("anonymous_id", "web")]);
    let merge = run.event(&[("user_id", "u1"), ("anonymous_id", "app")]);
    assert_eq!(merge.profile, Some(web), "the older profile survives");
    assert_eq!(merge.merged, vec![app]);
    let node = run.graph.profile(app).unwrap();
    assert_eq!(node.id, web, "a merged-away id still resolves");
    assert_eq!(run.graph.events(node), vec![1, 2, 3, 4]);
    assert_eq!(
        node.chains().count(),
        2,
        "the merged profile's chain is kept whole"
    );
    let record = &node.merges()[0];
    assert_eq!((record.seq, record.into, record.from), (4, web, app));
    assert_eq!(
        record.via,
        keys(run.graph.rules(), &[("anonymous_id", "app")]).keys
    );
}

#[test]
fn a_shared_family_email_does_not_fuse_two_people() {
    let mut run = Run::new(IdentityRules::default_rules());
    let mum = run.event(&[("user_id", "mum"), ("email", "rossi.family@example.com")]);
    let son = run.event(&[("user_id", "son"), ("email", "rossi.family@example.com")]);
    assert_ne!(mum.profile, son.profile);
    assert_eq!(
        son.dropped[0].reason,
        DropReason::Shared,
        "two user ids prove it shared"
    );
    // From now on it links nobody, even an event that carries it alone.
    let newsletter = run.event(&[
        ("email", "rossi.family@example.com"),
        ("anonymous_id", "click-1"),
    ]);
    assert_ne!(newsletter.profile, mum.profile);
    assert_eq!(run.graph.profile_count(), 3);
    assert_eq!(run.owner("email", "rossi.family@example.com"), mum.profile);
}

#[test]
fn an_identifier_seen_with_many_people_is_flagged_with_evidence() {
    let mut run = Run::new(IdentityRules::default_rules()); // flag after 8
    for i in 0..8 {
        let r = run.event(&[
            ("user_id", &format!("walk-in-{i}")),
            ("phone", "06 1234 5678"),
        ]);
        assert!(r.flagged.is_empty());
    }
    let ninth = run.event(&[("user_id", "walk-in-8"), ("phone", "06 1234 5678")]);
    assert_eq!(ninth.flagged.len(), 1);
    let flag = run.graph.flags().next().unwrap();
    assert_eq!(flag.seen_with.len(), 9);
    assert_eq!(flag.seq, 9);
    // From now on the number links nobody: an anonymous call with it starts nothing.
    let call = run.event(&[("phone", "06 1234 5678")]);
    assert_eq!(call.profile, None);
    assert_eq!(call.dropped[0].reason, DropReason::Flagged);
    assert_eq!(run.graph.unattributed(), 1);
}

#[test]
fn blocked_values_never_link() {
    let mut run = Run::new(IdentityRules::default_rules());
    let a = run.event(&[("user_id", "u1"), ("email", "test@test.com")]);
    let b = run.event(&[("user_id", "u2"), ("email", "test@test.com")]);
    assert_ne!(a.profile, b.profile);
    assert_eq!(a.dropped[0].reason, DropReason::Blocked);
    assert_eq!(run.owner("email", "test@test.com"), None);
}

#[test]
fn windowed_limits_count_only_recent_identifiers() {
    let mut config = IdentityConfig::default();
    config.types[4] = TypeRule {
        name: "device_id".into(),
        limit: Some(1),
        window_days: Some(1),
        normalise: Default::default(),
        paths: Vec::new(),
    };
    let rules = IdentityRules::new(config).unwrap();
    let mut graph = IdentityGraph::new(rules.clone(), Vec::new());
    let first = graph.apply(
        1,
        at(0),
        &keys(&rules, &[("user_id", "u"), ("device_id", "d1")]),
    );
    // A second device the same day exceeds "one device a day".
    let same_day = graph.apply(
        2,
        at(60),
        &keys(&rules, &[("user_id", "u"), ("device_id", "d2")]),
    );
    assert_eq!(same_day.dropped[0].reason, DropReason::Limit);
    // Two days later the first device no longer counts.
    let later = graph.apply(
        3,
        at(3 * 24 * 60),
        &keys(&rules, &[("user_id", "u"), ("device_id", "d3")]),
    );
    assert!(later.dropped.is_empty());
    assert_eq!(later.profile, first.profile);
}

#[test]
fn alias_links_an_earlier_anonymous_id() {
    let mut run = Run::new(IdentityRules::default_rules());
    let anon = run.event(&[("anonymous_id", "a9")]).profile;
    run.seq += 1;
    let mut set = keys(run.graph.rules(), &[("user_id", "u9")]);
    set.alias_previous = Some("a9".into());
    let alias = run.graph.apply(run.seq, at(run.seq), &set);
    assert_eq!(alias.profile, anon);
    assert_eq!(run.owner("user_id", "u9"), anon);
}

#[test]
fn an_unmerge_rule_keeps_an_identifier_apart_on_replay_and_afterwards() {
    let rules = IdentityRules::default_rules();
    let events: Vec<Vec<(&str, &str)>> = vec![
        vec![("user_id", "u1"), ("anonymous_id", "shared-tablet")],
        vec![("anonymous_id", "shared-tablet")],
        vec![("user_id", "u1"), ("email", "u1@example.com")],
    ];
    let replay = |rules_in_force: Vec<UnmergeRule>| {
        let mut graph = IdentityGraph::new(rules.clone(), rules_in_force);
        for (i, ids) in events.iter().enumerate() {
            graph.apply(i as i64 + 1, at(i as i64), &keys(&rules, ids));
        }
        graph
    };
    let merged = replay(Vec::new());
    assert_eq!(merged.profile_count(), 1);
    let tablet = keys(&rules, &[("anonymous_id", "shared-tablet")]).keys[0].clone();
    let rule = merged.unmerge_rule_for(ProfileId(1), &tablet).unwrap();
    let mut split = replay(vec![rule]);
    assert_eq!(split.profile_count(), 2);
    // Event 1 carried the cut link: it stays with the person, whose user id outranks
    // the tablet; the tablet's own profile starts with the first event it alone carries.
    let tablet_profile = split.lookup(&tablet).unwrap();
    assert_eq!(
        (tablet_profile.id, split.events(tablet_profile)),
        (ProfileId(2), vec![2])
    );
    let person = split
        .lookup(&keys(&rules, &[("user_id", "u1")]).keys[0])
        .unwrap();
    assert_eq!(person.id, ProfileId(1), "the person keeps the profile id");
    assert_eq!(split.events(person), vec![1, 3]);
    // A new event with both does not merge them again.
    let again = split.apply(
        4,
        at(4),
        &keys(
            &rules,
            &[("user_id", "u1"), ("anonymous_id", "shared-tablet")],
        ),
    );
    assert_eq!(again.dropped[0].reason, DropReason::Unmerged);
    assert_eq!(split.profile_count(), 2);
}

#[test]
fn replay_is_deterministic() {
    let rules = IdentityRules::default_rules();
    let run = || {
        let mut graph = IdentityGraph::new(rules.clone(), Vec::new());
        for i in 0..200i64 {
            let user = format!("u{}", i % 17);
            let anon = format!("a{}", i % 23);
            let email = format!("e{}@example.com", i % 11);
            graph.apply(
                i + 1,
                at(i),
                &keys(
                    &rules,
                    &[
                        ("user_id", &user),
                        ("anonymous_id", &anon),
                        ("email", &email),
                    ],
                ),
            );
        }
        graph
            .profiles_after(None)
            .map(|p| (p.id, p.identifiers.clone(), graph.events(p)))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn profiles_that_disagree_on_a_distinguishing_trait_are_not_merged() {
    let rules = IdentityRules::default_rules();
    let first_name = rules
        .config
        .distinguishing_traits
        .iter()
        .position(|t| t == "firstName")
        .unwrap() as u16;
    let with_name = |ids: &[(&str, &str)], name: &str| IdentifierSet {
        traits: vec![(first_name, name.trim().to_lowercase())],
        ..keys(&rules, ids)
    };
    let mut graph = IdentityGraph::new(rules.clone(), Vec::new());
    // Mum registers online; her son, who has no account, signs a store form with the
    // family e-mail and his own loyalty card.
    let mum = graph.apply(
        1,
        at(1),
        &with_name(
            &[("user_id", "mum"), ("email", "family@example.com")],
            "Anna",
        ),
    );
    let son = graph.apply(
        2,
        at(2),
        &with_name(
            &[("email", "family@example.com"), ("loyalty_id", "L-9")],
            "Luca",
        ),
    );
    assert_ne!(son.profile, mum.profile);
    assert_eq!(son.dropped[0].reason, DropReason::Conflict);
    // The same name in any case is no conflict.
    let again = graph.apply(
        3,
        at(3),
        &with_name(
            &[("email", "family@example.com"), ("anonymous_id", "c1")],
            "ANNA ",
        ),
    );
    assert_eq!(again.profile, mum.profile);
}

#[test]
fn a_decision_links_two_profiles_unless_they_conflict() {
    let rules = IdentityRules::default_rules();
    let mut graph = IdentityGraph::new(rules.clone(), Vec::new());
    let web = keys(&rules, &[("user_id", "u1")]);
    let store = keys(&rules, &[("loyalty_id", "L-1")]);
    let other = keys(&rules, &[("user_id", "u2")]);
    graph.apply(1, at(1), &web);
    graph.apply(2, at(2), &store);
    graph.apply(3, at(3), &other);
    assert_eq!(
        graph
            .link_decision(3, at(4), &web.keys[0], &other.keys[0])
            .unwrap_err(),
        LinkRefusal::Limit,
        "two user ids"
    );
    let linked = graph
        .link_decision(3, at(4), &web.keys[0], &store.keys[0])
        .unwrap();
    assert_eq!(linked.profile, Some(ProfileId(1)));
    assert_eq!(linked.merged, [ProfileId(2)]);
    let node = graph.profile(ProfileId(2)).unwrap();
    assert_eq!(graph.events(node), vec![1, 2], "a decision adds no event");
    assert!(node.merges()[0].decided);
    assert_eq!(
        graph
            .link_decision(3, at(5), &web.keys[0], &store.keys[0])
            .unwrap_err(),
        LinkRefusal::SameProfile
    );
}

#[test]
fn an_unmerged_match_is_not_linked_again_when_its_decision_is_replayed() {
    let rules = IdentityRules::default_rules();
    let web = keys(&rules, &[("user_id", "u1")]);
    let store = keys(&rules, &[("loyalty_id", "L-1")]);
    let build = |unmerge_rules: Vec<UnmergeRule>| {
        let mut graph = IdentityGraph::new(rules.clone(), unmerge_rules);
        graph.apply(1, at(1), &web);
        graph.apply(2, at(2), &store);
        let linked = graph.link_decision(2, at(3), &web.keys[0], &store.keys[0]);
        (graph, linked)
    };
    let (matched, linked) = build(Vec::new());
    assert!(linked.is_ok());
    // The reviewer was wrong: the loyalty card is cut off again.
    let rule = matched
        .unmerge_rule_for(ProfileId(1), &store.keys[0])
        .unwrap();
    let (replayed, again) = build(vec![rule]);
    assert_eq!(again.unwrap_err(), LinkRefusal::Unmerged);
    assert_ne!(
        replayed.lookup(&web.keys[0]).map(|n| n.id),
        replayed.lookup(&store.keys[0]).map(|n| n.id)
    );
}

/// An event link holds 32 bits of distance back: a profile's next event further on than
/// that starts a new chain of its own, and its events are all still found.
#[test]
fn events_further_apart_than_a_link_can_say_start_a_new_chain() {
    let mut graph = IdentityGraph::new(IdentityRules::default_rules(), Vec::new());
    let set = keys(graph.rules(), &[("user_id", "u1")]);
    let far = 3 + i64::from(u32::MAX);
    for (minute, seq) in [1, 2, far, far + 1].into_iter().enumerate() {
        graph.apply(seq, at(minute as i64), &set);
    }
    let node = graph.profile(ProfileId(1)).unwrap();
    assert_eq!(graph.events(node), vec![1, 2, far, far + 1]);
    assert_eq!(node.event_count(), 4);
    assert_eq!(node.chains().count(), 2);
    assert_eq!(node.last_event(), Some(far + 1));
}

/// A profile node is held millions of times over: what most lack costs one pointer, and
/// a node with all of it (merged chains, merges, a distinguishing trait) reads back from
/// its flat record as it was.
#[test]
fn a_profile_node_is_small_and_reads_back_whole() {
    assert_eq!(size_of::<ProfileNode>(), 56);
    let mut graph = IdentityGraph::new(IdentityRules::default_rules(), Vec::new());
    let web = keys(graph.rules(), &[("anonymous_id", "a1")]);
    let app = keys(graph.rules(), &[("user_id", "u1")]);
    let both = keys(graph.rules(), &[("user_id", "u1"), ("anonymous_id", "a1")]);
    graph.apply(1, at(1), &web);
    graph.apply(2, at(2), &app);
    graph.apply(3, at(3), &both);
    let node = graph.profile(ProfileId(1)).expect("a profile");
    assert_eq!(node.merges().len(), 1);
    assert_eq!(node.chains().count(), 2);
    let json = serde_json::to_value(node).expect("json");
    assert_eq!(json["chains"].as_array().map(Vec::len), Some(2));
    let back: ProfileNode = serde_json::from_value(json).expect("a node");
    assert_eq!(&back, node);
    assert_eq!(graph.events(&back), vec![1, 2, 3]);
}
