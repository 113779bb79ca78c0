//! `unavoce migrate`: a data folder's embedded store moved into PostgreSQL with the real
//! binary, then served from there exactly as before; and what it refuses.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};
use unavoce_store::{EventLog, SqliteLog, SqliteOptions};
use unavoce_store_postgres::testing::TestDatabase;
use unavoce_testkit::{SmtpServer, daytime_zone};

const CUSTOMERS: usize = 12;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A fresh database, kept while the returned value lives.
fn database(runtime: &tokio::runtime::Runtime) -> TestDatabase {
    runtime
        .block_on(TestDatabase::create())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A data folder on the embedded store, whatever `UNAVOCE_TEST_STORE` says: its event
/// log exists before a server starts on it.
fn sqlite_folder(runtime: &tokio::runtime::Runtime) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let log = SqliteLog::open(data.path(), SqliteOptions::default()).unwrap();
        log.close().await;
    });
    data
}

/// The binary, on no store but the ones its flags name.
fn unavoce() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_unavoce"));
    command
        .env("UNAVOCE_LOG", "warn")
        .env_remove("UNAVOCE_STORE_URL");
    command
}

fn migrate(from: &Path, to: &str, config: Option<&Path>) -> Output {
    let mut command = unavoce();
    command
        .arg("migrate")
        .arg("--from")
        .arg(from)
        .args(["--to", to]);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The count table `unavoce migrate` prints: table, SQLite rows, PostgreSQL rows.
fn counts(stdout: &str) -> Vec<(String, u64, u64)> {
    stdout
        .lines()
        .skip_while(|line| !line.starts_with("TABLE"))
        .skip(1)
        .map_while(|line| {
            let mut words = line.split_whitespace();
            let table = words.next()?.to_string();
            let sqlite = words.next()?.parse().ok()?;
            let postgres = words.next()?.parse().ok()?;
            Some((table, sqlite, postgres))
        })
        .collect()
}

fn count_of(counts: &[(String, u64, u64)], table: &str) -> u64 {
    let (_, sqlite, postgres) = counts
        .iter()
        .find(|(name, _, _)| name == table)
        .unwrap_or_else(|| panic!("no count for {table}: {counts:?}"));
    assert_eq!(sqlite, postgres, "{table}");
    *sqlite
}

/// The highest log position among the events the server holds.
fn newest_seq(server: &Server) -> i64 {
    server
        .all_events()
        .iter()
        .filter_map(|e| e["seq"].as_i64())
        .max()
        .expect("events")
}

/// What the API shows of the data, to compare two servers on it.
fn api_view(server: &Server) -> Vec<(&'static str, Value)> {
    [
        "/api/stats",
        "/api/profiles?limit=200",
        "/api/profiles/lookup?user_id=customer-1",
        "/api/quarantine",
        "/api/outbox/summary",
        "/api/suppressions",
        "/api/keys",
    ]
    .into_iter()
    .map(|path| {
        let mut answer = server.admin_get(path);
        if path == "/api/outbox/summary" {
            answer = answer["counts"].take(); // not the lanes' counts since start
        }
        if path == "/api/keys" {
            // The admin key is used to ask.
            for key in answer["keys"].as_array_mut().unwrap() {
                if key["name"] == "admin" {
                    key["last_used_at"].take();
                }
            }
        }
        (path, answer)
    })
    .collect()
}

#[test]
fn a_data_folder_moves_to_postgresql_and_serves_the_same_from_there() {
    let rt = runtime();
    let smtp = SmtpServer::start();
    let data = sqlite_folder(&rt);
    let config = data.path().join("unavoce.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[delivery.email]
url = "{}"
from = "Voce <news@voce.example>"

[[messages]]
id = "news"
email = {{ subject = "News for {{{{ first_name }}}}", html = "<p>Hi</p>", text = "Hi" }}
"#,
            smtp.url()
        ),
    )
    .unwrap();
    let server = Server::start_with(data.path(), Some(&config));
    let mut batch = Vec::new();
    for i in 0..CUSTOMERS {
        let user = format!("customer-{i}");
        let browser = format!("browser-{i}");
        batch.push(json!({"type": "page", "anonymousId": browser, "name": "Offers"}));
        batch.push(
            json!({"type": "identify", "userId": user, "anonymousId": browser,
            "traits": {"first_name": format!("Name{i}"), "email": format!("{user}@example.com"),
                "timezone": daytime_zone()}}),
        );
        if i % 3 != 0 {
            batch.push(
                json!({"type": "track", "userId": user, "event": "Consent Given",
                "properties": {"purpose": "promotional"}}),
            );
        }
    }
    // No identity: quarantined.
    batch.push(json!({"type": "identify", "traits": {"email": "nobody@example.com"}}));
    server.send_batch(batch);
    let (status, report) = server.admin_post(
        "/api/broadcasts",
        &json!({"message": "news", "audience": "consents.promotional",
            "purpose": "promotional", "channel": "email"}),
    );
    assert_eq!(status, 201, "{report}");
    let consenting = CUSTOMERS - CUSTOMERS.div_ceil(3);
    assert_eq!(report["outcomes"]["send"], consenting, "{report}");
    smtp.wait_for(consenting, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.admin_get("/api/outbox/summary")["counts"]
        .as_array()
        .is_none_or(|c| c.len() != 1 || c[0]["status"] != "sent")
    {
        assert!(Instant::now() < deadline, "the broadcast was not sent");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The newest events are a person's who is then erased: the log's highest position
    // is above its newest event's.
    server.send_batch(vec![
        json!({"type": "identify", "userId": "leaving-1", "traits": {"email": "leaving@example.com"}}),
        json!({"type": "track", "userId": "leaving-1", "event": "Order Completed"}),
    ]);
    let highest = newest_seq(&server);
    let leaving = server.admin_get("/api/profiles/lookup?user_id=leaving-1")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, receipt) =
        server.admin_post(&format!("/api/profiles/{leaving}/erase"), &json!({}));
    assert_eq!(status, 200, "{receipt}");
    assert!(
        newest_seq(&server) < highest,
        "the newest events were erased"
    );

    let created = unavoce()
        .args(["keys", "create", "analyst-1", "--role", "analyst", "--data"])
        .arg(data.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", text(&created.stderr));
    let analyst_key = text(&created.stdout).trim().to_string();
    let before = api_view(&server);
    let stats = before[0].1.clone();
    drop(server);

    let db = database(&rt);
    let migrated = migrate(data.path(), &db.url, Some(&config));
    let stdout = text(&migrated.stdout);
    let stderr = text(&migrated.stderr);
    assert!(migrated.status.success(), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    let counts = counts(&stdout);
    assert_eq!(counts.len(), 12, "{stdout}");
    assert_eq!(
        count_of(&counts, "events"),
        stats["events"].as_u64().unwrap()
    );
    assert_eq!(count_of(&counts, "quarantine"), 1);
    assert_eq!(
        count_of(&counts, "api_keys"),
        2,
        "the admin key, enrolled, and one made"
    );
    assert_eq!(count_of(&counts, "outbox"), consenting as u64);
    assert!(count_of(&counts, "decisions") >= consenting as u64);
    assert!(count_of(&counts, "suppressions") >= 2, "user id and e-mail");
    assert!(
        count_of(&counts, "audit_log") >= 2,
        "the erasure and the key"
    );
    assert!(count_of(&counts, "settings") >= 1);
    assert!(
        stdout.contains(&format!(
            "verified: {} events, {} profiles identical",
            stats["events"], stats["profiles"]
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("new events are stored after position {highest}")),
        "{stdout}"
    );
    for personal in ["@example.com", "customer-", "browser-", "Name1", "leaving"] {
        assert!(
            !stdout.contains(personal) && !stderr.contains(personal),
            "{personal} printed:\n{stdout}\n{stderr}"
        );
    }

    let audit = unavoce()
        .args(["audit", "verify", "--store-url", &db.url])
        .output()
        .unwrap();
    assert!(audit.status.success(), "{}", text(&audit.stderr));

    // Served from PostgreSQL: the same data through the API; keys work; positions go on
    // after the highest ever given.
    let server = Server::start_env(
        data.path(),
        Some(&config),
        &[("UNAVOCE_STORE_URL", db.url.as_str())],
    );
    for ((path, was), (_, is)) in before.iter().zip(api_view(&server)) {
        assert_eq!(*was, is, "{path} differs after the migration");
    }
    let analyst = ureq::get(&format!("{}/api/stats", server.base))
        .header("Authorization", &format!("Bearer {analyst_key}"))
        .call()
        .unwrap();
    assert_eq!(analyst.status(), 200);
    server.send_batch(vec![
        json!({"type": "track", "userId": "customer-1", "event": "Order Completed"}),
        json!({"type": "identify", "traits": {"email": "nobody-else@example.com"}}),
    ]);
    let after = newest_seq(&server);
    assert!(after > highest, "new position {after} after {highest}");
    // Generated ids go on after the copied ones.
    let quarantined: Vec<i64> = server.admin_get("/api/quarantine")["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    assert!(quarantined.contains(&2), "{quarantined:?}");
    let (status, report) = server.admin_post(
        "/api/broadcasts",
        &json!({"message": "news", "audience": "consents.promotional",
            "purpose": "promotional", "channel": "email"}),
    );
    assert_eq!(status, 201, "{report}");
    let decided = |stats: &Value| -> u64 {
        stats["decisions"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum()
    };
    assert_eq!(
        decided(&server.admin_get("/api/stats")),
        decided(&stats) + consenting as u64,
        "{report}"
    );
}

#[test]
fn a_database_that_holds_data_is_refused_and_a_failed_migration_keeps_nothing() {
    let rt = runtime();
    let data = sqlite_folder(&rt);
    let server = Server::start(data.path());
    server.send_batch(vec![
        json!({"type": "identify", "userId": "u-1", "traits": {"email": "u1@example.com"}}),
        json!({"type": "track", "userId": "u-1", "event": "Order Completed"}),
    ]);
    drop(server);
    let db = database(&rt);
    let (client, connection) = rt
        .block_on(tokio_postgres::connect(&db.url, tokio_postgres::NoTls))
        .unwrap();
    rt.spawn(connection);
    let query = |sql: &str| -> i64 { rt.block_on(client.query_one(sql, &[])).unwrap().get(0) };

    // A write that fails late (settings come after the events): nothing is kept.
    rt.block_on(async {
        let store = unavoce_store_postgres::PgStore::open(&db.url, Default::default())
            .await
            .unwrap();
        store.close().await;
        client
            .batch_execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
                 CREATE TRIGGER refuse BEFORE INSERT ON settings \
                 FOR EACH ROW EXECUTE FUNCTION refuse();",
            )
            .await
            .unwrap();
    });
    let failed = migrate(data.path(), &db.url, None);
    let stderr = text(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        stderr.contains("cannot write settings") && stderr.contains("nothing was kept"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("u-1") && !stderr.contains("u1@"),
        "{stderr}"
    );
    assert_eq!(query("SELECT count(*) FROM events"), 0);
    assert_eq!(query("SELECT seq FROM log_head"), 0);

    rt.block_on(client.batch_execute("DROP TRIGGER refuse ON settings"))
        .unwrap();
    let first = migrate(data.path(), &db.url, None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(query("SELECT count(*) FROM events"), 2);

    let again = migrate(data.path(), &db.url, None);
    let stderr = text(&again.stderr);
    assert!(!again.status.success());
    assert!(
        stderr.contains(
            "refused: the PostgreSQL database already holds data (log positions given, events"
        ),
        "{stderr}"
    );
    assert_eq!(query("SELECT count(*) FROM events"), 2, "left as it was");
}

#[test]
fn a_missing_data_folder_is_refused_and_the_database_left_alone() {
    let rt = runtime();
    let db = database(&rt);
    let missing = tempfile::tempdir().unwrap();
    let refused = migrate(&missing.path().join("nowhere"), &db.url, None);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("no data folder at"),
        "{}",
        text(&refused.stderr)
    );
    let refused = migrate(missing.path(), &db.url, None);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("no event log (events.db) in"),
        "{}",
        text(&refused.stderr)
    );
    let (client, connection) = rt
        .block_on(tokio_postgres::connect(&db.url, tokio_postgres::NoTls))
        .unwrap();
    rt.spawn(connection);
    let schema: bool = rt
        .block_on(client.query_one("SELECT to_regclass('events') IS NOT NULL", &[]))
        .unwrap()
        .get(0);
    assert!(!schema, "no schema was made");
}
