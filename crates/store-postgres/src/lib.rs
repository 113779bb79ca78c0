//! Unavoce's durable state on PostgreSQL: the interfaces of `unavoce-store` over one
//! database that several nodes share.
//!
//! - **One log order for every node.** An append locks the log's head row, takes the
//!   next positions, writes and commits; the lock is released only after the commit is
//!   visible. So positions are given in commit order: a reader that sees an event sees
//!   every event before it, and never skips one that commits later with a lower
//!   position. Each node gathers its concurrent appends into one transaction (group
//!   commit, [`appender`]), so the lock is taken once per group, not per request.
//! - **Durable when answered.** An append resolves after its commit, with PostgreSQL's
//!   `synchronous_commit` (on by default) deciding what a commit means.
//! - Everything else (decisions, the outbox, journey runs, keys, audit, erasure) runs
//!   on a small pool of connections, in transactions of its own; what must happen in
//!   one order across nodes (the audit chain) locks a row.

mod appender;
mod decisions;
mod erasure;
mod governance;
mod leases;
mod log;
pub mod migrate;
mod outbox;
mod rows;
mod schema;
pub mod testing;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio::sync::{mpsc, watch};
use tokio_postgres::NoTls;
use unavoce_store::{CommitObserver, StoreError};

use self::appender::AppendJob;
pub use self::appender::bulk_insert_baseline;
use self::rows::{db, pool};

/// Settings of the PostgreSQL store.
#[derive(Clone)]
pub struct PgOptions {
    /// Append requests that may wait for the appender before appends answer
    /// [`StoreError::Overloaded`].
    pub queue_capacity: usize,
    /// Rows gathered into one commit at most.
    pub max_rows_per_commit: usize,
    /// Connections for everything but appends.
    pub pool_size: usize,
    /// Called after each commit of the appender, e.g. to record its latency.
    pub on_commit: Option<CommitObserver>,
    /// This node's name, shown in PostgreSQL's `pg_stat_activity` (`application_name`
    /// `unavoce <node>`, and `unavoce-leases <node>` for the session holding its leases).
    pub node: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            queue_capacity: 512,
            max_rows_per_commit: 20_000,
            pool_size: 8,
            on_commit: None,
            node: None,
        }
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the store URL is not a PostgreSQL connection string: {0}")]
    Url(tokio_postgres::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(StoreError),
    #[error("cannot bring the PostgreSQL schema up to date: {0}")]
    Migrate(StoreError),
    #[error(
        "the PostgreSQL database was written by a newer Unavoce (schema {found}, this build knows {known})"
    )]
    TooNew { found: usize, known: usize },
}

/// The store on PostgreSQL. See the crate docs.
pub struct PgStore {
    pool: Pool,
    appender: std::sync::RwLock<Option<mpsc::Sender<AppendJob>>>,
    appender_task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    queued: Arc<AtomicUsize>,
    queue_capacity: usize,
    committed: watch::Receiver<i64>,
    /// Moves `committed` for other nodes' appends.
    committed_tx: Arc<watch::Sender<i64>>,
    appended: watch::Receiver<i64>,
    leases: leases::LeaseHolder,
    /// The names of the settings this node wrote (see [`PgStore::settings_written`]).
    settings_written: tokio::sync::broadcast::Sender<String>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host/db`), brings its schema
    /// up to date and starts the appender.
    pub async fn open(url: &str, options: PgOptions) -> Result<PgStore, OpenError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(OpenError::Url)?;
        let node = options.node.as_deref().unwrap_or_default();
        config.application_name(format!("unavoce {node}").trim_end());
        // Both ends probe an idle connection: a node whose machine is gone or cut off
        // loses its sessions (and with them its leases and any lock it held) within
        // about 11 s, instead of the operating system's default of hours.
        config
            .keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(5))
            .keepalives_interval(std::time::Duration::from_secs(2))
            .keepalives_retries(3)
            .options(
                "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3",
            );
        let (mut client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| OpenError::Connect(db(e)))?;
        let connection = tokio::spawn(connection);
        match schema::migrate(&mut client)
            .await
            .map_err(|e| OpenError::Migrate(db(e)))?
        {
            schema::Migrated::TooNew { found } => {
                return Err(OpenError::TooNew {
                    found,
                    known: schema::MIGRATIONS.len(),
                });
            }
            schema::Migrated::Ran(0) => {}
            schema::Migrated::Ran(ran) => {
                tracing::info!(migrations = ran, "PostgreSQL schema migrated");
            }
        }
        let head: i64 = client
            .query_one("SELECT seq FROM log_head WHERE id = 1", &[])
            .await
            .map_err(|e| OpenError::Connect(db(e)))?
            .get(0);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(|e| OpenError::Connect(StoreError::Storage(e.to_string())))?;
        let (committed_tx, committed) = watch::channel(head);
        let committed_tx = Arc::new(committed_tx);
        let (appended_tx, appended) = watch::channel(head);
        let (sender, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(appender::run(
            appender::Appender {
                config: config.clone(),
                client,
                connection,
                max_rows_per_commit: options.max_rows_per_commit.max(1),
                committed: committed_tx.clone(),
                appended: appended_tx,
                observer: options.on_commit.clone(),
            },
            receiver,
            queued.clone(),
        ));
        Ok(PgStore {
            pool,
            appender: std::sync::RwLock::new(Some(sender)),
            appender_task: tokio::sync::Mutex::new(Some(task)),
            queued,
            queue_capacity: options.queue_capacity.max(1),
            committed,
            committed_tx,
            appended,
            leases: leases::LeaseHolder::new(&config, node),
            settings_written: tokio::sync::broadcast::Sender::new(64),
        })
    }

    /// The last log position this node's appends committed, as it changes: what a node
    /// tells the others (the `committed` watch also moves for theirs).
    pub fn appended(&self) -> watch::Receiver<i64> {
        self.appended.clone()
    }

    /// The name of each setting this node writes through `put_setting`, as it is
    /// committed: what other nodes holding it in memory must read again.
    pub fn settings_written(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.settings_written.subscribe()
    }

    /// Another node committed the log up to `seq`: the `committed` watch moves there
    /// (never back).
    pub fn notice_committed(&self, seq: i64) {
        appender::advance(&self.committed_tx, seq);
    }

    /// Reads the log's head from the database and moves the `committed` watch there:
    /// after a node (re)joins, whatever it missed. Returns the head.
    pub async fn refresh_committed(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let head: i64 = client
            .query_one("SELECT seq FROM log_head WHERE id = 1", &[])
            .await
            .map_err(db)?
            .get(0);
        self.notice_committed(head);
        Ok(head)
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool)
    }

    /// Runs query `sql` (prepared once per connection) on a pooled connection and reads
    /// each row with `read`.
    pub(crate) async fn read_rows<T>(
        &self,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        read: impl Fn(&tokio_postgres::Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db)?;
        client
            .query(&statement, args)
            .await
            .map_err(db)?
            .iter()
            .map(read)
            .collect()
    }

    /// Queues an append job for the appender; its answer.
    async fn submit<T>(
        &self,
        job: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, StoreError>>) -> AppendJob,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        {
            let guard = self.appender.read().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            self.queued.fetch_add(1, Ordering::AcqRel);
            if let Err(e) = sender.try_send(job(reply)) {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                return Err(match e {
                    mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
                    mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
                });
            }
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Whether the appender takes appends now without queueing past its limit.
    fn appender_ready(&self) -> bool {
        self.queued.load(Ordering::Acquire) < self.queue_capacity
    }

    /// Stops the appender once everything queued is committed, and closes the pool.
    async fn shut_down(&self) {
        if let Ok(mut sender) = self.appender.write() {
            sender.take();
        }
        if let Some(task) = self.appender_task.lock().await.take() {
            let _ = task.await;
        }
        self.leases.close().await;
        self.pool.close();
    }
}

/// `url` as it may be shown: host, port and database, never the password.
pub fn display_url(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "an unreadable PostgreSQL URL".into();
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "postgres://{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}
