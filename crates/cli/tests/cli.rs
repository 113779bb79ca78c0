//! The command line: import, demo, profile, link, export, keys, the audit log and a
//! benchmark.

mod common;

use std::process::Command;

use common::{Server, unavoce_on};

fn unavoce() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_unavoce"));
    command.env("UNAVOCE_LOG", "warn");
    command
}

#[test]
fn import_reports_bad_rows_by_line_and_the_server_sees_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = dir.path().join("pos.csv");
    std::fs::write(
        &csv,
        "receipt,card,total,when\n\
         R1,L-100,19.90,2024-05-01 09:00\n\
         R2,,5.00,2024-05-01 09:10\n\
         R3,L-101,abc,2024-05-01 09:20\n\
         R4,L-102,7.50,2024-05-01 09:30\n",
    )
    .unwrap();
    let mapping = dir.path().join("pos.toml");
    std::fs::write(
        &mapping,
        "event = \"Order Completed\"\nchannel = \"store\"\ntimezone = \"Europe/Rome\"\n\
         [columns]\nreceipt = \"messageId\"\ncard = \"userId\"\n\
         total = { path = \"properties.revenue\", as = \"number\" }\nwhen = \"timestamp\"\n",
    )
    .unwrap();
    let report_path = dir.path().join("report.json");
    let output = unavoce_on(&data)
        .args(["import"])
        .arg(&csv)
        .args(["--source", "store-rome-01", "--mapping"])
        .arg(&mapping)
        .arg("--data")
        .arg(&data)
        .arg("--report")
        .arg(&report_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("4 rows"), "{stdout}");
    assert!(stdout.contains("2 stored"), "{stdout}");
    assert!(stdout.contains("2 rejected"), "{stdout}");
    assert!(stdout.contains("line 3: missing_identity"), "{stdout}");
    assert!(stdout.contains("line 4: invalid_row"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["errors"].as_array().unwrap().len(), 2);

    // Importing again stores nothing twice.
    let again = unavoce_on(&data)
        .args(["import"])
        .arg(&csv)
        .args(["--source", "store-rome-01", "--mapping"])
        .arg(&mapping)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 stored, 2 already present"));

    let server = Server::start(&data);
    let events = server.admin_get("/api/events?user_id=L-100");
    let event = &events["events"][0];
    assert_eq!(event["properties"]["revenue"], 19.9);
    assert_eq!(
        event["timestamp"], "2024-05-01T07:00:00Z",
        "Rome is UTC+2 in May"
    );
    assert_eq!(event["context"]["touchpoint"], "store-rome-01");
    // Each failed attempt is recorded: the bad rows were quarantined once per import.
    let stats = server.admin_get("/api/stats");
    assert_eq!(
        (stats["events"].as_u64(), stats["quarantined"].as_u64()),
        (Some(2), Some(4))
    );
}

#[test]
fn import_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let output = unavoce()
        .args(["import", "/nonexistent/file.csv", "--source", "x", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open /nonexistent/file.csv"));
    let bad_mapping = dir.path().join("m.toml");
    std::fs::write(&bad_mapping, "[columns]\nemail = \"email\"\n").unwrap();
    let file = dir.path().join("f.csv");
    std::fs::write(&file, "email\na@b.c\n").unwrap();
    let output = unavoce()
        .arg("import")
        .arg(&file)
        .args(["--source", "x", "--mapping"])
        .arg(&bad_mapping)
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a message path"), "{stderr}");
}

#[test]
fn demo_builds_a_company_with_every_channel_kind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let output = unavoce()
        .args(["demo", "--no-serve", "--customers", "300", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("300 customers"), "{stdout}");

    let server = Server::start(&data);
    let stats = server.admin_get("/api/stats");
    assert!(stats["events"].as_u64().unwrap() > 3_000, "{stats}");
    assert!(
        stdout.contains("store forms to web profiles automatically"),
        "{stdout}"
    );
    assert!(stats["quarantined"].as_u64().unwrap() > 0, "{stats}");
    // The demo's config is in its folder, so touchpoints are registered when served from it.
    let config = std::fs::read_to_string(data.join("unavoce.toml")).unwrap();
    for kind in [
        "web",
        "app",
        "email",
        "sms",
        "whatsapp",
        "rcs",
        "push",
        "phone",
        "chat",
        "chatbot",
        "social",
        "store",
        "kiosk",
        "signage",
        "iot",
        "fax",
        "sales-rep",
        "survey",
        "other",
    ] {
        assert!(
            config.contains(&format!("channel = \"{kind}\"")),
            "no {kind} touchpoint"
        );
    }
    let events = server.all_events();
    let channels: std::collections::BTreeSet<_> = events
        .iter()
        .filter_map(|e| e["context"]["channel"].as_str())
        .collect();
    assert!(channels.len() >= 5, "{channels:?}");

    // The census, KPIs and journeys of the demo, through the API and the command line.
    assert!(stdout.contains("The channel census finds"), "{stdout}");
    assert!(stdout.contains("with an open case"), "{stdout}");
    let census = server.admin_get("/api/census");
    assert_eq!(
        census["uncovered_needs"],
        serde_json::json!(["installation"]),
        "{census}"
    );
    assert_eq!(
        census["unregistered_channels"][0]["touchpoint"],
        "telegram-bot"
    );
    assert!(
        census["recommendations"].as_array().unwrap().len() >= 3,
        "{census}"
    );
    let kpis = server.admin_get("/api/kpis/touchpoints");
    let call = kpis["touchpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["touchpoint"] == "call-center-milan")
        .unwrap();
    assert!(call["cases"].as_u64().unwrap() > 10, "{call}");
    assert!(call["repeat_contact_rate"].as_f64().is_some(), "{call}");
    let paths = server.admin_get("/api/journeys/paths?steps=3");
    assert!(!paths["links"].as_array().unwrap().is_empty(), "{paths}");
    // The offer goes out by e-mail through the outbox, into the demo's mailbox folder
    // (held for quiet hours when the demo runs at night).
    assert!(stdout.contains("The offer by e-mail:"), "{stdout}");
    let summary = server.admin_get("/api/outbox/summary");
    let emails: u64 = summary["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["channel"] == "email")
        .map(|c| c["entries"].as_u64().unwrap())
        .sum();
    assert!(emails > 50, "{summary}");
    let due_now: u64 = stdout
        .split("The offer by e-mail: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    if due_now > 0 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let count = || std::fs::read_dir(data.join("mailbox")).map_or(0, |d| d.count());
        while count() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(count() > 0, "no e-mail in the demo's mailbox");
    }
    drop(server);
    for args in [
        vec!["census"],
        vec!["kpis", "--by", "channel", "--format", "csv"],
        vec!["journeys", "paths", "--steps", "3"],
        vec!["journeys", "funnel", "--format", "json"],
        vec!["journeys", "attribution", "--from", "2000-01-01"],
        vec!["kpis", "--segment", "open_cases > 0 || resolved_cases > 0"],
    ] {
        let output = unavoce()
            .args(&args)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected = match args[0] {
            "census" => "No active touchpoint serves the need \"installation\"",
            "kpis" if args[1] == "--segment" => "call-center-milan",
            "kpis" => "touchpoint,channel,registered,interactions",
            _ if args[1] == "paths" => "web-shop",
            _ if args[1] == "funnel" => "\"advocacy\"",
            _ => "last_touch",
        };
        assert!(text.contains(expected), "{args:?}: {text}");
    }
    let output = unavoce()
        .args(["kpis", "--from", "soon", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("YYYY-MM-DD"));

    // A second run rebuilds; a folder the demo did not make is never wiped.
    let other = dir.path().join("mine");
    std::fs::create_dir_all(&other).unwrap();
    let output = unavoce()
        .args(["demo", "--no-serve", "--data"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("was not made by `unavoce demo`"));
}

#[test]
fn profile_prints_one_person_found_by_any_identifier() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let built = unavoce()
        .args(["demo", "--no-serve", "--customers", "100", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(built.status.success());
    let output = unavoce()
        .args([
            "profile",
            "email= Customer42@Example.com",
            "--json",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let card: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let identifiers = card["identifiers"].to_string();
    assert!(identifiers.contains("cust-00042"), "{identifiers}");
    assert!(!card["last_interactions"].as_array().unwrap().is_empty());
    assert!(card["next_best_action"]["action"].is_string());
    assert!(
        card["computed_traits"]["lifetime_value"].is_number(),
        "{card}"
    );

    let missing = unavoce()
        .args(["profile", "user_id=nobody", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no profile holds user_id=nobody"));
}

#[test]
fn link_dedupes_a_file_and_links_two() {
    let dir = tempfile::tempdir().unwrap();
    let people = "id,first_name,last_name,dob,postcode\n\
        a1,Giulia,Rossi,19850412,00184\n\
        a2,Marco,Bianchi,19790101,20121\n\
        a3,Giulia,Rosi,19850412,00184\n\
        a4,Luca,Ferrari,19900707,10121\n\
        a5,Marco,Bianchi,19790110,20121\n\
        a6,Anna,Conti,19620303,80121\n";
    let file = dir.path().join("people.csv");
    std::fs::write(&file, people).unwrap();
    let pairs = dir.path().join("pairs.csv");
    let settings = dir.path().join("settings.toml");
    let output = unavoce()
        .arg("link")
        .arg(&file)
        .args(["--id-column", "id", "--output"])
        .arg(&pairs)
        .arg("--save-settings")
        .arg(&settings)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read_to_string(&pairs).unwrap();
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("id_l,id_r,match_probability"));
    let likely: Vec<&str> = lines
        .filter(|l| l.split(',').nth(2).unwrap().parse::<f64>().unwrap() >= 0.5)
        .map(|l| l.rsplit_once(',').unwrap().0)
        .collect();
    assert!(likely.contains(&"a1,a3"), "{written}");
    assert!(likely.contains(&"a2,a5"), "{written}");
    assert!(!likely.iter().any(|p| p.contains("a6")), "{written}");

    // The saved settings are a valid settings file; two files link across only.
    let other = dir.path().join("crm.csv");
    std::fs::write(
        &other,
        "id,first_name,last_name,dob,postcode\nc1,Giulia,Rossi,19850412,00148\n",
    )
    .unwrap();
    let output = unavoce()
        .arg("link")
        .arg(&file)
        .arg(&other)
        .args(["--id-column", "id", "--output"])
        .arg(&pairs)
        .arg("--settings")
        .arg(&settings)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read_to_string(&pairs).unwrap();
    assert!(
        written.lines().skip(1).all(|l| l.contains("c1")),
        "{written}"
    );
    assert!(written.contains("a1,c1"), "{written}");

    let bad = unavoce()
        .arg("link")
        .arg(&file)
        .args(["--id-column", "nope", "--output"])
        .arg(&pairs)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("has no column \"nope\""));
}

#[test]
fn keys_made_on_the_command_line_open_the_running_server_and_the_audit_chain_is_verified() {
    let data = tempfile::tempdir().unwrap();
    let server = common::Server::start(data.path());
    let made = unavoce_on(data.path())
        .args(["keys", "create", "care-desk", "--role", "agent", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("uk_") && key.len() > 60, "{key}");
    // The running server takes it at once, for what an agent may do.
    let call = |path: &str| {
        ureq::get(&format!("{}{path}", server.base))
            .header("Authorization", &format!("Bearer {key}"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(call("/api/profiles/search?q=ada"), 200);
    assert_eq!(call("/api/events"), 403);
    let listed = unavoce_on(data.path())
        .args(["keys", "list", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("care-desk") && listed.contains("agent"),
        "{listed}"
    );
    assert!(
        listed.contains("admin") && !listed.contains(&key),
        "{listed}"
    );
    let revoked = unavoce_on(data.path())
        .args(["keys", "revoke", "care-desk", "--data"])
        .arg(data.path())
        .status()
        .unwrap();
    assert!(revoked.success());
    assert_eq!(call("/api/profiles/search?q=ada"), 401);
    drop(server);

    let verify = || {
        unavoce_on(data.path())
            .args(["audit", "verify", "--data"])
            .arg(data.path())
            .output()
            .unwrap()
    };
    let intact = verify();
    let said = String::from_utf8_lossy(&intact.stdout).to_string();
    assert!(
        intact.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    // The key made, the agent's refused call, the key revoked.
    assert!(said.contains("audit log intact: 3 records"), "{said}");
    // An edit of the record is found.
    let intrusion = "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2";
    match common::store_url(data.path()) {
        Some(url) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                assert_eq!(client.execute(intrusion, &[]).await.unwrap(), 1);
            }),
        None => {
            let python = std::env::var("UNAVOCE_PYTHON").unwrap_or_else(|_| "python3".into());
            let edited = Command::new(python)
                .args([
                    "-c",
                    "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); \
                     db.execute(sys.argv[2]); db.commit()",
                ])
                .arg(data.path().join("events.db"))
                .arg(intrusion)
                .status()
                .expect("python3, to edit the database as an intruder would");
            assert!(edited.success());
        }
    }
    let broken = verify();
    assert!(!broken.status.success());
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("record 2 does not match its hash"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
}

#[test]
fn export_writes_everything_about_one_person_found_by_any_identifier() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    server.send_batch(vec![
        serde_json::json!({"type": "identify", "userId": "ada", "traits": {"email": "ada@example.com"}}),
        serde_json::json!({"type": "track", "userId": "ada", "event": "Order Completed"}),
        serde_json::json!({"type": "track", "userId": "grace", "event": "Order Completed"}),
    ]);
    let out = data.path().join("ada.jsonl");
    // While the server runs: the command only reads.
    let exported = unavoce_on(data.path())
        .args(["export", "email=ada@example.com", "--data"])
        .arg(data.path())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("profile"));
    assert_eq!(
        kinds.iter().filter(|k| *k == "event").count(),
        2,
        "{kinds:?}"
    );
    assert!(!text.contains("grace"));
    let audit = server.admin_get("/api/audit?actor=command-line");
    assert_eq!(
        audit["records"][0]["action"], "CLI unavoce export",
        "{audit}"
    );
    let unknown = unavoce_on(data.path())
        .args(["export", "email=nobody@example.com", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no profile holds"));
}

#[test]
fn bench_context_times_people_with_long_histories() {
    let output = unavoce()
        .args(["bench", "context", "--profiles", "20"])
        .args(["--events-per-person", "500", "--samples", "50"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("20 profiles, 500 events each"), "{stdout}");
    assert!(
        stdout.contains("card / folded from every event at p99"),
        "{stdout}"
    );

    let too_few = unavoce()
        .args(["bench", "context", "--events-per-person", "2"])
        .output()
        .unwrap();
    assert!(!too_few.status.success());
}

#[test]
fn serve_refuses_short_keys_and_a_write_key_that_is_the_admin_key() {
    let data = tempfile::tempdir().unwrap();
    let serve = |write: &str, admin: &str| {
        unavoce()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .args(["--write-key", write, "--admin-key", admin])
            .output()
            .unwrap()
    };
    let long = "a-long-enough-key-0123456789";
    for (write, admin, says) in [
        (
            "short",
            long,
            "write key of source \"default\" is shorter than 24",
        ),
        (
            "another-long-enough-key-0123",
            "short",
            "admin key is shorter than 24",
        ),
        (long, long, "is the admin key"),
    ] {
        let output = serve(write, admin);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains(says), "{says:?} in {stderr}");
        assert!(!stderr.contains(long), "no key is printed: {stderr}");
    }
}
