//! A full disk: the data folder on a small tmpfs filled to ENOSPC while the server runs.
//! Batches are answered 507 Insufficient Storage with `Retry-After` — never acknowledged
//! unless written — and once space is freed the server takes events again, with every
//! acknowledged event stored exactly once after a restart. SQLite only (PostgreSQL keeps
//! its own disk), and it needs root to mount the tmpfs; otherwise it says so and skips.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, basic_auth};
use serde_json::{Value, json};
use unavoce_testkit::store::{StoreKind, store_kind};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(at: &Path, size: &str) -> Result<Mounted, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if output.status.success() {
            Ok(Mounted(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process being reaped): detach it now, freed when released.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A batch of 100 events with ids `{prefix}-{i}`.
fn batch(prefix: &str) -> (Vec<String>, Value) {
    let ids: Vec<String> = (0..100).map(|i| format!("{prefix}-{i}")).collect();
    let body = json!({"batch": ids.iter().map(|id| json!({
        "type": "track", "userId": format!("user-{}", id.len() % 7), "event": "Disk Test",
        "messageId": id, "properties": {"text": "lorem ipsum dolor sit amet ".repeat(10)}
    })).collect::<Vec<_>>()});
    (ids, body)
}

/// Sends a batch: its status, `Retry-After`, and the answer.
fn send(server: &Server, body: &Value) -> (u16, Option<String>, Value) {
    let mut response = ureq::post(&format!("{}/v1/batch", server.base))
        .header("Authorization", &basic_auth())
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(body)
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = response.body_mut().read_json().unwrap_or(Value::Null);
    (response.status().as_u16(), retry_after, answer)
}

/// Writes zeros to `path` until the disk is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    for size in [64 * 1024, 512, 1] {
        let chunk = vec![0u8; size];
        loop {
            match file.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
}

#[test]
fn a_full_disk_refuses_with_507_acknowledges_nothing_unwritten_and_recovers() {
    if store_kind() == StoreKind::Postgres {
        eprintln!("skipped: the full disk is the embedded store's; PostgreSQL keeps its own");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mount = match Mounted::tmpfs(&root.path().join("small"), "16m") {
        Ok(mount) => mount,
        Err(why) => {
            eprintln!(
                "skipped: cannot mount a 16 MiB tmpfs to fill (this test needs root, or a \
                 container allowed to mount): {why}"
            );
            return;
        }
    };
    let data = mount.0.join("data");
    let mut server = Server::start(&data);
    let mut acknowledged: Vec<String> = Vec::new();
    for n in 0..10 {
        let (ids, body) = batch(&format!("before-{n}"));
        assert_eq!(send(&server, &body).0, 200);
        acknowledged.extend(ids);
    }

    // Fill the disk while the server runs, then keep sending.
    let filler = mount.0.join("filler");
    fill(&filler);
    let mut refused: Vec<(Vec<String>, Value)> = Vec::new();
    let mut sent_while_full = 0;
    while refused.len() < 5 {
        assert!(
            sent_while_full < 400,
            "400 batches sent to a full disk and fewer than 5 refused"
        );
        let (ids, body) = batch(&format!("full-{sent_while_full}"));
        sent_while_full += 1;
        match send(&server, &body) {
            // Written in space SQLite already had (its WAL): acknowledged, and must stay.
            (200, _, _) => acknowledged.extend(ids),
            (507, retry_after, answer) => {
                assert_eq!(answer["error"]["code"], "storage_full", "{answer}");
                let secs: u32 = retry_after
                    .expect("507 without Retry-After")
                    .parse()
                    .unwrap();
                assert!(secs > 0);
                refused.push((ids, body));
            }
            (status, _, answer) => panic!("a full disk answered {status}: {answer}"),
        }
    }
    let ready = ureq::get(&format!("{}/readyz", server.base))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap()
        .status()
        .as_u16();
    eprintln!(
        "full disk: {} of {sent_while_full} batches refused with 507 ({} acknowledged, written in space the store already held); /readyz {ready}",
        refused.len(),
        sent_while_full - refused.len()
    );

    // Space again: new events are taken at once, and nothing refused had been stored.
    std::fs::remove_file(&filler).unwrap();
    for n in 0..10 {
        let (ids, body) = batch(&format!("after-{n}"));
        let (status, _, answer) = send(&server, &body);
        assert_eq!(status, 200, "after freeing space: {answer}");
        acknowledged.extend(ids);
    }
    let stored = server.admin_get("/api/stats")["events"].as_u64().unwrap();
    assert_eq!(
        stored as usize,
        acknowledged.len(),
        "only acknowledged events are stored"
    );
    // The senders retry what was refused: stored now, once.
    for (ids, body) in &refused {
        let (status, _, answer) = send(&server, body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], 100, "{answer}");
        assert_eq!(
            answer["duplicates"], 0,
            "a refused batch had been stored: {answer}"
        );
        acknowledged.extend(ids.iter().cloned());
    }

    // After a clean restart, every acknowledged event is there exactly once.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(server.child.wait().unwrap().success());
    drop(server);
    let server = Server::start(&data);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for event in server.all_events() {
        *counts
            .entry(event["messageId"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for id in &acknowledged {
        assert_eq!(counts.get(id), Some(&1), "{id}");
    }
    assert_eq!(counts.len(), acknowledged.len());
    drop(server);
    drop(mount);
}
