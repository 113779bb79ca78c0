//! Rebuilding the projections from the log after events were removed (erasure,
//! retention) keeps the decisions taken about people.

use serde_json::json;
use unavoce_core::{Identifier, IdentifierType};
use unavoce_store::Erasure;

mod support;
use support::World;

fn device(value: &str) -> Identifier {
    Identifier {
        kind: IdentifierType::AnonymousId,
        value: value.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_taken_after_an_event_since_removed_still_holds_after_a_rebuild() {
    let world = World::new().await;
    world
        .send(vec![
            json!({"type": "page", "anonymousId": "laptop-1", "name": "Offers"}),
            json!({"type": "page", "anonymousId": "phone-1", "name": "Offers"}),
            json!({"type": "identify", "userId": "u-c", "traits": {"email": "c@example.com"}}),
        ])
        .await;
    let profiles = || world.identity.read(|g| g.profile_count());
    assert_eq!(profiles(), 3);
    // Decided after the third event, which is then removed from the log.
    world
        .identity
        .link(&device("laptop-1"), &device("phone-1"), "review", None)
        .await
        .unwrap();
    assert_eq!(profiles(), 2);
    let removed = world
        .store
        .erase(Erasure {
            seqs: vec![3],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(removed.events, 1);
    world.identity.rebuild().await.unwrap();
    // u-c is gone with its only event; the laptop and the phone are still one person.
    assert_eq!(profiles(), 1);
    let key = world.identity.rules().key_of(&device("phone-1")).unwrap();
    let holder = world
        .identity
        .read(|g| g.lookup(&key).map(|n| n.identifiers.len()));
    assert_eq!(holder, Some(2), "both devices in one profile");
}
