//! The reports through the HTTP API over generated journeys, checked against figures
//! computed here, independently, from the raw generated messages and their true people.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

const END: &str = "2025-03-31T00:00:00Z";
const FROM: &str = "2025-01-15T00:00:00Z";
const TO: &str = "2025-03-20T00:00:00Z";

/// One generated message as the test reads it.
#[derive(Debug, Clone)]
struct Raw {
    person: usize,
    at: Timestamp,
    kind: String,
    name: String,
    touchpoint: Option<String>,
    channel: Option<String>,
    props: Map<String, Value>,
    traits: Map<String, Value>,
}

impl Raw {
    fn in_period(&self) -> bool {
        self.at >= FROM.parse().unwrap() && self.at < TO.parse().unwrap()
    }
    fn case(&self) -> Option<&str> {
        matches!(
            self.name.as_str(),
            "Case Opened" | "Case Updated" | "Case Resolved"
        )
        .then(|| self.props.get("case_id").and_then(Value::as_str))
        .flatten()
    }
    fn num(&self, key: &str) -> Option<f64> {
        self.props.get(key).and_then(Value::as_f64)
    }
}

struct Fixture {
    server: TestServer,
    raw: Vec<Raw>,
    registry: Vec<Value>,
}

async fn fixture() -> Fixture {
    let server = server().await;
    let data = unavoce_synthetic::touchpoint_histories(1500, 7, END.parse().unwrap());
    for touchpoint in &data.touchpoints {
        let answer = server
            .admin_json("POST", "/api/touchpoints", touchpoint.clone())
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    }
    let channel_of: HashMap<String, String> = data
        .touchpoints
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["channel"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for chunk in data.messages.chunks(400) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|(m, _)| Value::Object(m.clone()))
            .collect();
        let answer = server
            .track("/v1/batch", json!({ "batch": batch }).to_string())
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        assert!(
            answer
                .json
                .get("rejected")
                .is_none_or(|r| r.as_array().unwrap().is_empty()),
            "{}",
            answer.json
        );
    }
    let raw = data
        .messages
        .iter()
        .map(|(m, person)| {
            let touchpoint = m["context"]["touchpoint"].as_str().map(str::to_string);
            let channel = m["context"]["channel"]
                .as_str()
                .map(str::to_string)
                .or_else(|| touchpoint.as_ref().and_then(|t| channel_of.get(t).cloned()));
            Raw {
                person: *person,
                at: m["timestamp"].as_str().unwrap().parse().unwrap(),
                kind: m["type"].as_str().unwrap().to_string(),
                name: m
                    .get("event")
                    .or(m.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                touchpoint,
                channel,
                props: m
                    .get("properties")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                traits: m
                    .get("traits")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            }
        })
        .collect();
    Fixture {
        server,
        raw,
        registry: data.touchpoints,
    }
}

fn close(a: &Value, b: Option<f64>, what: &str) {
    match (a.as_f64(), b) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{what}: API {a}, expected {b}"),
        (None, None) => assert!(a.is_null(), "{what}: API {a}, expected null"),
        (a, b) => panic!("{what}: API {a:?}, expected {b:?}"),
    }
}

fn share(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Every person's messages in time order.
fn by_person(raw: &[Raw]) -> BTreeMap<usize, Vec<&Raw>> {
    let mut people: BTreeMap<usize, Vec<&Raw>> = BTreeMap::new();
    for r in raw {
        people.entry(r.person).or_default().push(r);
    }
    for list in people.values_mut() {
        list.sort_by_key(|r| r.at);
    }
    people
}

/// The touchpoint KPIs, computed the long way.
/// What KPIs are grouped by.
#[derive(Clone, Copy, PartialEq)]
enum By {
    Touchpoint,
    Channel,
}

fn expected_kpis(
    raw: &[Raw],
    registry: &[Value],
) -> BTreeMap<String, BTreeMap<&'static str, Option<f64>>> {
    expected_kpis_by(raw, registry, By::Touchpoint)
}

fn expected_kpis_by(
    raw: &[Raw],
    registry: &[Value],
    by: By,
) -> BTreeMap<String, BTreeMap<&'static str, Option<f64>>> {
    let key = |r: &Raw| -> Option<String> {
        match by {
            By::Touchpoint => r.touchpoint.clone(),
            By::Channel => r.channel.clone(),
        }
    };
    // A survey counts for the touchpoint it rates, or that touchpoint's channel.
    let rated = |r: &Raw| -> Option<String> {
        let about = r.props.get("about_touchpoint").and_then(Value::as_str)?;
        match by {
            By::Touchpoint => Some(about.to_string()),
            By::Channel => registry
                .iter()
                .find(|t| t["id"] == about)
                .and_then(|t| t["channel"].as_str())
                .map(str::to_string),
        }
    };
    let period: Vec<&Raw> = raw.iter().filter(|r| r.in_period()).collect();
    let people: BTreeSet<usize> = period.iter().map(|r| r.person).collect();
    let groups: BTreeSet<String> = period.iter().filter_map(|r| key(r)).collect();
    let goals: Vec<&Raw> = raw
        .iter()
        .filter(|r| r.kind == "track" && r.name == "Order Completed")
        .collect();
    // Cases: every message about each case, in time order.
    let mut cases: BTreeMap<&str, Vec<&Raw>> = BTreeMap::new();
    for r in raw {
        if let Some(c) = r.case() {
            cases.entry(c).or_default().push(r);
        }
    }
    for list in cases.values_mut() {
        list.sort_by_key(|r| r.at);
    }
    let mut out = BTreeMap::new();
    for tp in &groups {
        let tp = tp.as_str();
        let here: Vec<&&Raw> = period
            .iter()
            .filter(|r| key(r).as_deref() == Some(tp))
            .collect();
        let reach: BTreeSet<usize> = here.iter().map(|r| r.person).collect();
        let converted: BTreeSet<usize> = here
            .iter()
            .filter(|r| {
                goals.iter().any(|g| {
                    g.person == r.person
                        && g.at >= r.at
                        && g.at - r.at <= SignedDuration::from_hours(7 * 24)
                })
            })
            .map(|r| r.person)
            .collect();
        let surveys: Vec<&&Raw> = period
            .iter()
            .filter(|r| r.name == "Survey Answered" && rated(r).as_deref() == Some(tp))
            .collect();
        let csat: Vec<f64> = surveys.iter().filter_map(|r| r.num("csat")).collect();
        let nps: Vec<f64> = surveys.iter().filter_map(|r| r.num("nps")).collect();
        let opened_here: Vec<&Vec<&Raw>> = cases
            .values()
            .filter(|c| c[0].in_period() && key(c[0]).as_deref() == Some(tp))
            .collect();
        let contacts = |c: &Vec<&Raw>| -> Vec<Option<String>> {
            c.iter()
                .filter(|r| r.name != "Case Resolved")
                .map(|r| r.channel.clone())
                .collect()
        };
        let resolved = |c: &Vec<&Raw>| c.last().unwrap().name == "Case Resolved";
        let fcr = opened_here
            .iter()
            .filter(|c| resolved(c) && contacts(c).len() <= 1)
            .count();
        let repeat = opened_here.iter().filter(|c| contacts(c).len() > 1).count();
        let cross = opened_here
            .iter()
            .filter(|c| contacts(c).into_iter().collect::<BTreeSet<_>>().len() > 1)
            .count();
        let hours: Vec<f64> = opened_here
            .iter()
            .filter(|c| resolved(c))
            .map(|c| (c.last().unwrap().at - c[0].at).as_secs_f64() / 3600.0)
            .collect();
        // Channel switching: consecutive contacts of a case (opened in the period) made here.
        let (mut followed, mut switched) = (0usize, 0usize);
        for c in cases.values().filter(|c| c[0].in_period()) {
            let list: Vec<&&Raw> = c.iter().filter(|r| r.name != "Case Resolved").collect();
            for pair in list.windows(2) {
                if key(pair[0]).as_deref() == Some(tp) {
                    followed += 1;
                    switched += usize::from(pair[0].channel != pair[1].channel);
                }
            }
        }
        let abandoned = here
            .iter()
            .filter(|r| {
                ["Call Abandoned", "Cart Abandoned", "Chat Abandoned"].contains(&r.name.as_str())
            })
            .count();
        let cost = registry
            .iter()
            .find(|t| t["id"] == tp && by == By::Touchpoint)
            .and_then(|t| t["cost_per_interaction"].as_f64())
            .map(|c| c * here.len() as f64);
        let mut k: BTreeMap<&'static str, Option<f64>> = BTreeMap::new();
        k.insert("interactions", Some(here.len() as f64));
        k.insert("reach", Some(reach.len() as f64));
        k.insert("share_of_customers", share(reach.len(), people.len()));
        k.insert("conversions", Some(converted.len() as f64));
        k.insert("conversion_rate", share(converted.len(), reach.len()));
        k.insert("cost", cost);
        k.insert(
            "cost_per_conversion",
            cost.filter(|_| !converted.is_empty())
                .map(|c| c / converted.len() as f64),
        );
        k.insert(
            "csat",
            share(csat.iter().filter(|&&v| v >= 4.0).count(), csat.len()),
        );
        k.insert(
            "nps",
            (!nps.is_empty()).then(|| {
                (nps.iter().filter(|&&v| v >= 9.0).count() as f64
                    - nps.iter().filter(|&&v| v <= 6.0).count() as f64)
                    / nps.len() as f64
            }),
        );
        k.insert("cases", Some(opened_here.len() as f64));
        k.insert("first_contact_resolution", share(fcr, opened_here.len()));
        k.insert("repeat_contact_rate", share(repeat, opened_here.len()));
        k.insert("cross_channel_repeat_rate", share(cross, opened_here.len()));
        k.insert(
            "time_to_resolution_hours",
            (!hours.is_empty()).then(|| hours.iter().sum::<f64>() / hours.len() as f64),
        );
        k.insert("channel_switch_rate", share(switched, followed));
        k.insert("abandoned", Some(abandoned as f64));
        k.insert("abandonment_rate", share(abandoned, here.len()));
        k.insert("csat_answers", Some(csat.len() as f64));
        k.insert("nps_answers", Some(nps.len() as f64));
        k.insert(
            "csat_average",
            (!csat.is_empty()).then(|| csat.iter().sum::<f64>() / csat.len() as f64),
        );
        // Trend: the second half of the period against the first.
        let (from, to): (Timestamp, Timestamp) = (FROM.parse().unwrap(), TO.parse().unwrap());
        let middle = from + (to - from) / 2;
        let first = here.iter().filter(|r| r.at < middle).count();
        let second = here.len() - first;
        k.insert(
            "trend",
            (first > 0).then(|| (second as f64 - first as f64) / first as f64),
        );
        out.insert(tp.to_string(), k);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn touchpoint_kpis_agree_with_an_independent_count() {
    let f = fixture().await;
    let api = f
        .server
        .get(&format!("/api/kpis/touchpoints?from={FROM}&to={TO}"))
        .await;
    let expected = expected_kpis(&f.raw, &f.registry);
    let rows = api["touchpoints"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "{api}");
    let people: BTreeSet<usize> = f
        .raw
        .iter()
        .filter(|r| r.in_period())
        .map(|r| r.person)
        .collect();
    assert_eq!(api["people"], people.len());
    for row in rows {
        let tp = row["touchpoint"].as_str().unwrap();
        let want = &expected[tp];
        for (field, value) in want {
            close(&row[*field], *value, &format!("{tp}.{field}"));
        }
    }
    // The same per channel.
    let api = f
        .server
        .get(&format!("/api/kpis/channels?from={FROM}&to={TO}"))
        .await;
    let expected_channels = expected_kpis_by(&f.raw, &f.registry, By::Channel);
    let rows = api["channels"].as_array().unwrap();
    assert_eq!(rows.len(), expected_channels.len(), "{api}");
    for row in rows {
        let channel = row["channel"].as_str().unwrap();
        for (field, value) in &expected_channels[channel] {
            close(&row[*field], *value, &format!("{channel}.{field}"));
        }
    }
    assert!(expected_channels["phone"]["nps"].is_some());

    // The figures mean something on this data.
    let call = &expected["call-center"];
    assert!(call["cases"].unwrap() > 20.0 && call["repeat_contact_rate"].unwrap() > 0.1);
    assert!(expected["web-shop"]["conversions"].unwrap() > 50.0);
    assert!(expected["call-center"]["abandoned"].unwrap() > 5.0);

    // CSV carries the same rows.
    let csv = f
        .server
        .admin(
            "GET",
            &format!("/api/kpis/touchpoints?from={FROM}&to={TO}&format=csv"),
            Body::empty(),
        )
        .await;
    let text = csv.json.as_str().unwrap().to_string();
    assert!(text.starts_with("touchpoint,channel,registered,interactions"));
    assert_eq!(text.lines().count(), expected.len() + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segment_narrows_the_kpis_to_its_people() {
    let f = fixture().await;
    // The people who told us they live in Rome.
    let romans: BTreeSet<usize> = f
        .raw
        .iter()
        .filter(|r| r.kind == "identify" && r.traits.get("city") == Some(&json!("Roma")))
        .map(|r| r.person)
        .collect();
    let segment = "traits.city%20%3D%3D%20%27Roma%27";
    let api = f
        .server
        .get(&format!(
            "/api/kpis/touchpoints?from={FROM}&to={TO}&segment={segment}"
        ))
        .await;
    assert_eq!(api["segment"]["people"], romans.len(), "{}", api["segment"]);
    assert_eq!(api["segment"]["errors"], 0);
    let theirs: Vec<Raw> = f
        .raw
        .iter()
        .filter(|r| romans.contains(&r.person))
        .cloned()
        .collect();
    let expected = expected_kpis(&theirs, &f.registry);
    let rows = api["touchpoints"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len());
    for row in rows {
        let tp = row["touchpoint"].as_str().unwrap();
        for (field, value) in &expected[tp] {
            close(&row[*field], *value, &format!("{tp}.{field}"));
        }
    }
    // Every other report takes it too; a bad expression is refused with the reason.
    let funnel = f
        .server
        .get(&format!("/api/journeys/funnel?segment={segment}"))
        .await;
    assert_eq!(funnel["segment"]["people"], romans.len());
    let bad = f
        .server
        .admin(
            "GET",
            "/api/census?segment=trait.city%20%3D%3D%20%27Roma%27",
            Body::empty(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["error"]["code"], "invalid_segment");
    assert!(
        bad.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trait")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_funnel_and_attribution_agree_with_an_independent_count() {
    let f = fixture().await;
    let people = by_person(&f.raw);

    // Paths of 3 steps.
    let api = f
        .server
        .get(&format!(
            "/api/journeys/paths?steps=3&top=1000&from={FROM}&to={TO}"
        ))
        .await;
    let mut sequences: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    let mut links: BTreeMap<(String, String), u64> = BTreeMap::new();
    for list in people.values() {
        let mut path: Vec<String> = Vec::new();
        for r in list.iter().filter(|r| r.in_period()) {
            let Some(tp) = &r.touchpoint else { continue };
            if path.last() != Some(tp) {
                path.push(tp.clone());
            }
        }
        path.truncate(3);
        if path.is_empty() {
            continue;
        }
        for (i, pair) in path.windows(2).enumerate() {
            *links
                .entry((
                    format!("{}:{}", i + 1, pair[0]),
                    format!("{}:{}", i + 2, pair[1]),
                ))
                .or_default() += 1;
        }
        *sequences.entry(path).or_default() += 1;
    }
    let api_sequences: BTreeMap<Vec<String>, u64> = api["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                serde_json::from_value(s["touchpoints"].clone()).unwrap(),
                s["people"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(api_sequences, sequences);
    let api_links: BTreeMap<(String, String), u64> = api["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                (
                    l["source"].as_str().unwrap().into(),
                    l["target"].as_str().unwrap().into(),
                ),
                l["value"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(api_links, links);
    let node_ids: BTreeSet<&str> = api["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    for (s, t) in links.keys() {
        assert!(node_ids.contains(s.as_str()) && node_ids.contains(t.as_str()));
    }

    // The funnel with the default stages.
    let stage_of = |r: &Raw| -> [bool; 5] {
        let named = |names: &[&str]| r.kind == "track" && names.contains(&r.name.as_str());
        [
            r.kind == "page"
                || r.kind == "screen"
                || named(&["Email Opened", "Ad Clicked", "Comment Posted"]),
            (r.kind == "page" && r.name == "Pricing")
                || named(&[
                    "Product Viewed",
                    "Pricing Viewed",
                    "Product Added",
                    "Checkout Started",
                ]),
            named(&["Order Completed"]),
            named(&[
                "Case Opened",
                "Call Received",
                "Chat Started",
                "Order Delivered",
            ]),
            named(&["Survey Answered"]) && r.num("nps").is_some_and(|n| n >= 9.0),
        ]
    };
    let mut funnel = [0u64; 5];
    for list in people.values() {
        // Earliest time each stage is reached, each no earlier than the one before.
        let mut since: Option<Timestamp> = None;
        for (k, count) in funnel.iter_mut().enumerate() {
            let hit = list
                .iter()
                .filter(|r| r.in_period() && stage_of(r)[k] && since.is_none_or(|s| r.at >= s))
                .map(|r| r.at)
                .min();
            match hit {
                Some(at) => {
                    *count += 1;
                    since = Some(at);
                }
                None => break,
            }
        }
    }
    let api = f
        .server
        .get(&format!("/api/journeys/funnel?from={FROM}&to={TO}"))
        .await;
    let api_funnel: Vec<u64> = api["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["people"].as_u64().unwrap())
        .collect();
    assert_eq!(api_funnel, funnel.to_vec(), "{api}");
    assert_eq!(api["stages"][2]["drop_off"], funnel[1] - funnel[2]);
    assert!(funnel[2] > 100, "{funnel:?}");

    // Attribution of orders in the period over the 30 days before each.
    let mut credit: BTreeMap<String, [f64; 4]> = BTreeMap::new();
    let mut conversions = 0;
    for list in people.values() {
        for (i, goal) in list.iter().enumerate() {
            if !(goal.in_period() && goal.kind == "track" && goal.name == "Order Completed") {
                continue;
            }
            conversions += 1;
            let mut touches: Vec<(&String, Timestamp)> = list[..i]
                .iter()
                .filter(|r| goal.at - r.at <= SignedDuration::from_hours(30 * 24))
                .filter_map(|r| r.touchpoint.as_ref().map(|t| (t, r.at)))
                .collect();
            if touches.is_empty() {
                touches.push((goal.touchpoint.as_ref().unwrap(), goal.at));
            }
            // Time decay: a touch's weight halves every 7 days before the order.
            let weights: Vec<f64> = touches
                .iter()
                .map(|(_, at)| 0.5f64.powf((goal.at - *at).as_secs_f64() / (7.0 * 86_400.0)))
                .collect();
            let total: f64 = weights.iter().sum();
            for ((t, _), w) in touches.iter().zip(&weights) {
                credit.entry((*t).clone()).or_default()[3] += w / total;
            }
            let touches: Vec<&String> = touches.into_iter().map(|(t, _)| t).collect();
            credit.entry(touches[0].clone()).or_default()[0] += 1.0;
            credit
                .entry(touches[touches.len() - 1].clone())
                .or_default()[1] += 1.0;
            for t in &touches {
                credit.entry((*t).clone()).or_default()[2] += 1.0 / touches.len() as f64;
            }
        }
    }
    let api = f
        .server
        .get(&format!("/api/journeys/attribution?from={FROM}&to={TO}"))
        .await;
    assert_eq!(api["conversions"], conversions);
    let rows = api["touchpoints"].as_array().unwrap();
    assert_eq!(rows.len(), credit.len());
    for row in rows {
        let want = credit[row["touchpoint"].as_str().unwrap()];
        for (i, model) in ["first_touch", "last_touch", "linear"].iter().enumerate() {
            close(&row[*model], Some(want[i]), model);
        }
        let decayed = row["time_decay"].as_f64().unwrap();
        assert!(
            (decayed - want[3]).abs() < 1e-6,
            "time_decay {decayed} vs {}",
            want[3]
        );
    }
    let decay: f64 = rows.iter().map(|r| r["time_decay"].as_f64().unwrap()).sum();
    assert!((decay - conversions as f64).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_census_agrees_with_an_independent_reading() {
    let f = fixture().await;
    let api = f
        .server
        .get(&format!("/api/census?from={FROM}&to={TO}"))
        .await;
    // Needs: the default catalogue and those declared; covered only by active ones.
    let mut needs: BTreeSet<String> = [
        "information",
        "purchase",
        "support",
        "post-sale",
        "complaint",
        "billing",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut covered = BTreeSet::new();
    for t in &f.registry {
        for n in t["needs"].as_array().unwrap() {
            needs.insert(n.as_str().unwrap().to_string());
            if t["status"] == "active" {
                covered.insert(n.as_str().unwrap().to_string());
            }
        }
    }
    let uncovered: Vec<String> = needs.difference(&covered).cloned().collect();
    assert_eq!(api["uncovered_needs"], json!(uncovered));
    assert_eq!(uncovered, vec!["post-sale"]);
    let without: Vec<&str> = f
        .registry
        .iter()
        .filter(|t| t["status"] == "active" && t["needs"].as_array().unwrap().is_empty())
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(api["touchpoints_without_needs"], json!(without));
    let coverage = api["coverage"].as_array().unwrap();
    let support = coverage.iter().find(|c| c["need"] == "support").unwrap();
    assert_eq!(
        support["active"],
        json!(["call-center", "live-chat", "store-rome"])
    );

    // Unregistered: everything at telegram-bot.
    let registered: BTreeSet<&str> = f
        .registry
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let strays: Vec<&Raw> = f
        .raw
        .iter()
        .filter(|r| {
            r.in_period()
                && r.touchpoint
                    .as_deref()
                    .is_some_and(|t| !registered.contains(t))
        })
        .collect();
    let stray_people: BTreeSet<usize> = strays.iter().map(|r| r.person).collect();
    let unregistered = api["unregistered_channels"].as_array().unwrap();
    assert_eq!(unregistered.len(), 1, "{unregistered:?}");
    assert_eq!(unregistered[0]["touchpoint"], "telegram-bot");
    assert_eq!(unregistered[0]["channel"], "telegram");
    assert_eq!(unregistered[0]["interactions"], strays.len());
    assert_eq!(unregistered[0]["people"], stray_people.len());

    // Recommendations: exactly the findings the figures call for.
    let kpis = expected_kpis(&f.raw, &f.registry);
    let mut want: BTreeSet<(String, String)> = BTreeSet::new();
    want.insert(("cover".into(), "post-sale".into()));
    if stray_people.len() >= 10 {
        want.insert(("invest".into(), "telegram-bot".into()));
    }
    for t in f.registry.iter().filter(|t| t["status"] == "active") {
        let id = t["id"].as_str().unwrap();
        let Some(k) = kpis.get(id) else {
            want.insert(("review".into(), id.into()));
            continue;
        };
        let low = k["csat"].is_some_and(|c| c < 0.6)
            || k["repeat_contact_rate"].is_some_and(|r| r > 0.3)
            || k["nps"].is_some_and(|n| n < 0.0);
        if low {
            let kind = if k["share_of_customers"].unwrap_or(0.0) < 0.05 {
                "consolidate"
            } else {
                "improve"
            };
            want.insert((kind.into(), id.into()));
        }
    }
    for id in &without {
        want.insert(("declare".into(), id.to_string()));
    }
    let got: BTreeSet<(String, String)> = api["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().into(),
                r["subject"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(want.contains(&("review".into(), "fax-line".into())));

    // Usage figures are the KPIs'.
    for u in api["usage"].as_array().unwrap() {
        let id = u["touchpoint"].as_str().unwrap();
        if let Some(k) = kpis.get(id) {
            close(&u["share_of_customers"], k["share_of_customers"], id);
            assert_eq!(u["interactions"].as_f64(), k["interactions"]);
        }
    }

    // CSV sections, and a precise error for a wrong one.
    let csv = f
        .server
        .admin(
            "GET",
            "/api/census?format=csv&section=coverage",
            Body::empty(),
        )
        .await;
    assert!(csv.json.as_str().unwrap().starts_with("need,"));
    let bad = f
        .server
        .admin("GET", "/api/census?format=csv&section=nope", Body::empty())
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = f
        .server
        .admin("GET", "/api/kpis/touchpoints?from=yesterday", Body::empty())
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["error"]["code"], "invalid_parameter");
}
