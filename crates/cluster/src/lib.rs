//! Wake-ups between Unavoce nodes that share one PostgreSQL store, over NATS.
//!
//! A node knows of its own appends at once; it learns of the others' through this
//! crate. Each node publishes the log position its commits reached
//! ([`PgStore::appended`]) on `unavoce.<cluster>.committed` as
//! `{"node":"…","seq":123}`; every other node then moves its store's `committed`
//! watch there ([`PgStore::notice_committed`]) and wakes its projections. PostgreSQL
//! holds every event: a notification only says "read the log now", so a lost one
//! costs latency, never data.
//!
//! - **Catching up.** When following starts and after every reconnect, the node makes
//!   one round trip to the server (so its subscription is in force there), reads the
//!   log's head from PostgreSQL ([`PgStore::refresh_committed`]) and wakes. Whatever
//!   was committed while it was away is read then; whatever is committed after that
//!   read is announced to a subscription already in place.
//! - **Coalescing.** Publishing follows a watch of this node's commits: while one
//!   publish is under way, newer commits stand for all before them and only the newest
//!   position goes out.
//! - **Core NATS, not JetStream.** The newest notification stands for every one before
//!   it and is worth something only while fresh; the head it points to is in
//!   PostgreSQL, which a node reads on every (re)connect. A JetStream stream (say with
//!   `max_msgs_per_subject = 1`) would keep the last head for a starting node, but
//!   that read already gives it; it would also need creating and configuring on the
//!   server, acknowledgements, and storage whose durability (a Jepsen analysis found
//!   that JetStream's default fsync interval can lose acknowledged writes) matters not
//!   at all here. So plain publish/subscribe: no server state, nothing to set up
//!   beyond a running server.
//! - **Trust.** Whoever may publish on the subject can wake the nodes (harmless) or
//!   move their `committed` watch past the log's head (they then read early and find
//!   nothing new); keep publishing there to the cluster's nodes with NATS permissions.
//!   Messages that are not notifications are counted ([`Bus::malformed`]) and ignored.

mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event, RequestErrorKind, Subscriber};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use unavoce_core::redact::Redacted;
use unavoce_store::StoreError;
use unavoce_store_postgres::PgStore;

use self::servers::Credentials;

/// The cluster name unless configured otherwise: subject `unavoce.unavoce.committed`.
pub const DEFAULT_CLUSTER_NAME: &str = "unavoce";

/// Called when other nodes' events may be in the log: wakes what reads it.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// How long the round trip before catching up may take; past it, catching up goes on
/// without it.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait before reading the log's head again when PostgreSQL did not answer.
const REFRESH_RETRY: Duration = Duration::from_secs(1);

/// Why the bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(
        "the NATS URL is not valid ({0}): write it as nats://host:4222 \
         (tls:// for TLS, user:password@ or token@ before the host, several servers separated by commas)"
    )]
    Url(String),
    #[error(
        "the cluster name {0:?} cannot be a NATS subject token: use 1 to 64 letters, digits, '-' or '_'"
    )]
    ClusterName(String),
    #[error("the node id is empty: give each node an id of its own")]
    NodeId,
    #[error("cannot reach NATS at {at}: is nats-server running? (.ci/run starts one) ({reason})")]
    Unreachable {
        at: String,
        reason: async_nats::ConnectError,
    },
    #[error(
        "NATS at {at} refused this node: check the user and password (or token) in the NATS URL"
    )]
    Refused { at: String },
    #[error(
        "TLS with NATS at {at} failed: check the server's certificate and the URL's scheme ({reason})"
    )]
    Tls {
        at: String,
        reason: async_nats::ConnectError,
    },
    #[error("cannot subscribe to {subject} on NATS: {reason}")]
    Subscribe {
        subject: String,
        reason: async_nats::SubscribeError,
    },
    #[error("cannot publish on {subject} to NATS: {reason}")]
    Publish { subject: String, reason: String },
    #[error("cannot read the log's head from PostgreSQL: {0}")]
    Store(#[from] StoreError),
}

/// A notification: `node` committed the shared log up to `seq`.
#[derive(Debug, Serialize, Deserialize)]
struct Committed {
    node: String,
    seq: i64,
}

/// This node's connection to the other nodes, through NATS.
pub struct Bus {
    client: Client,
    node: String,
    subject: String,
    /// Where nodes announce the changes others must take in (definitions, erasures).
    changes_subject: String,
    /// A subject nobody answers: a request to it comes back once the server has read
    /// everything sent before it.
    round_trip_subject: String,
    /// How many times the client has connected (the first: [`Bus::connect`]), as it
    /// changes; the count may reach 1 only after `connect` returned.
    connections: watch::Receiver<u64>,
    malformed: Arc<AtomicU64>,
    at: String,
}

impl Bus {
    /// Connects to the NATS server(s) at `url` as node `node_id` of cluster
    /// `cluster_name` ([`DEFAULT_CLUSTER_NAME`] unless several clusters share the
    /// server). The client reconnects by itself for as long as the bus lives.
    pub async fn connect(url: &str, cluster_name: &str, node_id: &str) -> Result<Bus, BusError> {
        check_cluster_name(cluster_name)?;
        if node_id.trim().is_empty() {
            return Err(BusError::NodeId);
        }
        let servers = servers::parse(url)?;
        let at = servers.shown.clone();
        let (connected, connections) = watch::channel(0u64);
        let connected = Arc::new(connected);
        let options = ConnectOptions::new()
            .name(format!("unavoce {node_id}"))
            // A node's own notifications are of no use to it.
            .no_echo()
            .event_callback(move |event| {
                let connected = connected.clone();
                async move {
                    match event {
                        Event::Connected => connected.send_modify(|count| *count += 1),
                        Event::Disconnected => tracing::warn!(
                            "lost the connection to NATS: other nodes' commits reach this node \
                             when it is back"
                        ),
                        _ => {}
                    }
                }
            });
        let options = match servers.credentials {
            Credentials::None => options,
            Credentials::Token(token) => options.token(token),
            Credentials::UserPassword(user, password) => options.user_and_password(user, password),
        };
        let client =
            options
                .connect(servers.addrs)
                .await
                .map_err(|reason| match reason.kind() {
                    ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                        BusError::Refused { at: at.clone() }
                    }
                    ConnectErrorKind::Tls => BusError::Tls {
                        at: at.clone(),
                        reason,
                    },
                    _ => BusError::Unreachable {
                        at: at.clone(),
                        reason,
                    },
                })?;
        tracing::info!(nats = %at, node = node_id, cluster = cluster_name, "connected to NATS");
        Ok(Bus {
            client,
            node: node_id.into(),
            subject: format!("unavoce.{cluster_name}.committed"),
            changes_subject: format!("unavoce.{cluster_name}.changes"),
            round_trip_subject: format!("unavoce.{cluster_name}.round-trip"),
            connections,
            malformed: Arc::new(AtomicU64::new(0)),
            at,
        })
    }

    /// The subject notifications go by.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The servers, as they may be shown (no credentials).
    pub fn servers(&self) -> &str {
        &self.at
    }

    /// Announces a change this node made that the others must take in: `payload` is the
    /// caller's (it names what changed, never a person's data). At most once, as every
    /// NATS publication: a node that was cut off takes everything in again when it
    /// reconnects ([`Bus::connections`]).
    pub async fn announce(&self, payload: Vec<u8>) -> Result<(), BusError> {
        self.client
            .publish(self.changes_subject.clone(), payload.into())
            .await
            .map_err(|reason| BusError::Publish {
                subject: self.changes_subject.clone(),
                reason: reason.to_string(),
            })
    }

    /// The changes the other nodes announce (their payloads; never this node's own).
    pub async fn changes(&self) -> Result<Changes, BusError> {
        self.client
            .subscribe(self.changes_subject.clone())
            .await
            .map(Changes)
            .map_err(|reason| BusError::Subscribe {
                subject: self.changes_subject.clone(),
                reason,
            })
    }

    /// How many times the client has connected, as it changes: after a reconnection
    /// whatever was announced meanwhile was lost to this node.
    pub fn connections(&self) -> watch::Receiver<u64> {
        self.connections.clone()
    }

    /// Messages on the subject that were not notifications, ignored so far.
    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }

    /// Follows the other nodes for `store`: publishes each change of this node's
    /// commits, and for each other node's notification moves the store's `committed`
    /// watch and calls `wake`; catches up from PostgreSQL after every reconnect.
    /// Returns once subscribed and caught up; the work goes on in the returned task
    /// (abort it to stop).
    pub async fn follow(
        &self,
        store: Arc<PgStore>,
        wake: Wake,
    ) -> Result<JoinHandle<()>, BusError> {
        let mut connections = self.connections.clone();
        // Connections up to now are caught up with below; the first is counted even if
        // its event is still on its way.
        let caught_up_on = (*connections.borrow_and_update()).max(1);
        let notifications =
            self.client
                .subscribe(self.subject.clone())
                .await
                .map_err(|reason| BusError::Subscribe {
                    subject: self.subject.clone(),
                    reason,
                })?;
        let mut follower = Follower {
            client: self.client.clone(),
            node: self.node.clone(),
            subject: self.subject.clone(),
            round_trip_subject: self.round_trip_subject.clone(),
            appended: store.appended(),
            store,
            wake,
            malformed: self.malformed.clone(),
        };
        follower.catch_up().await?;
        Ok(tokio::spawn(follower.run(
            notifications,
            connections,
            caught_up_on,
        )))
    }
}

/// The changes other nodes announce, as they come ([`Bus::changes`]).
pub struct Changes(Subscriber);

impl Changes {
    /// The next announced change's payload; `None` once the subscription ended.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        self.0.next().await.map(|message| message.payload.to_vec())
    }
}

/// The work of [`Bus::follow`].
struct Follower {
    client: Client,
    node: String,
    subject: String,
    round_trip_subject: String,
    store: Arc<PgStore>,
    appended: watch::Receiver<i64>,
    wake: Wake,
    malformed: Arc<AtomicU64>,
}

impl Follower {
    /// Follows until the subscription ends; `caught_up_on`: how many connections of the
    /// client were already caught up with.
    async fn run(
        mut self,
        mut notifications: Subscriber,
        mut connections: watch::Receiver<u64>,
        mut caught_up_on: u64,
    ) {
        let mut publishing = true;
        let mut reconnects = true;
        let mut retry_at: Option<Instant> = None;
        loop {
            tokio::select! {
                changed = self.appended.changed(), if publishing => match changed {
                    Ok(()) => self.publish().await,
                    // The store is closed: nothing more to announce.
                    Err(_) => publishing = false,
                },
                message = notifications.next() => match message {
                    Some(message) => self.received(&message.payload),
                    None => {
                        tracing::info!("the NATS subscription ended: no more wake-ups from other nodes");
                        return;
                    }
                },
                changed = connections.changed(), if reconnects => match changed {
                    Ok(()) => {
                        let connected = *connections.borrow_and_update();
                        if connected > caught_up_on {
                            caught_up_on = connected;
                            tracing::info!("connected to NATS again: catching up from PostgreSQL");
                            retry_at = self.catch_up_or_retry().await;
                        }
                    }
                    Err(_) => reconnects = false,
                },
                () = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    retry_at = self.catch_up_or_retry().await;
                }
            }
        }
    }

    /// Catches up; when PostgreSQL fails, when to try again.
    async fn catch_up_or_retry(&mut self) -> Option<Instant> {
        match self.catch_up().await {
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %Redacted(&e), "cannot catch up with other nodes' commits; trying again");
                Some(Instant::now() + REFRESH_RETRY)
            }
        }
    }

    /// Round trip, then the log's head from PostgreSQL, then wake; and announces this
    /// node's newest commit again, in case its last announcement was lost.
    async fn catch_up(&mut self) -> Result<i64, BusError> {
        self.round_trip().await;
        let head = self.store.refresh_committed().await?;
        (self.wake)();
        self.publish().await;
        Ok(head)
    }

    /// Waits until the server has read everything this client sent before (its
    /// subscription among it), or [`ROUND_TRIP_TIMEOUT`].
    async fn round_trip(&self) {
        let request = async_nats::Request::new().timeout(Some(ROUND_TRIP_TIMEOUT));
        match self
            .client
            .send_request(self.round_trip_subject.clone(), request)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == RequestErrorKind::NoResponders => {}
            Err(e) => {
                tracing::debug!(error = %Redacted(&e), "no round trip to NATS before catching up")
            }
        }
    }

    /// Announces this node's newest commit.
    async fn publish(&mut self) {
        let seq = *self.appended.borrow_and_update();
        let notification = Committed {
            node: self.node.clone(),
            seq,
        };
        let payload = match serde_json::to_vec(&notification) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::warn!(error = %Redacted(&e), "cannot write a commit notification");
                return;
            }
        };
        if let Err(e) = self
            .client
            .publish(self.subject.clone(), payload.into())
            .await
        {
            tracing::debug!(error = %Redacted(&e), "cannot publish a commit notification");
        }
    }

    /// A message on the subject: another node's commit, or something to ignore.
    fn received(&self, payload: &[u8]) {
        let notification = match serde_json::from_slice::<Committed>(payload) {
            Ok(n) if n.seq >= 0 && !n.node.is_empty() => n,
            _ => {
                let count = self.malformed.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(
                    subject = %self.subject,
                    bytes = payload.len(),
                    malformed = count,
                    "ignored a message that is not a commit notification"
                );
                return;
            }
        };
        if notification.node == self.node {
            return;
        }
        self.store.notice_committed(notification.seq);
        (self.wake)();
    }
}

/// Whether `name` can name a cluster: one NATS subject token of letters, digits, `-`
/// and `_` (at most 64).
pub fn check_cluster_name(name: &str) -> Result<(), BusError> {
    if servers::is_token(name) {
        Ok(())
    } else {
        Err(BusError::ClusterName(name.into()))
    }
}

/// A node id for this process: `name` (the node's configured name, else `node`) and a
/// random suffix, so that no two processes share one even under one name.
pub fn new_node_id(name: Option<&str>) -> String {
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("node");
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{name}-{}", &random[..12])
}
