//! Running the real `unavoce` binary in tests.
#![allow(dead_code)] // each test file uses a different part

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

pub const WRITE_KEY: &str = "crash-test-write-key-0001";
pub const ADMIN_KEY: &str = "crash-test-admin-key-0001";

/// Where the binary keeps the data of the data folder `data`: with
/// `UNAVOCE_TEST_STORE=postgres`, a database made for this folder (its URL kept in the
/// folder, so a restart finds it), unless the folder already holds an embedded log
/// (the demo builds one); otherwise none (the folder's own SQLite store).
pub fn store_url(data: &Path) -> Option<String> {
    if unavoce_testkit::store::store_kind() != unavoce_testkit::store::StoreKind::Postgres
        || data.join("events.db").exists()
    {
        return None;
    }
    let kept = data.join("test-store-url");
    if let Ok(url) = std::fs::read_to_string(&kept) {
        return Some(url);
    }
    let database = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(unavoce_store_postgres::testing::TestDatabase::create())
        .unwrap_or_else(|e| panic!("{e}"));
    let url = database.keep();
    std::fs::create_dir_all(data).expect("the data folder");
    std::fs::write(&kept, &url).expect("the data folder");
    Some(url)
}

/// The binary, to run a command on the data folder `data` (on its store).
pub fn unavoce_on(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_unavoce"));
    command.env("UNAVOCE_LOG", "warn");
    if let Some(url) = store_url(data) {
        command.env("UNAVOCE_STORE_URL", url);
    }
    command
}

/// A running `unavoce serve`.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `unavoce serve` on a free port with `data` as its data folder and waits
    /// until it answers `/healthz`.
    pub fn start(data: &Path) -> Server {
        Self::start_with(data, None)
    }

    /// As [`Server::start`], with a configuration file.
    pub fn start_with(data: &Path, config: Option<&Path>) -> Server {
        Self::spawn(data, config, None, &[])
    }

    /// As [`Server::start_with`], with these environment variables set last (e.g.
    /// `UNAVOCE_STORE_URL`, which then wins over [`store_url`]).
    pub fn start_env(data: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> Server {
        Self::spawn(data, config, None, env)
    }

    /// As [`Server::start_with`], logging at debug level to the file `log`.
    pub fn start_logging(data: &Path, config: &Path, log: &Path) -> Server {
        Self::spawn(data, Some(config), Some(log), &[])
    }

    fn spawn(
        data: &Path,
        config: Option<&Path>,
        log: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_unavoce"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .args(["--write-key", WRITE_KEY, "--admin-key", ADMIN_KEY])
            .env("UNAVOCE_LOG", "warn")
            .stdout(Stdio::null());
        if let Some(log) = log {
            let file = std::fs::File::create(log).expect("a log file");
            command
                .env("UNAVOCE_LOG", "debug")
                .stdout(file.try_clone().expect("a log file"))
                .stderr(file);
        }
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        if let Some(url) = store_url(data) {
            command.env("UNAVOCE_STORE_URL", url);
        }
        command.envs(env.iter().copied());
        let child = command.spawn().expect("cannot start unavoce");
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(exit)) = server.child.try_wait() {
                panic!("unavoce serve stopped at once ({exit}); see its log");
            }
            if ureq::get(&format!("{}/healthz", server.base))
                .call()
                .is_ok()
            {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("unavoce serve did not come up on {}", server.base);
    }

    /// GET an admin endpoint.
    pub fn admin_get(&self, path: &str) -> Value {
        ureq::get(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {ADMIN_KEY}"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }

    /// POST JSON to an admin endpoint; the status and the answer.
    pub fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.admin_send(path, Some(body))
    }

    /// POST with no body to an admin endpoint; the status and the answer.
    pub fn admin_post_empty(&self, path: &str) -> (u16, Value) {
        self.admin_send(path, None)
    }

    fn admin_send(&self, path: &str, body: Option<&Value>) -> (u16, Value) {
        let request = ureq::post(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {ADMIN_KEY}"))
            .config()
            .http_status_as_error(false)
            .build();
        let mut response = match body {
            Some(body) => request.send_json(body),
            None => request.send_empty(),
        }
        .unwrap();
        let status = response.status().as_u16();
        let answer = response.body_mut().read_json().unwrap_or(Value::Null);
        (status, answer)
    }

    /// Sends a batch to the tracking API; it must be accepted.
    pub fn send_batch(&self, batch: Vec<Value>) {
        let response = ureq::post(&format!("{}/v1/batch", self.base))
            .header("Authorization", &basic_auth())
            .send_json(serde_json::json!({ "batch": batch }))
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// Every event in the log, through the paged API.
    pub fn all_events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self.admin_get(&format!("/api/events?limit=1000&cursor={cursor}"));
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => return events,
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tracking API's Basic credentials.
pub fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    )
}
