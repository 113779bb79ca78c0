#![allow(dead_code)] // each test file uses a different part
//! What the projections' tests share: a store, the identity projection following it,
//! and an intake feeding both.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use unavoce_core::identity::IdentityRules;
use unavoce_core::profile::default_computed_traits;
use unavoce_intake::Intake;
use unavoce_projections::IdentityProjection;
use unavoce_store::Store;
use unavoce_testkit::store::TestStore;

/// A fresh store (of the kind `UNAVOCE_TEST_STORE` names), with the identity
/// projection and the intake.
pub struct World {
    pub store: Arc<dyn Store>,
    pub identity: Arc<IdentityProjection>,
    pub intake: Intake,
    _store: TestStore,
}

impl World {
    pub async fn new() -> World {
        let test_store = TestStore::open().await;
        let store = test_store.store();
        let identity = IdentityProjection::open(
            store.clone(),
            IdentityRules::default_rules(),
            Default::default(),
            Arc::new(default_computed_traits()),
        )
        .await
        .unwrap();
        let intake = Intake::new(store.clone()).with_observer(identity.clone());
        World {
            store,
            identity,
            intake,
            _store: test_store,
        }
    }

    /// Records `messages` through the intake, in this log order, and catches up.
    pub async fn send(&self, messages: Vec<Value>) {
        let messages: Vec<Map<String, Value>> = messages
            .into_iter()
            .map(|m| m.as_object().unwrap().clone())
            .collect();
        let report = self
            .intake
            .record("test", messages, json!({}))
            .await
            .unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        self.identity.catch_up().await.unwrap();
    }
}

/// Events of `people` people from `from`: visits as anonymous devices, then identifies
/// that merge them, purchases, survey answers, cases; and anonymous visitors.
pub fn events(from: usize, people: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for i in from..from + people {
        let device = format!("device-{i}");
        let user = format!("u-{}", i / 3); // three devices per person: merges
        out.push(
            json!({"type": "page", "anonymousId": device, "name": "Offers",
            "context": {"page": {"url": "https://shop.example/offers"}}}),
        );
        out.push(
            json!({"type": "identify", "anonymousId": device, "userId": user,
            "traits": {"email": format!("p{}@example.com", i / 3), "first_name": "Ada",
                       "plan": {"tier": i % 4, "trial": i % 2 == 0}, "score": (i as f64) / 7.0}}),
        );
        out.push(
            json!({"type": "track", "userId": user, "event": "Order Completed",
            "properties": {"revenue": 10 + i % 90, "currency": "EUR"}}),
        );
        out.push(
            json!({"type": "track", "userId": user, "event": "Survey Answered",
            "properties": {"csat": 1 + i % 5, "nps": i % 11}}),
        );
        out.push(
            json!({"type": "track", "userId": user, "event": "Case Opened",
            "properties": {"case_id": format!("c-{i}"), "subject": "Late delivery"}}),
        );
        if i % 2 == 0 {
            out.push(
                json!({"type": "track", "userId": user, "event": "Case Resolved",
                "properties": {"case_id": format!("c-{i}")}}),
            );
        }
        if i % 10 == 0 {
            // Someone never identified: a profile a link decision can merge.
            out.push(json!({"type": "page", "anonymousId": format!("kiosk-{i}"), "name": "Help"}));
        }
    }
    out
}
