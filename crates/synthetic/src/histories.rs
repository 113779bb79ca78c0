//! Customers' histories across touchpoints, with ground truth: who each message came from, over a
//! registry of touchpoints some events do not use and some events use without it.
//!
//! Each person browses anonymously before logging in (so their events only come
//! together by identity resolution), opens newsletters, calls, chats, buys online or in
//! store, abandons calls, chats and carts, has cases that move across channels, answers
//! surveys about the touchpoint that served them, and a few write on a messaging app
//! the company has not registered.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

/// A journey dataset: messages in time order, each with its true person, and the
/// registry to create before sending them.
pub struct HistoryDataset {
    pub messages: Vec<(Map<String, Value>, usize)>,
    /// Touchpoint definitions, as `POST /api/touchpoints` takes them.
    pub touchpoints: Vec<Value>,
    pub people: usize,
}

/// A registered touchpoint: `(id, channel, needs, status, cost per interaction)`.
type Registered = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    Option<f64>,
);

const REGISTRY: [Registered; 9] = [
    (
        "web-shop",
        "web",
        &["information", "purchase"],
        "active",
        Some(0.05),
    ),
    (
        "self-care-app",
        "app",
        &["information", "billing"],
        "active",
        Some(0.02),
    ),
    (
        "newsletter",
        "email",
        &["information"],
        "active",
        Some(0.01),
    ),
    (
        "call-center",
        "phone",
        &["support", "complaint"],
        "active",
        Some(4.5),
    ),
    ("live-chat", "chat", &["support"], "active", Some(1.2)),
    (
        "store-rome",
        "store",
        &["purchase", "support"],
        "active",
        Some(8.0),
    ),
    ("nps-survey", "survey", &[], "active", None),
    ("fax-line", "fax", &["purchase"], "active", Some(3.0)),
    (
        "billing-portal",
        "web",
        &["billing", "post-sale"],
        "planned",
        None,
    ),
];

const CITIES: [&str; 3] = ["Roma", "Milano", "Napoli"];

/// Generates `people` people's journeys over the 90 days before `end`.
pub fn touchpoint_histories(people: usize, seed: u64, end: Timestamp) -> HistoryDataset {
    touchpoint_histories_of(0..people, seed, end)
}

/// Generates the journeys of people numbered `people` (so a large dataset can be made
/// in parts), over the 90 days before `end`.
pub fn touchpoint_histories_of(
    people: std::ops::Range<usize>,
    seed: u64,
    end: Timestamp,
) -> HistoryDataset {
    let (count, first) = (people.len(), people.start);
    let mut rng = fastrand::Rng::with_seed(seed ^ people.start as u64);
    let start = end - SignedDuration::from_hours(90 * 24);
    let mut out: Vec<(Timestamp, Map<String, Value>, usize)> = Vec::new();
    let mut push = |at: Timestamp, person: usize, message: Value| {
        if let Value::Object(mut m) = message {
            m.insert("timestamp".into(), at.to_string().into());
            out.push((at, m, person));
        }
    };
    let mut cases = 0usize;
    for p in people {
        let user = format!("user-{p:05}");
        let anon = format!("anon-{p:05}");
        let mut t = start + SignedDuration::from_mins(rng.i64(0..60 * 24 * 40));
        let step = |rng: &mut fastrand::Rng, t: &mut Timestamp, max_hours: i64| {
            *t += SignedDuration::from_mins(rng.i64(5..max_hours * 60));
            *t
        };
        let track = |user: &str, name: &str, touchpoint: &str, props: Value| {
            json!({"type": "track", "userId": user, "event": name, "properties": props,
                "context": {"touchpoint": touchpoint}})
        };
        // Anonymous browsing, then a login that ties it to the user.
        for page in ["Home", "Offers", "Pricing"].iter().take(rng.usize(1..4)) {
            let at = step(&mut rng, &mut t, 6);
            push(
                at,
                p,
                json!({"type": "page", "anonymousId": anon, "name": page,
                    "context": {"touchpoint": "web-shop"}}),
            );
        }
        let at = step(&mut rng, &mut t, 6);
        push(
            at,
            p,
            json!({"type": "identify", "userId": user, "anonymousId": anon,
                "traits": {"email": format!("person{p}@example.com"),
                    "city": CITIES[p % CITIES.len()]},
                "context": {"touchpoint": "web-shop"}}),
        );
        for _ in 0..rng.usize(0..4) {
            let at = step(&mut rng, &mut t, 72);
            let touchpoint =
                ["newsletter", "self-care-app", "live-chat", "call-center"][rng.usize(..4)];
            let message = match touchpoint {
                "newsletter" => track(&user, "Email Opened", touchpoint, json!({})),
                "self-care-app" => json!({"type": "screen", "userId": user, "name": "Offers",
                    "context": {"touchpoint": touchpoint}}),
                "live-chat" if rng.f32() < 0.3 => {
                    track(&user, "Chat Abandoned", touchpoint, json!({}))
                }
                "live-chat" => track(&user, "Chat Started", touchpoint, json!({})),
                _ if rng.f32() < 0.25 => track(&user, "Call Abandoned", touchpoint, json!({})),
                _ => track(&user, "Call Received", touchpoint, json!({})),
            };
            push(at, p, message);
        }
        if rng.f32() < 0.15 {
            let at = step(&mut rng, &mut t, 24);
            push(at, p, track(&user, "Cart Abandoned", "web-shop", json!({})));
        }
        if rng.f32() < 0.55 {
            let at = step(&mut rng, &mut t, 24 * 10);
            let touchpoint = if rng.f32() < 0.3 {
                "store-rome"
            } else {
                "web-shop"
            };
            push(
                at,
                p,
                track(
                    &user,
                    "Order Completed",
                    touchpoint,
                    json!({"revenue": rng.u32(10..500)}),
                ),
            );
        }
        if rng.f32() < 0.35 {
            cases += 1;
            let case = format!("CASE-{cases:05}");
            let opened_at = ["call-center", "live-chat", "store-rome"][rng.usize(..3)];
            let at = step(&mut rng, &mut t, 48);
            push(
                at,
                p,
                track(&user, "Case Opened", opened_at, json!({"case_id": case})),
            );
            for _ in 0..rng.usize(0..3) {
                let via =
                    ["call-center", "live-chat", "store-rome", "self-care-app"][rng.usize(..4)];
                let at = step(&mut rng, &mut t, 30);
                push(
                    at,
                    p,
                    track(&user, "Case Updated", via, json!({"case_id": case})),
                );
            }
            if rng.f32() < 0.8 {
                let at = step(&mut rng, &mut t, 30);
                push(
                    at,
                    p,
                    track(&user, "Case Resolved", opened_at, json!({"case_id": case})),
                );
                if rng.f32() < 0.6 {
                    let at = step(&mut rng, &mut t, 10);
                    push(
                        at,
                        p,
                        track(
                            &user,
                            "Survey Answered",
                            "nps-survey",
                            json!({"csat": rng.u8(1..6), "nps": rng.u8(0..11),
                                "about_touchpoint": opened_at, "case_id": case}),
                        ),
                    );
                }
            }
        }
        if rng.f32() < 0.08 {
            let at = step(&mut rng, &mut t, 48);
            push(
                at,
                p,
                json!({"type": "track", "userId": user, "event": "Message Received",
                    "context": {"touchpoint": "telegram-bot", "channel": "telegram"}}),
            );
        }
        if rng.f32() < 0.2 {
            let at = step(&mut rng, &mut t, 48);
            push(at, p, track(&user, "Email Opened", "newsletter", json!({})));
        }
        if rng.f32() < 0.6 {
            let at = step(&mut rng, &mut t, 48);
            let purpose = json!({"purpose": "promotional"});
            push(at, p, track(&user, "Consent Given", "web-shop", purpose));
        }
    }
    out.sort_by_key(|(at, _, _)| *at);
    let touchpoints = REGISTRY
        .iter()
        .map(|(id, channel, needs, status, cost)| {
            let mut t = json!({"id": id, "name": id, "channel": channel,
                "department": if *channel == "phone" { "support" } else { "sales" },
                "needs": needs, "status": status});
            if let Some(cost) = cost {
                t["cost_per_interaction"] = json!(cost);
            }
            t
        })
        .collect();
    HistoryDataset {
        messages: out
            .into_iter()
            .enumerate()
            .map(|(i, (_, mut m, p))| {
                m.insert(
                    "messageId".into(),
                    format!("journey-{seed}-{first}-{i}").into(),
                );
                (m, p)
            })
            .collect(),
        touchpoints,
        people: count,
    }
}
