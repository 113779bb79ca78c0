//! Three `unavoce serve` nodes on one PostgreSQL database and one NATS server: the
//! shared log survives a node's SIGKILL mid-ingestion, every node ends with the same
//! profiles, a broadcast whose sending node is killed mid-send still reaches every
//! consenting person under one Message-ID each, and a journey whose runner is killed as
//! a wait ends takes its next step once; a segment defined and a person erased on one
//! node reach the others.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use unavoce_store_postgres::testing::TestDatabase;
use unavoce_testkit::{SmtpServer, daytime_zone, header};

const NATS_URL: &str = "nats://127.0.0.1:4222";
/// People, and events about each: an identify, a promotional consent, page views.
const PEOPLE: usize = 10_000;
const EVENTS_PER_PERSON: usize = 20;
const BATCH: usize = 500;
const SENDERS: usize = 4;
const CONCURRENCY: usize = 8;
/// People who start the journey, and its wait between the two messages.
const TRIALS: usize = 50;
const WAIT_SECONDS: u64 = 4;

/// One `unavoce serve` of the cluster.
struct Node {
    name: String,
    port: u16,
    child: Option<Child>,
    data: PathBuf,
    config: PathBuf,
    store_url: String,
}

impl Node {
    fn start(name: &str, root: &Path, config: &Path, store_url: &str) -> Node {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut node = Node {
            name: name.to_string(),
            port,
            child: None,
            data: root.join(name),
            config: config.to_path_buf(),
            store_url: store_url.to_string(),
        };
        node.spawn();
        node
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (or restarts) the process and waits until it answers.
    fn spawn(&mut self) {
        let log = std::fs::File::create(self.data.with_extension("log")).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_unavoce"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data")
            .arg(&self.data)
            .arg("--config")
            .arg(&self.config)
            .args([
                "--write-key",
                common::WRITE_KEY,
                "--admin-key",
                common::ADMIN_KEY,
            ])
            .env("UNAVOCE_STORE_URL", &self.store_url)
            .env("UNAVOCE_NATS_URL", NATS_URL)
            .env("UNAVOCE_NODE", &self.name)
            .env("UNAVOCE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start unavoce");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(Ok(Some(exit))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "node {} stopped at once ({exit}); see {}",
                    self.name,
                    self.data.with_extension("log").display()
                );
            }
            if ureq::get(&format!("{}/healthz", self.base()))
                .call()
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {} did not come up", self.name);
    }

    /// SIGKILL: no chance to flush or give anything up.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn get(&self, path: &str) -> Value {
        let mut answer = ureq::get(&format!("{}{path}", self.base()))
            .header("Authorization", &format!("Bearer {}", common::ADMIN_KEY))
            .call()
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.name));
        answer.body_mut().read_json().unwrap()
    }

    fn status_of(&self, path: &str) -> u16 {
        ureq::get(&format!("{}{path}", self.base()))
            .header("Authorization", &format!("Bearer {}", common::ADMIN_KEY))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .map(|answer| answer.status().as_u16())
            .unwrap_or(0)
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let answer = ureq::post(&format!("{}{path}", self.base()))
            .header("Authorization", &format!("Bearer {}", common::ADMIN_KEY))
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(body)
            .unwrap();
        let status = answer.status().as_u16();
        (
            status,
            answer.into_body().read_json().unwrap_or(Value::Null),
        )
    }

    /// Every profile this node holds, in id order.
    fn profiles(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self.get(&format!("/api/profiles?limit=200&cursor={cursor}"));
            all.extend(page["profiles"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => return all,
            }
        }
    }

    /// Waits until this node's projections hold `events` events.
    fn wait_for_events(&self, events: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let stats = self.get("/api/stats");
            if stats["events"].as_u64() == Some(events) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} holds {} events, not {events}",
                self.name,
                stats["events"]
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a batch to the node at `base`; whether it was acknowledged.
fn send_batch(base: &str, batch: &[Value]) -> bool {
    ureq::post(&format!("{base}/v1/batch"))
        .header("Authorization", &common::basic_auth())
        .send_json(json!({ "batch": batch }))
        .is_ok_and(|answer| answer.status() == 200)
}

/// The events about person `i`, in their order.
fn person(i: usize) -> Vec<Value> {
    let user = format!("person-{i}");
    let mut events = vec![
        json!({"type": "identify", "userId": user, "messageId": format!("{user}-0"),
            "traits": {"first_name": format!("Name{i}"), "email": format!("{user}@example.com"),
                "timezone": daytime_zone()}}),
        json!({"type": "track", "userId": user, "event": "Consent Given",
            "messageId": format!("{user}-1"), "properties": {"purpose": "promotional"}}),
    ];
    for n in 2..EVENTS_PER_PERSON {
        events.push(
            json!({"type": "page", "userId": user, "name": format!("Page {}", n % 7),
            "messageId": format!("{user}-{n}")}),
        );
    }
    events
}

fn query(url: &str, sql: &str) -> Vec<i64> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let row = client.query_one(sql, &[]).await.unwrap();
            (0..row.len()).map(|i| row.get::<_, i64>(i)).collect()
        })
}

/// The node whose lease session holds the lease on `work` (`unavoce-leases <node>`).
fn holder_of(url: &str, work: &str) -> Option<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .query_opt(
                    "SELECT a.application_name::text FROM pg_locks l \
                     JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND l.granted AND l.objid = hashtext($1)::oid",
                    &[&work],
                )
                .await
                .unwrap()
                .and_then(|row| {
                    row.get::<_, String>(0)
                        .strip_prefix("unavoce-leases ")
                        .map(str::to_string)
                })
        })
}

#[test]
fn three_nodes_share_one_log_and_survive_the_loss_of_any_node() {
    let root = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let database = runtime
        .block_on(TestDatabase::create())
        .unwrap_or_else(|e| panic!("{e}"));
    let config = root.path().join("unavoce.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[delivery.email]
url = "{}"
from = "Voce Telecom <offers@voce.example>"
pace = {{ per_second = 400, concurrency = {CONCURRENCY} }}

[[messages]]
id = "fibre-upgrade"
email = {{ subject = "{{{{ first_name }}}}, faster fibre", html = "<p>Hi {{{{ first_name }}}}</p>", text = "Hi {{{{ first_name }}}}" }}

[[messages]]
id = "welcome"
email = {{ subject = "Welcome, {{{{ first_name }}}}", html = "<p>Welcome</p>", text = "Welcome" }}

[[messages]]
id = "welcome-2"
email = {{ subject = "Still there, {{{{ first_name }}}}?", html = "<p>Still there?</p>", text = "Still there?" }}

[[journeys]]
name = "welcome"
trigger = {{ event = "Trial Started" }}
steps = [
  {{ type = "send", message = "welcome", purpose = "service", channel = "email" }},
  {{ type = "wait", duration = "{WAIT_SECONDS}s" }},
  {{ type = "send", message = "welcome-2", purpose = "service", channel = "email" }},
]
"#,
            smtp.url()
        ),
    )
    .unwrap();
    let nodes: Vec<Arc<Mutex<Node>>> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            Arc::new(Mutex::new(Node::start(
                name,
                root.path(),
                &config,
                &database.url,
            )))
        })
        .collect();
    let bases: Vec<String> = nodes.iter().map(|n| n.lock().unwrap().base()).collect();

    // Ingestion, round-robin, while node b is killed and restarted.
    let events: Vec<Value> = (0..PEOPLE).flat_map(person).collect();
    let total = events.len();
    let batches: Arc<Vec<Vec<Value>>> = Arc::new(events.chunks(BATCH).map(<[_]>::to_vec).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (batches, next, acknowledged, refused, bases) = (
                batches.clone(),
                next.clone(),
                acknowledged.clone(),
                refused.clone(),
                bases.clone(),
            );
            std::thread::spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(batch) = batches.get(k) else { return };
                    let mut attempt = k;
                    loop {
                        if send_batch(&bases[attempt % 3], batch) {
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        // Refused or unreachable: the same batch (same messageIds) to
                        // the next node.
                        refused.fetch_add(1, Ordering::Relaxed);
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    while acknowledged.load(Ordering::Relaxed) < batches.len() / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    nodes[1].lock().unwrap().kill();
    let killed_at = acknowledged.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    nodes[1].lock().unwrap().spawn();
    for sender in senders {
        sender.join().unwrap();
    }
    let ingested_in = started.elapsed();
    assert_eq!(acknowledged.load(Ordering::Relaxed), batches.len());
    // Every acknowledged event stored exactly once.
    let counted = query(
        &database.url,
        "SELECT count(*), count(DISTINCT message_id) FROM events",
    );
    assert_eq!(counted, vec![total as i64, total as i64]);
    // Every node follows the shared log to its end, and holds the same people.
    for node in &nodes {
        node.lock()
            .unwrap()
            .wait_for_events(total as u64, Duration::from_secs(180));
    }
    let profiles: Vec<Vec<Value>> = nodes.iter().map(|n| n.lock().unwrap().profiles()).collect();
    assert_eq!(profiles[0].len(), PEOPLE);
    assert_eq!(
        profiles[0], profiles[1],
        "nodes a and b hold the same profiles"
    );
    assert_eq!(
        profiles[0], profiles[2],
        "nodes a and c hold the same profiles"
    );
    eprintln!(
        "{total} events in {:.1} s through 3 nodes ({} refusals retried elsewhere; node b killed after {killed_at} batches)",
        ingested_in.as_secs_f64(),
        refused.load(Ordering::Relaxed)
    );

    // A broadcast, whose sending node is killed mid-send.
    let (status, report) = nodes[0].lock().unwrap().post(
        "/api/broadcasts",
        &json!({"message": "fibre-upgrade", "audience": "consents.promotional",
            "purpose": "promotional", "channel": "email"}),
    );
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["outcomes"]["send"], PEOPLE, "{report}");
    let before_kill = smtp.wait_for(PEOPLE / 5, Duration::from_secs(120)).len();
    let sender = holder_of(&database.url, "outbox:email").expect("a node sends e-mail");
    let index = ["a", "b", "c"].iter().position(|n| *n == sender).unwrap();
    nodes[index].lock().unwrap().kill();
    assert!(
        before_kill < PEOPLE,
        "the broadcast was over before the kill"
    );
    smtp.wait_for(PEOPLE, Duration::from_secs(300));
    let survivor = &nodes[(index + 1) % 3];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let summary = survivor.lock().unwrap().get("/api/outbox/summary");
        let counts = summary["counts"].as_array().unwrap().clone();
        if counts.len() == 1 && counts[0]["status"] == "sent" && counts[0]["entries"] == PEOPLE {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox did not settle: {summary}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Everything received, the copies sent again included.
    let mails = smtp.mails();
    let mut ids_by_recipient: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for mail in &mails {
        let to = header(mail, "To").unwrap();
        let id = header(mail, "Message-ID").unwrap();
        ids_by_recipient.entry(to).or_default().insert(id);
    }
    assert_eq!(ids_by_recipient.len(), PEOPLE, "every consenting person");
    for (to, ids) in &ids_by_recipient {
        assert_eq!(ids.len(), 1, "{to} got {} different messages", ids.len());
    }
    let again = mails.len() - PEOPLE;
    assert!(again <= 2 * CONCURRENCY, "{again} messages were sent again");
    eprintln!(
        "broadcast: {before_kill} sent before node {sender} was killed; every one of {PEOPLE} reached, {again} sent again under the same Message-ID"
    );
    nodes[index].lock().unwrap().spawn();

    // A journey whose wait ends while the node running the journeys is killed: its next
    // step runs once, on the node that takes the journeys over.
    let trials: Vec<Value> = (0..TRIALS)
        .map(|i| {
            json!({"type": "track", "userId": format!("person-{i}"), "event": "Trial Started",
            "messageId": format!("trial-{i}")})
        })
        .collect();
    assert!(send_batch(&bases[0], &trials));
    let subject_count = |prefix: &str| {
        smtp.mails()
            .iter()
            .filter(|m| header(m, "Subject").is_some_and(|s| s.starts_with(prefix)))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while subject_count("Welcome,") < TRIALS {
        assert!(
            Instant::now() < deadline,
            "the journey's first messages did not all go out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let runner = holder_of(&database.url, "journeys").expect("a node runs the journeys");
    let runner_index = ["a", "b", "c"].iter().position(|n| *n == runner).unwrap();
    // Killed before the wait ends, which it does while the runner is dead: before any
    // of the next step was decided.
    std::thread::sleep(Duration::from_millis(WAIT_SECONDS * 1000 - 1500));
    let decided_before = query(
        &database.url,
        "SELECT count(*) FROM decisions WHERE message = 'welcome-2'",
    );
    assert!(decided_before[0] == 0, "the wait was over before the kill");
    nodes[runner_index].lock().unwrap().kill();
    let deadline = Instant::now() + Duration::from_secs(60);
    while subject_count("Still there,") < TRIALS {
        assert!(
            Instant::now() < deadline,
            "the journey's next step did not run for everyone after node {runner} was killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let decided = query(
        &database.url,
        "SELECT count(*), count(DISTINCT profile_id) FROM decisions WHERE message = 'welcome-2'",
    );
    assert_eq!(
        decided,
        vec![TRIALS as i64, TRIALS as i64],
        "the next step ran once each"
    );
    let mut taken_over_by = None;
    eventually("another node holds the journeys' lease", || {
        taken_over_by = holder_of(&database.url, "journeys").filter(|holder| *holder != runner);
        taken_over_by.is_some()
    });
    let taken_over_by = taken_over_by.unwrap_or_default();
    eprintln!(
        "journey: node {runner} killed as the wait ended; node {taken_over_by} ran the next step once for each of {TRIALS}"
    );
    nodes[runner_index].lock().unwrap().spawn();

    // What one node changes reaches the others: a segment defined, a person erased.
    let (status, answer) = nodes[0].lock().unwrap().post(
        "/api/segments",
        &json!({"name": "reached", "expression": "consents.promotional"}),
    );
    assert_eq!(status, 201, "{answer}");
    let c = &nodes[2];
    eventually("node c lists the segment defined on node a", || {
        c.lock()
            .unwrap()
            .get("/api/segments")
            .to_string()
            .contains("\"reached\"")
    });
    let profile = nodes[0]
        .lock()
        .unwrap()
        .get("/api/profiles/lookup?user_id=person-100")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, answer) = nodes[0]
        .lock()
        .unwrap()
        .post(&format!("/api/profiles/{profile}/erase"), &json!({}));
    assert_eq!(status, 200, "{answer}");
    for (name, node) in [("b", &nodes[1]), ("c", &nodes[2])] {
        eventually(
            &format!("node {name} no longer holds the erased person"),
            || {
                node.lock()
                    .unwrap()
                    .status_of("/api/profiles/lookup?user_id=person-100")
                    == 404
            },
        );
        let again = json!({"userId": "someone-new", "traits": {"email": "person-100@example.com"}});
        eventually(&format!("node {name} refuses the erased address"), || {
            let answer = ureq::post(&format!("{}/v1/identify", node.lock().unwrap().base()))
                .header("Authorization", &common::basic_auth())
                .config()
                .http_status_as_error(false)
                .build()
                .send_json(&again)
                .unwrap();
            let refused = answer.status() == 400;
            refused
                && answer
                    .into_body()
                    .read_to_string()
                    .is_ok_and(|body| body.contains("subject_erased"))
        });
    }
}

/// Waits until `holds` (checked every 50 ms, at most 30 s).
fn eventually(what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !holds() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}
