//! Segments kept current over the real store, without HTTP: a membership change is
//! recorded as an event of the person, which their state reads back.

use jiff::Timestamp;
use serde_json::json;
use unavoce_core::platform_events::{SEGMENT_ENTERED, SEGMENT_EXITED};
use unavoce_projections::Segments;
use unavoce_projections::catalog::Edit;
use unavoce_store::EventQuery;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_enter_and_leave_a_segment_as_recorded_events_of_theirs() {
    let world = support::World::new().await;
    let (store, identity) = (&world.store, &world.identity);
    let segments = Segments::open(
        identity.clone(),
        world.intake.clone(),
        &[serde_json::from_value(json!({"name": "romans",
            "expression": "traits.city == 'Roma'"}))
        .unwrap()],
    )
    .await
    .unwrap();
    world
        .send(vec![
            json!({"type": "identify", "userId": "ada", "traits": {"city": "Roma"}}),
            json!({"type": "identify", "userId": "bruno", "traits": {"city": "Milano"}}),
        ])
        .await;
    assert_eq!(segments.update(Timestamp::now()).await.unwrap(), 1);
    identity.catch_up().await.unwrap();
    assert_eq!(segments.get("romans").unwrap().size, 1);

    // Ada moves: she leaves the segment.
    world
        .send(vec![
            json!({"type": "identify", "userId": "ada", "traits": {"city": "Torino"}}),
        ])
        .await;
    assert_eq!(segments.update(Timestamp::now()).await.unwrap(), 1);
    identity.catch_up().await.unwrap();
    assert_eq!(segments.get("romans").unwrap().size, 0);
    assert!(segments.members("romans", None, 10).is_empty());

    // Both changes are events of hers, from the segment maintenance.
    let events = store
        .events(EventQuery {
            user_id: Some("ada".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let changes: Vec<&str> = events
        .events
        .iter()
        .filter(|e| e.event.source == "segments")
        .filter_map(|e| e.event.name.as_deref())
        .collect();
    assert_eq!(changes, [SEGMENT_ENTERED, SEGMENT_EXITED]);
}

/// Segments defined through the API before versions were kept (the setting held the
/// definitions alone) are read as their first version, and change from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_kept_before_versions_are_their_first_version() {
    let world = support::World::new().await;
    world
        .store
        .put_setting(
            "engagement.segments",
            json!([{"name": "romans", "expression": "traits.city == 'Roma'"}]),
        )
        .await
        .unwrap();
    let segments = Segments::open(world.identity.clone(), world.intake.clone(), &[])
        .await
        .unwrap();
    let romans = segments.get("romans").unwrap();
    assert_eq!((romans.origin, romans.version), ("api", 1));
    let history = segments.versions("romans").unwrap();
    assert_eq!(
        (history.versions[0].at, history.versions[0].by.as_deref()),
        (None, None)
    );

    let edit = Edit {
        by: "care-lead",
        at: Timestamp::now(),
    };
    let revision = segments
        .revise(
            serde_json::from_value(
                json!({"name": "romans", "expression": "traits.city == 'Rome'"}),
            )
            .unwrap(),
            edit,
        )
        .await
        .unwrap();
    assert_eq!(revision.version, 2);
    // Kept in the new form: read back the same by a second catalog.
    let again = Segments::open(world.identity.clone(), world.intake.clone(), &[])
        .await
        .unwrap();
    let history = again.versions("romans").unwrap();
    assert_eq!(history.versions.len(), 2);
    assert_eq!(history.versions[1].by.as_deref(), Some("care-lead"));
    assert_eq!(again.get("romans").unwrap().version, 2);
}
