//! Overload: more concurrent batches than the event log's write queue holds
//! (`ingest.queue_capacity`). The excess is answered 503 with `Retry-After`, stores
//! nothing, and memory stays bounded; when the load falls the server takes every batch
//! again, and every acknowledged event is stored exactly once.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, basic_auth};
use serde_json::{Value, json};

const CLIENTS: usize = 32;
const BATCHES_PER_CLIENT: usize = 30;

fn batch(prefix: &str) -> (Vec<String>, Value) {
    let ids: Vec<String> = (0..100).map(|i| format!("{prefix}-{i}")).collect();
    let body = json!({"batch": ids.iter().enumerate().map(|(i, id)| json!({
        "type": "track", "userId": format!("user-{}", i % 13), "event": "Load Test",
        "messageId": id, "properties": {"n": i}
    })).collect::<Vec<_>>()});
    (ids, body)
}

/// Sends a batch: its status, `Retry-After`, and the answer.
fn send(base: &str, body: &Value) -> (u16, Option<String>, Value) {
    let mut response = ureq::post(&format!("{base}/v1/batch"))
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

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn overload_answers_503_with_retry_after_and_recovers_without_losing_or_doubling() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("unavoce.toml");
    std::fs::write(&config, "[ingest]\nqueue_capacity = 2\n").unwrap();
    let server = Server::start_with(&data.path().join("data"), Some(&config));
    let pid = server.child.id();
    let rss_before = rss_kib(pid);

    // Many clients at once, each sending its batches one after another.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(Mutex::new(Vec::<(Vec<String>, Value)>::new()));
    let peak = Arc::new(AtomicU64::new(rss_before));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (base, acknowledged, refused, peak) = (
                server.base.clone(),
                acknowledged.clone(),
                refused.clone(),
                peak.clone(),
            );
            std::thread::spawn(move || {
                for n in 0..BATCHES_PER_CLIENT {
                    let (ids, body) = batch(&format!("c{client}-b{n}"));
                    match send(&base, &body) {
                        (200, _, answer) => {
                            assert_eq!(answer["accepted"], 100, "{answer}");
                            acknowledged.lock().unwrap().extend(ids);
                        }
                        (503, retry_after, answer) => {
                            assert_eq!(answer["error"]["code"], "overloaded", "{answer}");
                            let secs: u32 = retry_after
                                .expect("503 without Retry-After")
                                .parse()
                                .unwrap();
                            assert!(secs > 0);
                            refused.lock().unwrap().push((ids, body));
                        }
                        (status, _, answer) => panic!("overload answered {status}: {answer}"),
                    }
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let mut acknowledged = acknowledged.lock().unwrap().clone();
    let refused = refused.lock().unwrap().clone();
    let sent = CLIENTS * BATCHES_PER_CLIENT;
    let peak_growth_mib = peak.load(Ordering::Relaxed).saturating_sub(rss_before) / 1024;
    eprintln!(
        "{sent} batches from {CLIENTS} clients at once: {} acknowledged, {} refused with 503; \
         resident memory grew by at most {peak_growth_mib} MiB",
        acknowledged.len() / 100,
        refused.len()
    );
    assert!(
        !refused.is_empty(),
        "no batch was refused: the queue was never full"
    );
    assert!(!acknowledged.is_empty(), "no batch was acknowledged");
    // Bounded: the queue holds two requests; the rest is the requests in flight.
    assert!(
        peak_growth_mib < 512,
        "memory grew by {peak_growth_mib} MiB"
    );

    // The load falls: every batch is taken again, at once.
    std::thread::sleep(Duration::from_millis(500));
    for n in 0..20 {
        let (ids, body) = batch(&format!("after-{n}"));
        let (status, _, answer) = send(&server.base, &body);
        assert_eq!(status, 200, "after the load fell: {answer}");
        acknowledged.extend(ids);
    }
    assert_eq!(
        server.admin_get("/api/stats")["events"].as_u64().unwrap() as usize,
        acknowledged.len(),
        "a refused batch was stored"
    );
    // The refused batches, retried as an SDK does: stored now, and none had been before.
    for (ids, body) in &refused {
        let (status, _, answer) = send(&server.base, body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], 100, "{answer}");
        assert_eq!(answer["duplicates"], 0, "{answer}");
        acknowledged.extend(ids.iter().cloned());
    }

    let mut counts: HashMap<String, usize> = HashMap::new();
    for event in server.all_events() {
        *counts
            .entry(event["messageId"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for id in &acknowledged {
        assert_eq!(counts.get(id), Some(&1), "{id}");
    }
    assert_eq!(
        counts.len(),
        acknowledged.len(),
        "an unacknowledged event was stored"
    );
}
