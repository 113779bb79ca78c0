//! The leases' contract, on the store `UNAVOCE_TEST_STORE` names.

use unavoce_testkit::store::TestStore;

#[tokio::test]
async fn a_lease_is_held_once_and_given_up_when_dropped() {
    let store = TestStore::open().await;
    let journeys = store
        .try_lease("journeys")
        .await
        .unwrap()
        .expect("free work");
    assert_eq!(journeys.work(), "journeys");
    assert!(!journeys.is_lost());
    assert!(
        store.try_lease("journeys").await.unwrap().is_none(),
        "a second lease on the same work is refused"
    );
    let other = store.try_lease("outbox:email").await.unwrap();
    assert!(other.is_some(), "other work is free");
    drop(journeys);
    // Given up: the store may release it on a task of its own, so ask until it is free.
    let mut again = None;
    for _ in 0..100 {
        again = store.try_lease("journeys").await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(again.is_some(), "a dropped lease can be taken again");
}
