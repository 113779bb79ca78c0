//! Leases on PostgreSQL: session-level advisory locks, held by one connection per node.
//!
//! A lease is `pg_try_advisory_lock` on the work's name, taken on this node's lease
//! session. PostgreSQL releases a session's locks when its connection ends: a node that
//! dies gives its work up — at once when its process dies (its sockets close), within
//! about 11 s when its machine is lost or cut off (the server's TCP keepalives, set on
//! every connection in `PgStore::open`) — and the next node that asks takes it. The
//! session is pinged every [`PING_EVERY`]: when a ping fails or does not answer within
//! [`PING_TIMEOUT`], the node gives up every lease of the session and ends it, so a node
//! cut off stops its work about when the database lets another node start it.
//!
//! Why not NATS (KV with revisions, or durable consumers)? The leases guard writes to
//! PostgreSQL; holding them in PostgreSQL means a node that can no longer reach the
//! database can no longer hold them, and no second system has to agree with the first.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, watch};
use tokio_postgres::{Client, NoTls};
use unavoce_store::{HeldHere, Lease, Leases, StoreError};

use crate::PgStore;
use crate::rows::db;

/// The first key of every lease's advisory lock (the second is the work's name, hashed).
const LEASE_SPACE: i32 = 0x756e_6176;

/// How often the lease session is pinged.
pub const PING_EVERY: Duration = Duration::from_secs(1);

/// How long a ping may take before the session's leases are taken as lost.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// This node's lease session and the work it holds.
pub(crate) struct LeaseHolder {
    config: tokio_postgres::Config,
    session: Mutex<Option<Session>>,
    held: HeldHere,
}

/// One connection holding advisory locks, and whether it was lost.
struct Session {
    client: Arc<Client>,
    lost: Arc<watch::Sender<bool>>,
    /// Ends the connection (and so every lock of the session) when aborted.
    connection: tokio::task::AbortHandle,
}

impl LeaseHolder {
    pub(crate) fn new(config: &tokio_postgres::Config, node: &str) -> LeaseHolder {
        let mut config = config.clone();
        config.application_name(format!("unavoce-leases {node}").trim_end());
        LeaseHolder {
            config,
            session: Mutex::new(None),
            held: HeldHere::default(),
        }
    }

    /// The live session, connected anew when there is none or it was lost.
    async fn session(&self) -> Result<(Arc<Client>, Arc<watch::Sender<bool>>), StoreError> {
        let mut session = self.session.lock().await;
        if let Some(live) = session.as_ref().filter(|s| !*s.lost.borrow()) {
            return Ok((live.client.clone(), live.lost.clone()));
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(db)?;
        let client = Arc::new(client);
        let lost = Arc::new(watch::Sender::new(false));
        let connection = tokio::spawn({
            let lost = lost.clone();
            async move {
                let _ = connection.await;
                lost.send_replace(true);
            }
        })
        .abort_handle();
        tokio::spawn(ping(
            Arc::downgrade(&client),
            lost.clone(),
            connection.clone(),
        ));
        *session = Some(Session {
            client: client.clone(),
            lost: lost.clone(),
            connection,
        });
        Ok((client, lost))
    }

    /// Ends the lease session: every lease it holds is given up at once.
    pub(crate) async fn close(&self) {
        if let Some(session) = self.session.lock().await.take() {
            session.lost.send_replace(true);
            session.connection.abort();
        }
    }

    async fn try_lease(&self, work: &str) -> Result<Option<Lease>, StoreError> {
        if !self.held.take(work) {
            return Ok(None);
        }
        let taken = async {
            let (client, lost) = self.session().await?;
            let row = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1::int4, hashtext($2))",
                    &[&LEASE_SPACE, &work],
                )
                .await
                .map_err(db)?;
            Ok::<_, StoreError>(row.get::<_, bool>(0).then_some((client, lost)))
        }
        .await;
        let (client, lost) = match taken {
            Ok(Some(session)) => session,
            Ok(None) => {
                self.held.give_up(work);
                return Ok(None);
            }
            Err(e) => {
                self.held.give_up(work);
                return Err(e);
            }
        };
        let held = self.held.clone();
        let name = work.to_string();
        let release = Box::new(move || {
            held.give_up(&name);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = client
                        .execute(
                            "SELECT pg_advisory_unlock($1::int4, hashtext($2))",
                            &[&LEASE_SPACE, &name],
                        )
                        .await;
                });
            }
        });
        Ok(Some(Lease::new(work, lost.subscribe(), release)))
    }
}

/// Pings the session until it is lost or gone; a failed or slow ping loses it, and ends
/// its connection, so the database drops its locks as soon as it notices.
async fn ping(
    client: std::sync::Weak<Client>,
    lost: Arc<watch::Sender<bool>>,
    connection: tokio::task::AbortHandle,
) {
    loop {
        tokio::time::sleep(PING_EVERY).await;
        if *lost.borrow() {
            return;
        }
        let Some(client) = client.upgrade() else {
            return;
        };
        let answered = tokio::time::timeout(PING_TIMEOUT, client.simple_query("SELECT 1")).await;
        if !matches!(answered, Ok(Ok(_))) {
            tracing::warn!("the lease session stopped answering; this node's leases are given up");
            lost.send_replace(true);
            connection.abort();
            return;
        }
    }
}

#[async_trait]
impl Leases for PgStore {
    async fn try_lease(&self, work: &str) -> Result<Option<Lease>, StoreError> {
        self.leases.try_lease(work).await
    }
}
