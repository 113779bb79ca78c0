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
