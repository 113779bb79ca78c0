//! Small hand-checked histories; the generated-data tests live in the server's tests.

use serde_json::{Value, json};

use super::attribution::attribution_report;
use super::census::{RecommendationKind, census};
use super::kpis::kpi_report;
use super::paths::{funnel_report, path_report};
use super::*;
use crate::channel::ChannelKind;
use crate::segment::{IntakeContext, normalise};
use crate::touchpoint::TouchpointStatus;

fn touchpoint(id: &str, channel: ChannelKind, needs: &[&str]) -> Touchpoint {
    Touchpoint {
        id: id.into(),
        name: id.into(),
        channel,
        presence: None,
        department: "support".into(),
        needs: needs.iter().map(|n| n.to_string()).collect(),
        status: TouchpointStatus::Active,
        cost_per_interaction: None,
        capacity: None,
    }
}

struct Fixture {
    table: InteractionTable,
    people: Vec<u32>,
    registry: Vec<Touchpoint>,
    rules: AnalyticsRules,
}

impl Fixture {
    /// `(person, message)` in log order.
    fn new(events: &[(u32, Value)]) -> Fixture {
        let rules = AnalyticsRules::default();
        let mut call_center = touchpoint("call-center", ChannelKind::Phone, &["support"]);
        call_center.cost_per_interaction = Some(4.0);
        let registry = vec![
            touchpoint("web-shop", ChannelKind::Web, &["purchase", "information"]),
            call_center,
            touchpoint("live-chat", ChannelKind::Chat, &["support"]),
            touchpoint("store", ChannelKind::Store, &[]),
        ];
        let channels = registry.iter().map(|t| (t.id.clone(), t.channel)).collect();
        let mut ctx = IntakeContext::new("2024-06-30T00:00:00Z".parse().unwrap(), "test");
        ctx.touchpoint_channels = Some(&channels);
        let mut table = InteractionTable::default();
        let mut people = Vec::new();
        for (seq, (person, message)) in events.iter().enumerate() {
            let mut message = message.as_object().unwrap().clone();
            message.insert("userId".into(), format!("u{person}").into());
            let event = normalise(message, &ctx, || format!("m{seq}")).unwrap();
            table.push(seq as i64 + 1, &event, &rules);
            people.push(*person);
        }
        Fixture {
            table,
            people,
            registry,
            rules,
        }
    }

    fn view(&self) -> View<'_> {
        View {
            table: &self.table,
            people: &self.people,
            person_count: self.people.iter().max().map_or(0, |m| m + 1),
            touchpoints: &self.registry,
            rules: &self.rules,
            period: Period::default(),
            audience: None,
        }
    }
}

fn track(name: &str, at: &str, touchpoint: &str, props: Value) -> Value {
    json!({"type": "track", "event": name, "timestamp": at, "properties": props,
        "context": {"touchpoint": touchpoint}})
}

fn page(name: &str, at: &str) -> Value {
    json!({"type": "page", "name": name, "timestamp": at, "context": {"touchpoint": "web-shop"}})
}

fn outage_story() -> Fixture {
    Fixture::new(&[
        // Person 0: browses, buys, has a case over phone then chat, answers a survey.
        (0, page("Home", "2024-06-01T10:00:00Z")),
        (0, page("Pricing", "2024-06-01T10:05:00Z")),
        (
            0,
            track(
                "Order Completed",
                "2024-06-03T10:00:00Z",
                "web-shop",
                json!({}),
            ),
        ),
        (
            0,
            track(
                "Case Opened",
                "2024-06-10T09:00:00Z",
                "call-center",
                json!({"case_id": "C1"}),
            ),
        ),
        (
            0,
            track(
                "Case Updated",
                "2024-06-10T15:00:00Z",
                "live-chat",
                json!({"case_id": "C1"}),
            ),
        ),
        (
            0,
            track(
                "Case Resolved",
                "2024-06-11T09:00:00Z",
                "call-center",
                json!({"case_id": "C1"}),
            ),
        ),
        (
            0,
            track(
                "Survey Answered",
                "2024-06-11T11:00:00Z",
                "survey",
                json!({"csat": 2, "nps": 3, "about_touchpoint": "call-center"}),
            ),
        ),
        // Person 1: calls, the case is solved in that call; a promoter.
        (
            1,
            track(
                "Case Opened",
                "2024-06-05T09:00:00Z",
                "call-center",
                json!({"case_id": "C2"}),
            ),
        ),
        (
            1,
            track(
                "Case Resolved",
                "2024-06-05T09:10:00Z",
                "call-center",
                json!({"case_id": "C2"}),
            ),
        ),
        (
            1,
            track(
                "Survey Answered",
                "2024-06-05T12:00:00Z",
                "survey",
                json!({"csat": 5, "nps": 10, "about_touchpoint": "call-center"}),
            ),
        ),
        // Person 2: an abandoned call, then the web shop and a purchase 10 days later.
        (
            2,
            track(
                "Call Abandoned",
                "2024-06-02T08:00:00Z",
                "call-center",
                json!({}),
            ),
        ),
        (2, page("Home", "2024-06-02T09:00:00Z")),
        (
            2,
            track(
                "Order Completed",
                "2024-06-12T09:00:00Z",
                "web-shop",
                json!({}),
            ),
        ),
        (
            2,
            track(
                "Message Received",
                "2024-06-13T09:00:00Z",
                "telegram-bot",
                json!({}),
            ),
        ),
    ])
}

fn find<'a>(kpis: &'a [kpis::Kpis], id: &str) -> &'a kpis::Kpis {
    kpis.iter()
        .find(|k| {
            k.touchpoint.as_deref() == Some(id)
                || (k.touchpoint.is_none() && k.channel.as_deref() == Some(id))
        })
        .unwrap_or_else(|| panic!("no KPIs for {id}"))
}

#[test]
fn touchpoint_kpis_of_a_small_story() {
    let f = outage_story();
    let report = kpi_report(&f.view());
    assert_eq!(report.people, 3);
    assert_eq!(report.interactions, 14);

    let call = find(&report.touchpoints, "call-center");
    assert_eq!(call.interactions, 5);
    assert_eq!(call.reach, 3);
    assert_eq!(call.share_of_customers, Some(1.0));
    // Person 0 bought 7 days before the call, person 2 ten days after: no conversion
    // within 7 days of a call.
    assert_eq!(call.conversions, 0);
    assert_eq!(call.cost, Some(20.0));
    assert_eq!(call.cost_per_conversion, None);
    assert_eq!(call.cases, 2);
    assert_eq!(call.first_contact_resolution, Some(0.5));
    assert_eq!(call.repeat_contact_rate, Some(0.5));
    assert_eq!(call.cross_channel_repeat_rate, Some(0.5));
    assert_eq!(call.channel_switch_rate, Some(1.0));
    // (24 h + 10 min) / 2
    assert!((call.time_to_resolution_hours.unwrap() - (24.0 + 1.0 / 6.0) / 2.0).abs() < 1e-9);
    assert_eq!(call.csat, Some(0.5));
    assert_eq!(call.csat_average, Some(3.5));
    assert_eq!(call.nps, Some(0.0));
    assert_eq!(call.abandoned, 1);
    assert_eq!(call.abandonment_rate, Some(0.2));
    assert_eq!(call.channel.as_deref(), Some("phone"));

    let web = find(&report.touchpoints, "web-shop");
    assert_eq!(web.reach, 2);
    assert_eq!(web.conversions, 2);
    assert_eq!(web.conversion_rate, Some(1.0));
    assert_eq!(web.cases, 0);
    assert_eq!(web.first_contact_resolution, None);

    let telegram = find(&report.touchpoints, "telegram-bot");
    assert!(!telegram.registered);
    // The channel table: the survey rates the phone channel.
    let phone = find(&report.channels, "phone");
    assert_eq!(phone.nps_answers, 2);
}

#[test]
fn paths_funnel_and_attribution_of_a_small_story() {
    let f = outage_story();
    let view = f.view();
    let paths = path_report(&view, 3, 10);
    assert_eq!(paths.people, 3);
    let sequence = |p: &[&str]| {
        paths
            .sequences
            .iter()
            .find(|s| s.touchpoints == p)
            .map(|s| s.people)
    };
    assert_eq!(sequence(&["web-shop", "call-center", "live-chat"]), Some(1));
    assert_eq!(sequence(&["call-center", "survey"]), Some(1));
    assert_eq!(
        sequence(&["call-center", "web-shop", "telegram-bot"]),
        Some(1)
    );
    let link = |a: &str, b: &str| {
        paths
            .links
            .iter()
            .find(|l| l.source == a && l.target == b)
            .map(|l| l.value)
    };
    assert_eq!(link("1:call-center", "2:web-shop"), Some(1));
    assert_eq!(link("1:call-center", "2:survey"), Some(1));

    let funnel = funnel_report(&view);
    let people: Vec<u64> = funnel.stages.iter().map(|s| s.people).collect();
    // awareness: 0 and 2 (pages); consideration: 0 (Pricing); purchase: 0; post-sale: 0;
    // advocacy: nobody after post-sale (person 1 is a promoter but never reached awareness).
    assert_eq!(people, vec![2, 1, 1, 1, 0]);
    assert_eq!(funnel.stages[1].drop_off, 1);
    assert_eq!(funnel.stages[4].reached_any_order, 1);

    let attribution = attribution_report(&view);
    assert_eq!(attribution.conversions, 2);
    let credit = |id: &str| {
        attribution
            .touchpoints
            .iter()
            .find(|t| t.touchpoint.as_deref() == Some(id))
            .unwrap()
    };
    // Person 0: two web pages before the order; person 2: the abandoned call and a page.
    assert_eq!(credit("web-shop").first_touch, 1.0);
    assert_eq!(credit("web-shop").last_touch, 2.0);
    assert_eq!(credit("web-shop").linear, 1.5);
    assert_eq!(credit("call-center").first_touch, 1.0);
    let total: f64 = attribution.touchpoints.iter().map(|t| t.time_decay).sum();
    assert!((total - 2.0).abs() < 1e-9);
    // The call came an hour before the page: a little less than half the decayed credit.
    assert!(credit("call-center").time_decay < 0.5 && credit("call-center").time_decay > 0.49);
}

#[test]
fn census_of_a_small_story() {
    let mut f = outage_story();
    f.rules.config.unregistered_min_people = 1;
    f.rules.config.needs.push("billing".into());
    let view = f.view();
    let kpis = kpi_report(&view);
    let census = census(&view, &kpis);
    assert!(census.uncovered_needs.contains(&"billing".to_string()));
    assert!(!census.uncovered_needs.contains(&"support".to_string()));
    assert_eq!(census.touchpoints_without_needs, vec!["store"]);
    let unknown: Vec<_> = census
        .unregistered_channels
        .iter()
        .map(|u| u.touchpoint.clone().unwrap_or_default())
        .collect();
    assert_eq!(unknown, vec!["survey", "telegram-bot"]);
    let kinds: Vec<_> = census
        .recommendations
        .iter()
        .map(|r| (r.kind, r.subject.as_str()))
        .collect();
    assert!(kinds.contains(&(RecommendationKind::Cover, "billing")));
    assert!(kinds.contains(&(RecommendationKind::Invest, "telegram-bot")));
    assert!(kinds.contains(&(RecommendationKind::Review, "store")));
    assert!(kinds.contains(&(RecommendationKind::Declare, "store")));
    // The call center: used by everyone, half its cases repeated, CSAT 50 %.
    assert!(kinds.contains(&(RecommendationKind::Improve, "call-center")));
}

#[test]
fn a_period_and_an_audience_narrow_every_report() {
    let f = outage_story();
    let audience = vec![false, true, true];
    let mut view = f.view();
    view.audience = Some(&audience);
    view.period = Period {
        from: Some("2024-06-02T00:00:00Z".parse().unwrap()),
        to: Some("2024-06-06T00:00:00Z".parse().unwrap()),
    };
    let report = kpi_report(&view);
    assert_eq!(report.people, 2);
    assert_eq!(report.interactions, 5);
    assert_eq!(find(&report.touchpoints, "call-center").cases, 1);
}

#[test]
fn rules_are_checked() {
    let mut config = AnalyticsConfig::default();
    config.goal.clear();
    assert_eq!(
        AnalyticsRules::new(config),
        Err(AnalyticsRulesError::NoGoal)
    );
    let config = AnalyticsConfig {
        goal: vec!["track".into()],
        ..Default::default()
    };
    assert_eq!(
        AnalyticsRules::new(config),
        Err(AnalyticsRulesError::BareTrack)
    );
    let mut config = AnalyticsConfig::default();
    config.stages.push(config.stages[0].clone());
    assert!(matches!(
        AnalyticsRules::new(config),
        Err(AnalyticsRulesError::DuplicateStage(_))
    ));
}

#[test]
fn a_little_used_poor_touchpoint_is_to_be_consolidated_into_one_serving_the_same_needs() {
    let mut events: Vec<(u32, Value)> = (0..10)
        .map(|p| {
            (
                p,
                track(
                    "Call Received",
                    "2024-06-01T10:00:00Z",
                    "call-center",
                    json!({}),
                ),
            )
        })
        .collect();
    events.push((
        3,
        track(
            "Chat Started",
            "2024-06-02T10:00:00Z",
            "live-chat",
            json!({}),
        ),
    ));
    events.push((
        3,
        track(
            "Survey Answered",
            "2024-06-02T11:00:00Z",
            "survey",
            json!({"csat": 1, "about_touchpoint": "live-chat"}),
        ),
    ));
    let mut f = Fixture::new(&events);
    f.rules.config.little_used_share = 0.2;
    let view = f.view();
    let census = census(&view, &kpi_report(&view));
    let consolidate: Vec<_> = census
        .recommendations
        .iter()
        .filter(|r| r.kind == RecommendationKind::Consolidate)
        .collect();
    assert_eq!(consolidate.len(), 1, "{:?}", census.recommendations);
    assert_eq!(consolidate[0].subject, "live-chat");
    assert!(consolidate[0].text.contains("10.0% of customers"));
    assert!(
        consolidate[0].text.contains("call-center"),
        "{}",
        consolidate[0].text
    );
}

#[test]
fn activity_counts_events_per_day_by_channel_and_by_touchpoint() {
    use super::activity::{Breakdown, activity_report};
    let f = outage_story();
    let report = activity_report(&f.view(), Breakdown::Channel, 2);
    assert_eq!(report.days.first().map(String::as_str), Some("2024-06-01"));
    let web = report.series.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(web.counts[0], 2, "two page views on the first day");
    let total: u64 = report.series.iter().map(|s| s.total).sum();
    assert_eq!(total as usize, f.table.len(), "every event counted once");
    assert!(report.series.len() <= 3, "two lines and other");
    let by_touchpoint = activity_report(&f.view(), Breakdown::Touchpoint, 10);
    assert!(by_touchpoint.series.iter().any(|s| s.name == "call-center"));
    assert_eq!(
        by_touchpoint.series.iter().map(|s| s.counts.len()).max(),
        Some(report.days.len())
    );
}
