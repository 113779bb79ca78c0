//! Two nodes on one PostgreSQL database, each with its own bus to a real NATS server
//! (`UNAVOCE_TEST_NATS_URL`, or nats://127.0.0.1:4222 as `.ci/run` starts it): one
//! node's commits reach the other's `committed` watch and wake it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use unavoce_cluster::{Bus, BusError, new_node_id};
use unavoce_core::segment::{IntakeContext, normalise};
use unavoce_store::{AppendBatch, Appended, EventLog};
use unavoce_store_postgres::testing::TestDatabase;
use unavoce_store_postgres::{PgOptions, PgStore};

/// How long anything here may take before the test fails.
const WITHIN: Duration = Duration::from_secs(15);

fn nats_url() -> String {
    std::env::var("UNAVOCE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A cluster of its own for each test, so that tests running at once do not hear
/// each other.
fn cluster() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

async fn database() -> TestDatabase {
    TestDatabase::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn store(database: &TestDatabase) -> Arc<PgStore> {
    Arc::new(
        PgStore::open(&database.url, PgOptions::default())
            .await
            .expect("a node on the test database"),
    )
}

/// Connects to the test NATS server; fails the test (never skips it) when there is none.
async fn bus_at(url: &str, cluster: &str) -> Bus {
    Bus::connect(url, cluster, &new_node_id(Some("test")))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nthe cluster tests need NATS: start `nats-server -js -a 127.0.0.1 -p 4222` \
                 (.ci/run does), or set UNAVOCE_TEST_NATS_URL"
            )
        })
}

async fn bus(cluster: &str) -> Bus {
    bus_at(&nats_url(), cluster).await
}

/// Counts a node's wake-ups.
struct Wakes(watch::Receiver<u64>);

impl Wakes {
    fn new() -> (Wakes, unavoce_cluster::Wake) {
        let (woken, wakes) = watch::channel(0u64);
        (
            Wakes(wakes),
            Arc::new(move || woken.send_modify(|count| *count += 1)),
        )
    }

    fn count(&self) -> u64 {
        *self.0.borrow()
    }

    /// Waits until woken more than `seen` times.
    async fn after(&mut self, seen: u64) {
        tokio::time::timeout(WITHIN, self.0.wait_for(|count| *count > seen))
            .await
            .expect("woken in time")
            .expect("the wake counter lives");
    }
}

/// Waits until `store`'s `committed` watch reaches `seq`.
async fn committed_reaches(store: &PgStore, seq: i64) {
    let mut committed = store.committed();
    let reached = tokio::time::timeout(WITHIN, committed.wait_for(|at| *at >= seq))
        .await
        .is_ok_and(|reached| reached.is_ok());
    assert!(
        reached,
        "the committed watch stayed at {} instead of reaching {seq}",
        *committed.borrow()
    );
}

/// Appends one event through `store`; its log position.
async fn append(store: &PgStore, id: &str) -> i64 {
    let message = json!({"type": "track", "event": "Viewed", "messageId": id, "userId": "u1"});
    let event = normalise(
        message.as_object().expect("an object").clone(),
        &IntakeContext::new("2024-05-01T10:00:00Z".parse().expect("a time"), "test"),
        || unreachable!("the message has an id"),
    )
    .expect("a valid event");
    let outcome = store
        .append(&AppendBatch {
            events: vec![event],
            ..Default::default()
        })
        .await
        .expect("appended");
    match outcome.events[..] {
        [Appended::Stored { seq }] => seq,
        ref other => panic!("not stored: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_one_node_reaches_the_other_through_nats() {
    let database = database().await;
    let cluster = cluster();
    let (a, b) = (store(&database).await, store(&database).await);
    let (bus_a, bus_b) = (bus(&cluster).await, bus(&cluster).await);
    let (mut wakes_a, wake_a) = Wakes::new();
    let (mut wakes_b, wake_b) = Wakes::new();
    let following_a = bus_a.follow(a.clone(), wake_a).await.expect("A follows");
    let following_b = bus_b.follow(b.clone(), wake_b).await.expect("B follows");
    // Both are subscribed and caught up: from here on only a notification moves B.
    let seen = wakes_b.count();
    let seq = append(&a, "m1").await;
    committed_reaches(&b, seq).await;
    wakes_b.after(seen).await;

    // And the other way round, twice: each commit is announced.
    for id in ["m2", "m3"] {
        let seen = wakes_a.count();
        let seq = append(&b, id).await;
        committed_reaches(&a, seq).await;
        wakes_a.after(seen).await;
    }
    assert_eq!((bus_a.malformed(), bus_b.malformed()), (0, 0));
    following_a.abort();
    following_b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_starts_following_after_commits_catches_up_from_postgresql() {
    let database = database().await;
    let cluster = cluster();
    let (a, b) = (store(&database).await, store(&database).await);
    // A commits with no bus at all: nothing is announced.
    append(&a, "m1").await;
    let seq = append(&a, "m2").await;
    assert!(*b.committed().borrow() < seq, "B opened before A's commits");

    let (wakes_b, wake_b) = Wakes::new();
    let following = bus(&cluster).await.follow(b.clone(), wake_b).await;
    let following = following.expect("B follows");
    assert_eq!(
        *b.committed().borrow(),
        seq,
        "caught up before follow returned"
    );
    assert!(wakes_b.count() >= 1, "woken to read what it missed");
    following.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_catches_up_after_a_reconnect_with_what_it_missed() {
    let database = database().await;
    let cluster = cluster();
    let (a, b) = (store(&database).await, store(&database).await);
    let proxy = Proxy::start(&nats_url()).await;
    let bus_b = bus_at(&format!("nats://{}", proxy.address), &cluster).await;
    let (mut wakes_b, wake_b) = Wakes::new();
    let following = bus_b.follow(b.clone(), wake_b).await.expect("B follows");

    // B's connection is cut; A commits meanwhile, announcing nothing (it has no bus):
    // only catching up after B's reconnect can move B's watch.
    proxy.cut();
    let seq = append(&a, "m1").await;
    let seen = wakes_b.count();
    assert!(*b.committed().borrow() < seq);
    proxy.restore();
    committed_reaches(&b, seq).await;
    wakes_b.after(seen).await;
    following.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_are_not_notifications_are_counted_and_ignored() {
    let database = database().await;
    let cluster = cluster();
    let b = store(&database).await;
    let bus_b = bus(&cluster).await;
    let (mut wakes_b, wake_b) = Wakes::new();
    let following = bus_b.follow(b.clone(), wake_b).await.expect("B follows");
    let head = *b.committed().borrow();
    let seen = wakes_b.count();

    let raw = async_nats::connect(nats_url()).await.expect("a raw client");
    let malformed: [&[u8]; 6] = [
        b"",
        b"not json",
        br#"{"node":"x"}"#,
        br#"{"node":"x","seq":-1}"#,
        br#"{"node":"","seq":1}"#,
        br#"{"node":"x","seq":"1"}"#,
    ];
    for payload in malformed {
        raw.publish(bus_b.subject().to_owned(), payload.to_vec().into())
            .await
            .expect("published");
    }
    // Then a valid one (at the head, so it moves nothing): once it wakes B, everything
    // before it on the same connection was handled.
    let valid = json!({"node": "probe", "seq": head}).to_string();
    raw.publish(bus_b.subject().to_owned(), valid.into_bytes().into())
        .await
        .expect("published");
    raw.flush().await.expect("flushed");
    wakes_b.after(seen).await;

    assert_eq!(bus_b.malformed(), malformed.len() as u64);
    assert_eq!(
        *b.committed().borrow(),
        head,
        "nothing malformed moved the watch"
    );
    assert!(!following.is_finished(), "still following");
    following.abort();
}

#[tokio::test]
async fn an_unreachable_nats_server_is_a_clear_error_that_keeps_credentials_out() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address").port()
    };
    let url = format!("nats://ops:hunter2@127.0.0.1:{port}");
    let error = Bus::connect(&url, "unavoce", "node-1")
        .await
        .err()
        .expect("no server there");
    assert!(matches!(error, BusError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot reach NATS at nats://127.0.0.1:{port}: is nats-server running? (.ci/run starts one)"
        )),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
}

#[tokio::test]
async fn a_cluster_name_that_is_not_a_subject_token_is_refused() {
    for name in ["", "eu.west", "eu*", ">", "eu west"] {
        let error = Bus::connect(&nats_url(), name, "node-1")
            .await
            .err()
            .expect("refused");
        assert!(matches!(error, BusError::ClusterName(_)), "{name}: {error}");
        assert!(error.to_string().contains("letters, digits"), "{error}");
    }
    let error = Bus::connect(&nats_url(), "unavoce", " ")
        .await
        .err()
        .expect("refused");
    assert!(matches!(error, BusError::NodeId), "{error}");
}

/// A TCP relay to the NATS server whose connections the test can cut, as a network
/// failure would.
struct Proxy {
    address: SocketAddr,
    open: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(nats_url: &str) -> Proxy {
        // host:port, without scheme or credentials (the relayed bus connects without any).
        let rest = nats_url
            .split_once("://")
            .map_or(nats_url, |(_, rest)| rest);
        let server = rest
            .rsplit_once('@')
            .map_or(rest, |(_, host)| host)
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the relay");
        let address = listener.local_addr().expect("its address");
        let (open, is_open) = watch::channel(true);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*is_open.borrow() {
                    continue; // dropped: refused while cut
                }
                let mut is_open = is_open.clone();
                let server = server.clone();
                tokio::spawn(async move {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&server).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = is_open.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Proxy {
            address,
            open,
            task,
        }
    }

    /// Closes every relayed connection and refuses new ones.
    fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Relays new connections again.
    fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
