//! A test server: the whole HTTP application in process, on a real store of the kind
//! `UNAVOCE_TEST_STORE` names (the embedded SQLite store by default).
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use unavoce_core::policy::{Policies, PolicyConfig};
use unavoce_platform::{Blueprint, Running};
use unavoce_server::{AppState, Keys, Metrics, Sessions, WriteKey, router};
use unavoce_store::{CommitObserver, SqliteOptions};
use unavoce_store_postgres::PgOptions;
pub use unavoce_testkit::store::{TestStore, TestStoreOptions};

pub const WRITE_KEY: &str = "test-write-key-0123";
pub const ADMIN_KEY: &str = "test-admin-key-4567";

pub struct TestServer {
    /// The store, of the kind `UNAVOCE_TEST_STORE` names.
    pub store: TestStore,
    pub app: Router,
    /// The platform's background work.
    running: Option<Running>,
    customise: Customise,
}

/// Changes to the test server's settings (delivery providers, messages, journeys).
pub type Customise = Arc<dyn Fn(&mut Blueprint) + Send + Sync>;

/// A test server whose store has these settings.
pub async fn server_with(options: TestStoreOptions) -> TestServer {
    let metrics = Metrics::new();
    let store = TestStore::open_with(observed(options, &metrics)).await;
    start_on(store, metrics, Arc::new(|_| {})).await
}

/// A test server whose settings `customise` changes.
pub async fn server_customised(customise: Customise) -> TestServer {
    let metrics = Metrics::new();
    let store = TestStore::open_with(observed(TestStoreOptions::default(), &metrics)).await;
    start_on(store, metrics, customise).await
}

/// `options` with the store's commits counted in `metrics`.
fn observed(options: TestStoreOptions, metrics: &Arc<Metrics>) -> TestStoreOptions {
    let observer = metrics.clone();
    let on_commit: CommitObserver = Arc::new(move |info| observer.record_commit(info));
    TestStoreOptions {
        sqlite: SqliteOptions {
            on_commit: Some(on_commit.clone()),
            ..options.sqlite
        },
        postgres: PgOptions {
            on_commit: Some(on_commit),
            ..options.postgres
        },
    }
}

/// The application over `store`.
async fn start_on(store: TestStore, metrics: Arc<Metrics>, customise: Customise) -> TestServer {
    let keys = Keys {
        write_keys: vec![
            WriteKey {
                key: WRITE_KEY.into(),
                source: "web".into(),
            },
            WriteKey {
                key: "pos-key-000000000000".into(),
                source: "pos".into(),
            },
        ],
        admin_key: ADMIN_KEY.into(),
        ..Keys::default()
    };
    let mut blueprint = Blueprint::defaults("http://unavoce.test").unwrap();
    customise(&mut blueprint);
    let public_url = blueprint.public_url.clone();
    // Before the platform's background work starts writing: a test may give the store
    // a queue of one.
    unavoce_platform::keys::enroll_admin_key(store.store().as_ref(), ADMIN_KEY)
        .await
        .unwrap();
    let running = Running::start(store.store(), blueprint).await.unwrap();
    let state = AppState {
        platform: running.platform.clone(),
        keys: Arc::new(keys),
        metrics,
        sessions: Arc::new(Sessions::for_public_url(&public_url)),
        config: None,
    };
    TestServer {
        store,
        app: router(state),
        running: Some(running),
        customise,
    }
}

pub async fn server() -> TestServer {
    server_with(TestStoreOptions::default()).await
}

pub fn basic(user: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user)
    )
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: Value,
}

impl TestServer {
    /// Sends a batch of tracking messages; they must be accepted.
    pub async fn send_batch(&self, batch: Vec<Value>) {
        let answer = self
            .track("/v1/batch", serde_json::json!({"batch": batch}).to_string())
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }

    /// The id of the profile holding user id `user`.
    pub async fn profile_of(&self, user: &str) -> String {
        let found = self
            .get(&format!("/api/profiles/lookup?user_id={user}"))
            .await;
        found["id"].as_str().unwrap().to_string()
    }

    /// Waits until the projections have been rebuilt after every erasure so far.
    pub async fn rebuilt(&self) {
        if let Some(running) = &self.running {
            running.platform.identity.rebuilt().await;
        }
    }

    /// Stops everything and starts again on the same store with other settings.
    pub async fn restart_with(mut self, customise: Customise) -> TestServer {
        self.customise = customise;
        self.restart().await
    }

    /// Stops everything and starts again on the same store, as a restart does.
    pub async fn restart(mut self) -> TestServer {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        let metrics = Metrics::new();
        let store = self
            .store
            .reopen_with(observed(TestStoreOptions::default(), &metrics))
            .await;
        start_on(store, metrics, self.customise).await
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        Answer {
            status,
            headers,
            json,
        }
    }

    pub async fn track(&self, path: &str, body: impl Into<Body>) -> Answer {
        self.send(
            Request::post(path)
                .header(header::AUTHORIZATION, basic(&format!("{WRITE_KEY}:")))
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    pub async fn admin(&self, method: &str, path: &str, body: impl Into<Body>) -> Answer {
        self.send(
            Request::builder()
                .method(method)
                .uri(path)
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    /// An admin request with a JSON body.
    pub async fn admin_json(&self, method: &str, path: &str, body: Value) -> Answer {
        self.keyed(ADMIN_KEY, method, path, body).await
    }

    /// A request with API key `key` and a JSON body.
    pub async fn keyed(&self, key: &str, method: &str, path: &str, body: Value) -> Answer {
        self.send(
            Request::builder()
                .method(method)
                .uri(path)
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// An admin GET that must succeed; its JSON.
    pub async fn get(&self, path: &str) -> Value {
        let answer = self.admin("GET", path, Body::empty()).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.json);
        answer.json
    }

    pub async fn stats(&self) -> Value {
        self.admin("GET", "/api/stats", Body::empty()).await.json
    }
}

/// Gate policies without quiet hours, so the tests need not depend on the clock.
pub fn daytime_policies() -> Arc<Policies> {
    Arc::new(
        Policies::new(&PolicyConfig {
            quiet_hours: None,
            caps: Vec::new(),
            ..PolicyConfig::default()
        })
        .unwrap(),
    )
}
