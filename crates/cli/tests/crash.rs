//! A `kill -9` during ingestion loses no acknowledged event and stores none twice.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, basic_auth};
use serde_json::json;

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_event() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let unanswered = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
    let stop = Arc::new(AtomicBool::new(false));

    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (base, acked, lost, stop) = (
                server.base.clone(),
                acknowledged.clone(),
                unanswered.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let auth = basic_auth();
                for batch in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let ids: Vec<String> =
                        (0..50).map(|i| format!("c{client}-b{batch}-{i}")).collect();
                    let body = json!({"batch": ids.iter().map(|id| json!({
                        "type": "track", "userId": format!("user-{client}"), "event": "Crash Test",
                        "messageId": id, "properties": {"batch": batch}
                    })).collect::<Vec<_>>()});
                    let result = ureq::post(&format!("{base}/v1/batch"))
                        .header("Authorization", &auth)
                        .send_json(&body);
                    match result {
                        Ok(response) if response.status() == 200 => {
                            acked.lock().unwrap().extend(ids)
                        }
                        // Refused, reset or unanswered: the client does not know; it would retry.
                        _ => {
                            lost.lock().unwrap().push(ids);
                            return;
                        }
                    }
                }
            })
        })
        .collect();

    // Let the clients get going, then kill the server without warning.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acknowledged.lock().unwrap().len() < 5_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 1_000,
        "only {} events were acknowledged before the kill",
        acknowledged.len()
    );

    let server = Server::start(data.path());
    let stored = server.all_events();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for event in &stored {
        *counts
            .entry(event["messageId"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events were lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        counts.values().all(|&n| n == 1),
        "an event was stored twice"
    );

    // The clients retry what was never answered: each is stored once, whatever happened to it.
    for ids in unanswered.lock().unwrap().iter() {
        let body = json!({"batch": ids.iter().map(|id| json!({
            "type": "track", "userId": "retry", "event": "Crash Test", "messageId": id
        })).collect::<Vec<_>>()});
        let response = ureq::post(&format!("{}/v1/batch", server.base))
            .header("Authorization", &basic_auth())
            .send_json(&body)
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let after = server.all_events();
    let mut ids: Vec<&str> = after
        .iter()
        .map(|e| e["messageId"].as_str().unwrap())
        .collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        total,
        "an event was stored twice after the retries"
    );
    let stats = server.admin_get("/api/stats");
    assert_eq!(stats["events"].as_u64().unwrap() as usize, total);
    eprintln!(
        "acknowledged before the kill: {}; stored after restart and retries: {total}",
        acknowledged.len()
    );
}

#[test]
fn sigterm_shuts_down_gracefully_with_everything_on_disk() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let ids: Vec<String> = (0..500).map(|i| format!("term-{i}")).collect();
    let body = json!({"batch": ids.iter().map(|id| json!({
        "type": "identify", "userId": "u", "messageId": id, "traits": {"plan": "fibra"}
    })).collect::<Vec<_>>()});
    let response = ureq::post(&format!("{}/v1/batch", server.base))
        .header("Authorization", &basic_auth())
        .send_json(&body)
        .unwrap();
    assert_eq!(response.status(), 200);

    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "unclean exit: {exit:?}");
    // The final checkpoint emptied the write-ahead log into the database file.
    let wal = data.path().join("events.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);

    let server = Server::start(data.path());
    assert_eq!(server.admin_get("/api/stats")["events"], 500);
}
