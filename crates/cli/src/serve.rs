//! `unavoce serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use unavoce_core::redact::Redacted;

use anyhow::Context;
use clap::Args;
use unavoce_platform::{Blueprint, Running};
use unavoce_server::{AppState, Keys, Metrics, Sessions, WriteKey};
use unavoce_store::{EventLog, SqliteOptions};

use crate::config::{self, Config};
use crate::keys::{self, ResolvedKeys};
use crate::reload::ConfigFile;
use crate::store;

#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file [default: ./unavoce.toml if present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data folder [default: ./unavoce-data].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Write key of the tracking API (HTTP Basic username).
    #[arg(long, env = "UNAVOCE_WRITE_KEY", hide_env_values = true)]
    write_key: Option<String>,
    /// Admin key of /api/ (Authorization: Bearer).
    #[arg(long, env = "UNAVOCE_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// This node's name among those sharing a PostgreSQL store (shown in PostgreSQL's
    /// `pg_stat_activity` and the cluster's logs) [default: a generated one].
    #[arg(long, env = "UNAVOCE_NODE")]
    node: Option<String>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let (config, data) = config::load_for_data(args.config.as_deref(), args.data)?;
    let config_file = config::file_in_use(args.config.as_deref(), &data);
    let listen = args
        .listen
        .or_else(|| config.server.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let keys = keys::resolve(&data, args.write_key, args.admin_key)?;
    serve(Setup {
        config,
        data,
        listen,
        keys,
        banner: None,
        node: args.node,
        config_file,
    })
    .await
}

/// Everything a server needs to start.
pub struct Setup {
    pub config: Config,
    pub data: PathBuf,
    pub listen: String,
    pub keys: ResolvedKeys,
    /// Extra lines to print once listening (the demo's guide).
    pub banner: Option<String>,
    /// This node's name, when several share a PostgreSQL store.
    pub node: Option<String>,
    /// The configuration file read at start, read again at `SIGHUP` or
    /// `POST /api/config/reload`; `None` when the defaults are used.
    pub config_file: Option<PathBuf>,
}

/// Opens the store, serves until Ctrl-C or SIGTERM, then flushes and closes.
pub async fn serve(setup: Setup) -> anyhow::Result<()> {
    // A NATS URL with the SQLite store is refused before anything opens.
    let cluster = crate::cluster::plan(&setup.config)?;
    let sources: Vec<(&str, &str)> = std::iter::once(("default", setup.keys.write_key.as_str()))
        .chain((setup.config.sources.iter()).map(|s| (s.name.as_str(), s.write_key.as_str())))
        .collect();
    keys::check(&setup.keys.admin_key, &sources)?;
    let metrics = Metrics::new();
    let opened = open_store(&setup, metrics.clone()).await?;
    // An unreachable NATS stops the node before the platform starts.
    let cluster = match cluster {
        Some(plan) => Some(plan.connect(setup.node.as_deref()).await?),
        None => None,
    };
    let log: Arc<dyn EventLog> = opened.store.clone();
    let mut write_keys = vec![WriteKey {
        key: setup.keys.write_key.clone(),
        source: "default".into(),
    }];
    write_keys.extend(setup.config.sources.iter().map(|s| WriteKey {
        key: s.write_key.clone(),
        source: s.name.clone(),
    }));
    let config = &setup.config;
    let public_url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", setup.listen));
    let mut blueprint = config.blueprint(public_url.clone())?;
    // Snapshots of the projections beside the embedded store's log; with PostgreSQL,
    // nodes replay the shared log at start (see ARCHITECTURE.md).
    if opened.postgres.is_none() {
        blueprint.snapshots = Some(setup.data.join("snapshots"));
    }
    let running = start_checked(&opened, blueprint).await?;
    running.platform.identity.follow()?;
    let following = match cluster {
        Some(connected) => Some(
            connected
                .follow(opened.postgres.clone(), &running.platform)
                .await?,
        ),
        None => None,
    };
    let reloader = match &setup.config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            let file = Arc::new(ConfigFile::new(
                path.clone(),
                &text,
                public_url.clone(),
                running.platform.clone(),
            ));
            #[cfg(unix)]
            file.clone().reload_on_hangup()?;
            Some(file)
        }
        None => None,
    };
    let state = AppState {
        platform: running.platform.clone(),
        keys: Arc::new(Keys {
            write_keys,
            admin_key: setup.keys.admin_key.clone(),
            ..Keys::default()
        }),
        metrics,
        sessions: Arc::new(Sessions::for_public_url(&public_url)),
        config: reloader.map(|f| f as Arc<dyn unavoce_server::api::ConfigReload>),
    };
    unavoce_platform::keys::enroll_admin_key(
        running.platform.governance.as_ref(),
        &state.keys.admin_key,
    )
    .await
    .context("cannot keep the admin key")?;
    let listener = tokio::net::TcpListener::bind(&setup.listen)
        .await
        .with_context(|| format!("cannot listen on {}", setup.listen))?;
    let address: SocketAddr = listener.local_addr()?;
    print_banner(&setup, address, &opened.location);
    tracing::info!(%address, store = %opened.location, "unavoce is serving");

    // With each connection's peer address: sign-in attempts are limited per address.
    let app = unavoce_server::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    if let Some(following) = following {
        following.stop();
    }
    let identity = running.platform.identity.clone();
    running.stop().await;
    // At the log's head: the next start replays (almost) nothing.
    if let Err(e) = identity.take_snapshot().await {
        tracing::warn!(error = %Redacted(&e), "shutting down: the projections' snapshot could not be taken");
    }
    tracing::info!("shutting down: committing everything accepted");
    log.close().await;
    tracing::info!("stopped; every acknowledged event is on disk");
    Ok(())
}

/// Starts the platform beside the embedded store's check of every page, and serves
/// only once both are done: a damaged store stops the start as soon as the check says
/// so, and its error wins over what the start met reading damaged pages.
async fn start_checked(opened: &store::OpenStore, blueprint: Blueprint) -> anyhow::Result<Running> {
    let start = Running::start(opened.store.clone(), blueprint);
    tokio::pin!(start);
    tokio::select! {
        checked = opened.checked() => {
            checked?;
            Ok(start.await?)
        }
        started = &mut start => match (opened.checked().await, started) {
            (Ok(()), started) => Ok(started?),
            (Err(damaged), Ok(running)) => {
                running.stop().await;
                Err(damaged)
            }
            (Err(damaged), Err(_)) => Err(damaged),
        },
    }
}

async fn open_store(setup: &Setup, metrics: Arc<Metrics>) -> anyhow::Result<store::OpenStore> {
    let options = SqliteOptions {
        durability: setup.config.ingest.durability()?,
        queue_capacity: setup.config.ingest.queue_capacity,
        on_commit: Some(Arc::new(move |info| metrics.record_commit(info))),
        ..SqliteOptions::default()
    };
    store::open(&setup.config, &setup.data, options, setup.node.as_deref()).await
}

fn print_banner(setup: &Setup, address: SocketAddr, location: &str) {
    println!(
        "Unavoce {} is listening on http://{address}",
        env!("CARGO_PKG_VERSION")
    );
    println!("  store: {location}");
    if setup.keys.from_data_dir {
        println!(
            "  write key (tracking API, HTTP Basic username): {}",
            setup.keys.write_key
        );
        println!(
            "  admin key (/api/, Authorization: Bearer):      {}",
            setup.keys.admin_key
        );
        println!("  (kept in {})", setup.data.join("keys.json").display());
    }
    if let Some(banner) = &setup.banner {
        println!("{banner}");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
