//! A person read from what the identity projection holds, over the real store: the
//! context card from the held state and the few events it shows equals the card folded
//! from every event of theirs, late events and merges included.

use jiff::Timestamp;
use serde_json::json;
use unavoce_core::Identifier;
use unavoce_core::identity::ProfileId;
use unavoce_core::profile::SearchQuery;

mod support;
use support::World;

impl World {
    fn profile_of(&self, user: &str) -> ProfileId {
        let key = self
            .identity
            .rules()
            .key_of(&Identifier {
                kind: "user_id".to_string().into(),
                value: user.into(),
            })
            .unwrap();
        self.identity.read(|g| g.lookup(&key).unwrap().id)
    }
}

fn day(d: u32) -> String {
    format!("2024-05-{d:02}T10:00:00Z")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_shows_the_latest_interactions_by_time_when_events_arrive_late() {
    let p = World::new().await;
    let call = |who: &str, d: u32| {
        json!({"type": "track", "userId": who, "event": format!("Call {d}"), "timestamp": day(d),
            "context": {"channel": "phone"}})
    };
    let mut messages = vec![
        json!({"type": "identify", "userId": "giulia", "timestamp": day(1),
        "traits": {"name": "Giulia Rossi", "email": "giulia@example.com"}}),
    ];
    messages.extend((2..=13).map(|d| call("giulia", d)));
    // A web visitor, a separate profile until she logs in.
    messages.push(
        json!({"type": "page", "anonymousId": "web-1", "name": "Pricing",
        "timestamp": "2024-05-12T22:00:00Z"}),
    );
    messages.push(
        json!({"type": "track", "anonymousId": "web-1", "event": "Email Opened",
        "timestamp": day(4)}),
    );
    messages.push(
        json!({"type": "identify", "anonymousId": "web-1", "userId": "giulia",
        "timestamp": day(2)}),
    );
    // Late: a store visit from before everything, and a chat between the newest two.
    messages.push(
        json!({"type": "track", "userId": "giulia", "event": "Store Visit",
        "timestamp": day(1), "context": {"channel": "store"}}),
    );
    messages.push(
        json!({"type": "track", "userId": "giulia", "event": "Chat Started",
        "timestamp": "2024-05-12T23:00:00Z", "context": {"channel": "chat"}}),
    );
    p.send(messages).await;

    let giulia = p.profile_of("giulia");
    let now: Timestamp = "2024-05-20T00:00:00Z".parse().unwrap();
    let card = p.identity.context_card(giulia, now).await.unwrap().unwrap();
    let shown: Vec<&str> = (card.last_interactions.iter())
        .map(|i| i.name.as_deref().unwrap_or(i.kind.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            "Call 13",
            "Chat Started",
            "Pricing",
            "Call 12",
            "Call 11",
            "Call 10",
            "Call 9",
            "Call 8",
            "Call 7",
            "Call 6"
        ],
        "newest first by when they happened, the merged visitor's page view among them"
    );
    assert_eq!(card.recent_messages.len(), 1);
    assert_eq!(card.name.as_deref(), Some("Giulia Rossi"));
    assert_eq!(
        card,
        p.identity
            .context_card_from_history(giulia, now)
            .await
            .unwrap()
            .unwrap()
    );

    let view = p.identity.profile_view(giulia).unwrap();
    assert_eq!(view.traits["name"].value.as_str(), Some("Giulia Rossi"));
    assert_eq!(view.last_seen, Some(day(13).parse().unwrap()));
    let found = p.identity.search(&SearchQuery::new("ROSSI").unwrap(), 10);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, giulia);
    assert_eq!(
        found[0].identifiers.len(),
        2,
        "user id and e-mail, not the visitor id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_dated_after_now_are_counted_from_the_log() {
    let p = World::new().await;
    let mut messages = vec![
        json!({"type": "track", "userId": "bruno", "event": "Consent Given", "timestamp": day(1),
            "properties": {"purpose": "promotional"}}),
    ];
    // 19: below the most the card counts (20), so the count from the log is exact.
    messages.extend((1..=19).map(|d| {
        json!({"type": "track", "userId": "bruno", "event": "Product Viewed", "timestamp": day(d)})
    }));
    p.send(messages).await;
    let bruno = p.profile_of("bruno");
    // Now is before the newest views: those the held times let go count again.
    for now in ["2024-05-10T00:00:00Z", "2024-05-30T00:00:00Z"] {
        let now: Timestamp = now.parse().unwrap();
        let card = p.identity.context_card(bruno, now).await.unwrap().unwrap();
        assert_eq!(card.next_best_action.action, "offer_help");
        assert_eq!(
            card,
            p.identity
                .context_card_from_history(bruno, now)
                .await
                .unwrap()
                .unwrap()
        );
    }
    let card = p
        .identity
        .context_card(bruno, "2024-05-10T00:00:00Z".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        card.next_best_action.summary.contains("19 product"),
        "{}",
        card.next_best_action.summary
    );

    // Past the most the card counts, it says so, from the held times alone.
    let mut messages = vec![
        json!({"type": "track", "userId": "carlo", "event": "Consent Given", "timestamp": day(1),
            "properties": {"purpose": "promotional"}}),
    ];
    messages.extend((0..30).map(|m| {
        json!({"type": "track", "userId": "carlo", "event": "Product Viewed",
            "timestamp": format!("2024-05-20T10:{m:02}:00Z")})
    }));
    p.send(messages).await;
    let carlo = p.profile_of("carlo");
    let now: Timestamp = "2024-05-30T00:00:00Z".parse().unwrap();
    let card = p.identity.context_card(carlo, now).await.unwrap().unwrap();
    assert!(
        card.next_best_action.summary.contains("20 or more product"),
        "{}",
        card.next_best_action.summary
    );
    let from_history = p.identity.context_card_from_history(carlo, now).await;
    assert_eq!(card, from_history.unwrap().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_number_is_found_as_an_agent_types_it() {
    let p = World::new().await;
    p.send(vec![
        json!({"type": "identify", "userId": "carla", "timestamp": day(1),
            "traits": {"name": "Carla Verdi", "phone": "347 555 0003"}}),
        json!({"type": "identify", "userId": "dario", "timestamp": day(1),
            "traits": {"name": "Dario Neri", "phone": "+39 06 5555 1234"}}),
    ])
    .await;
    let carla = p.profile_of("carla");
    let dario = p.profile_of("dario");
    let found = |q: &str| -> Vec<_> {
        (p.identity
            .search(&SearchQuery::new(q).unwrap(), 10)
            .into_iter())
        .map(|f| f.id)
        .collect()
    };
    for written in [
        "3475550003",
        "347 555 0003",
        "347-555-0003",
        "+39 347 555 0003",
        "0039 347 555 0003",
        "347 555",
    ] {
        assert_eq!(found(written), vec![carla], "{written:?}");
    }
    // A landline keeps its leading 0 after the country code in E.164 (+39 06…): the
    // national form is read whole by the identity rules' default region (IT).
    assert_eq!(found("06 5555 1234"), vec![dario]);
    assert_eq!(found("06-5555-1234"), vec![dario]);
    assert!(found("347 555 0004").is_empty());
}
