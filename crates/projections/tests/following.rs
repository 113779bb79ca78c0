//! A projection following the intake — pushed events prepared on its helper's thread and
//! applied on its own, told out of order by appends committed together — ends with
//! exactly what a replay of the whole log gives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, json};
use unavoce_core::identity::IdentityRules;
use unavoce_core::profile::default_computed_traits;
use unavoce_intake::Intake;
use unavoce_projections::IdentityProjection;
use unavoce_store::Store;
use unavoce_testkit::store::TestStore;

mod support;

use support::events;

async fn open(store: &Arc<dyn Store>) -> Arc<IdentityProjection> {
    IdentityProjection::open(
        store.clone(),
        IdentityRules::default_rules(),
        Default::default(),
        Arc::new(default_computed_traits()),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_events_applied_as_they_come_equal_a_replay_of_the_log() {
    let test_store = TestStore::open().await;
    let store = test_store.store();
    let live = open(&store).await;
    let _follower = live.follow().unwrap();
    let intake = Intake::new(store.clone()).with_observer(live.clone());

    // Senders at once: their appends share commits and are told in any order.
    let mut sending = tokio::task::JoinSet::new();
    for sender in 0..8 {
        let intake = intake.clone();
        sending.spawn(async move {
            for part in 0..5 {
                let from = (sender * 5 + part) * 6;
                let messages: Vec<Map<String, serde_json::Value>> = events(from, 6)
                    .into_iter()
                    .filter_map(|m| m.as_object().cloned())
                    .collect();
                let report = intake.record("test", messages, json!({})).await.unwrap();
                assert!(report.rejected.is_empty(), "{:?}", report.rejected);
            }
        });
    }
    while let Some(sent) = sending.join_next().await {
        sent.unwrap();
    }
    let head = *store.committed().borrow();
    assert!(head > 1_000, "{head} events");

    // The follower's watermark reaches the head of the log, with no one else catching up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while live.applied() < head {
        assert!(
            Instant::now() < deadline,
            "the follower applied {} of {head} events",
            live.applied()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let replayed = open(&store).await;
    assert!(live.same_as(&replayed) && replayed.same_as(&live));
    assert!(live.read(|graph| graph.profile_count()) > 100);
}
