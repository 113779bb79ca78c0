//! The touchpoint registry against the real store.

use std::sync::Arc;

use unavoce_core::{ChannelKind, Touchpoint, TouchpointStatus};
use unavoce_projections::{Origin, RegistryError, TouchpointRegistry};
use unavoce_store::EventLog;
use unavoce_testkit::store::TestStore;

fn touchpoint(id: &str, channel: ChannelKind) -> Touchpoint {
    Touchpoint {
        id: id.into(),
        name: id.into(),
        channel,
        presence: None,
        department: "support".into(),
        needs: vec!["support".into()],
        status: TouchpointStatus::Active,
        cost_per_interaction: None,
        capacity: None,
    }
}

#[tokio::test]
async fn config_touchpoints_are_read_only_and_api_ones_survive_a_restart() {
    let store = TestStore::open().await;
    let config = [touchpoint("call-center-milan", ChannelKind::Phone)];
    let log: Arc<dyn EventLog> = store.store();
    let registry = TouchpointRegistry::open(log.clone(), &config)
        .await
        .unwrap();
    registry
        .create(touchpoint("live-chat", ChannelKind::Chat))
        .await
        .unwrap();
    assert!(matches!(
        registry.delete("call-center-milan").await,
        Err(RegistryError::FromConfig(_))
    ));
    assert!(matches!(
        registry
            .create(touchpoint("call-center-milan", ChannelKind::Phone))
            .await,
        Err(RegistryError::Exists(_))
    ));
    let channels = registry.channels();
    assert_eq!(
        channels.read().unwrap().get("live-chat"),
        Some(&ChannelKind::Chat)
    );
    drop(log);

    let store = store.reopen().await;
    let log: Arc<dyn EventLog> = store.store();
    let registry = TouchpointRegistry::open(log, &config).await.unwrap();
    let listed: Vec<(String, Origin)> = registry
        .list()
        .into_iter()
        .map(|(t, o)| (t.id, o))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("call-center-milan".into(), Origin::Config),
            ("live-chat".into(), Origin::Api)
        ]
    );
}
