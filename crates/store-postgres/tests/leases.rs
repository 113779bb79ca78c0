//! Leases between two nodes on one PostgreSQL database: one holder at a time, taken
//! over when the holder's session ends.

use std::time::Duration;

use unavoce_store::Leases;
use unavoce_store_postgres::testing::TestDatabase;
use unavoce_store_postgres::{PgOptions, PgStore};

async fn node(database: &TestDatabase) -> PgStore {
    PgStore::open(&database.url, PgOptions::default())
        .await
        .expect("a node on the test database")
}

/// Asks for `work` until it is taken (a lease given up is released on a task of its
/// own), at most for `within`.
async fn lease_within(
    store: &PgStore,
    work: &str,
    within: Duration,
) -> Option<unavoce_store::Lease> {
    tokio::time::timeout(within, async {
        loop {
            if let Some(lease) = store.try_lease(work).await.unwrap() {
                return lease;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_holds_a_lease_and_another_takes_it_over_when_its_session_ends() {
    let database = TestDatabase::create().await.unwrap();
    let a = node(&database).await;
    let b = node(&database).await;
    let mut held = a.try_lease("journeys").await.unwrap().expect("free work");
    assert!(
        b.try_lease("journeys").await.unwrap().is_none(),
        "A holds it"
    );
    assert!(b.try_lease("segments").await.unwrap().is_some());

    // A's lease session dies, as when its node is killed or cut off.
    let (admin, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'unavoce-leases%' \
             AND l.objid = hashtext('journeys')::oid",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "A's lease session holds the lock");
    tokio::time::timeout(Duration::from_secs(10), held.lost())
        .await
        .expect("A learns it lost the lease");
    assert!(held.is_lost());
    let taken = lease_within(&b, "journeys", Duration::from_secs(10)).await;
    assert!(taken.is_some(), "B takes the work over");
    assert!(
        a.try_lease("journeys").await.unwrap().is_none(),
        "and A, back, cannot take it while B holds it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_gives_its_leases_up_at_once() {
    let database = TestDatabase::create().await.unwrap();
    let a = node(&database).await;
    let b = node(&database).await;
    let _held = a
        .try_lease("outbox:email")
        .await
        .unwrap()
        .expect("free work");
    assert!(b.try_lease("outbox:email").await.unwrap().is_none());
    unavoce_store::EventLog::close(&a).await;
    let taken = lease_within(&b, "outbox:email", Duration::from_secs(10)).await;
    assert!(taken.is_some(), "B takes the lane once A stopped");
}
