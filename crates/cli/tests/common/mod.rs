//! Running the real `unavoce` binary in tests.
#![allow(dead_code)] // each test file uses a different part

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

pub const WRITE_KEY: &str = "crash-test-write-key-01";
pub const ADMIN_KEY: &str = "crash-test-admin-key-01";

/// A running `unavoce serve`.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `unavoce serve` on a free port with `data` as its data folder and waits
    /// until it answers `/healthz`.
    pub fn start(data: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_unavoce"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .args(["--write-key", WRITE_KEY, "--admin-key", ADMIN_KEY])
            .env("UNAVOCE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("cannot start unavoce");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
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
