//! Reloading the configuration file while serving: `POST /api/config/reload` and
//! `SIGHUP` put touchpoints, segments, messages and the other live sections in force
//! without a restart and without losing a request; an invalid file changes nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

const FIRST: &str = r#"
[ingest]
queue_capacity = 512

[[touchpoints]]
id = "store-rome"
name = "Rome store"
channel = "store"
department = "retail"

[[segments]]
name = "romans"
expression = "traits.city == 'Roma'"

[[messages]]
id = "welcome"
email = { subject = "Welcome", html = "<p>Welcome</p>", text = "Welcome" }
"#;

const SECOND: &str = r#"
[ingest]
queue_capacity = 256

[identity]
blocked_values = ["family@example.com"]

[delivery.call_task]
url = "http://127.0.0.1:9/tasks"
secret = { value = "a-call-task-secret-0123456789" }

[policies]
quiet_hours = { from = "22:00", to = "07:00" }

[[touchpoints]]
id = "store-rome"
name = "Rome store"
channel = "store"
department = "retail"

[[touchpoints]]
id = "store-milan"
name = "Milan store"
channel = "store"
department = "retail"

[[segments]]
name = "milanese"
expression = "traits.city == 'Milano'"

[[messages]]
id = "welcome"
email = { subject = "Welcome back", html = "<p>Welcome back</p>", text = "Welcome back" }
"#;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn names(list: &Value, field: &str) -> Vec<String> {
    let key = list.as_object().unwrap().keys().next().unwrap().clone();
    (list[&key].as_array().unwrap().iter())
        .map(|item| item[field].as_str().unwrap().to_string())
        .collect()
}

/// Polls `check` until it holds (the proof the work was done), for at most 20 s.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_valid_file_is_put_in_force_live_and_an_invalid_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().join("data"), dir.path().join("unavoce.toml"));
    write(&config, FIRST);
    let server = Server::start_with(&data, Some(&config));
    server.send_batch(vec![
        json!({"type": "identify", "userId": "ada", "traits": {"city": "Milano"}}),
        json!({"type": "identify", "userId": "bea", "traits": {"city": "Roma"}}),
        json!({"type": "identify", "userId": "carl", "traits": {"email": "family@example.com"}}),
        json!({"type": "identify", "anonymousId": "tablet", "traits": {"email": "family@example.com"}}),
    ]);
    let profile_of =
        |query: &str| server.admin_get(&format!("/api/profiles/lookup?{query}"))["id"].clone();
    assert_eq!(
        profile_of("user_id=carl"),
        profile_of("anonymous_id=tablet"),
        "one shared e-mail"
    );
    let lanes = |server: &Server| {
        server.admin_get("/api/outbox/summary")["lanes"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(lanes(&server), 0, "no provider yet");
    assert_eq!(
        names(&server.admin_get("/api/touchpoints"), "id"),
        ["store-rome"]
    );
    assert!(names(&server.admin_get("/api/segments"), "name").contains(&"romans".into()));

    // Requests keep being answered while the file is reloaded.
    let base = server.base.clone();
    let sender = std::thread::spawn(move || {
        for i in 0..40 {
            let batch = json!({"batch": [{"type": "track", "userId": format!("u{i}"),
                "event": "Viewed", "messageId": format!("reload-{i}")}]});
            let answer = ureq::post(&format!("{base}/v1/batch"))
                .header("Authorization", &common::basic_auth())
                .send_json(batch)
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
    });
    write(&config, SECOND);
    let (status, answer) = server.admin_post_empty("/api/config/reload");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["applied"],
        json!([
            "delivery",
            "identity",
            "messages",
            "policies",
            "segments",
            "touchpoints"
        ]),
        "{answer}"
    );
    assert_eq!(answer["needs_restart"], json!(["ingest"]), "{answer}");
    sender.join().unwrap();
    let stored = server.all_events();
    let sent = (stored.iter())
        .filter(|e| {
            e["messageId"]
                .as_str()
                .is_some_and(|id| id.starts_with("reload-"))
        })
        .count();
    assert_eq!(sent, 40, "every request during the reload was stored");

    assert_eq!(
        names(&server.admin_get("/api/touchpoints"), "id"),
        ["store-milan", "store-rome"]
    );
    let segments = names(&server.admin_get("/api/segments"), "name");
    assert!(
        segments.contains(&"milanese".into()) && !segments.contains(&"romans".into()),
        "{segments:?}"
    );
    let ada = server.admin_get("/api/profiles/lookup?user_id=ada")["id"].clone();
    until("Ada in the new segment", || {
        let members = server.admin_get("/api/segments/milanese/members");
        members.to_string().contains(ada.as_str().unwrap())
    });
    until("the graph rebuilt under the blocked e-mail", || {
        profile_of("user_id=carl") != profile_of("anonymous_id=tablet")
    });
    assert_eq!(lanes(&server), 1, "the call-task provider's lane");
    let preview = server.admin_get("/api/messages/welcome");
    assert!(preview.to_string().contains("Welcome back"), "{preview}");

    // An invalid file: refused as a whole, with the reason; nothing changes.
    let broken = SECOND.replace("traits.city == 'Milano'", "traits.city ==");
    write(&config, &broken.replace("store-milan", "store-turin"));
    let (status, answer) = server.admin_post_empty("/api/config/reload");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_config");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("milanese") && message.contains("in force is kept"),
        "{message}"
    );
    assert_eq!(
        names(&server.admin_get("/api/touchpoints"), "id"),
        ["store-milan", "store-rome"],
        "the touchpoints of the refused file are not in force"
    );
    write(&config, "[[touchpoints]\nid = ");
    let (status, answer) = server.admin_post_empty("/api/config/reload");
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{answer}"
    );

    // Identity rules that would read identifiers differently (another default region
    // for phone numbers) wait for a restart: keys and suppression hashes made under the
    // rules in force would not mean the same.
    write(
        &config,
        &SECOND.replace("[identity]\n", "[identity]\ndefault_region = \"GB\"\n"),
    );
    let (status, answer) = server.admin_post_empty("/api/config/reload");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["applied"], json!([]), "{answer}");
    assert_eq!(
        answer["needs_restart"],
        json!(["identity", "ingest"]),
        "{answer}"
    );

    // SIGHUP does the same.
    write(
        &config,
        &SECOND.replace("id = \"store-milan\"", "id = \"kiosk-1\""),
    );
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    until("the kiosk registered by SIGHUP", || {
        names(&server.admin_get("/api/touchpoints"), "id") == ["kiosk-1", "store-rome"]
    });
}

#[test]
fn without_a_file_there_is_nothing_to_reload() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let (status, answer) = server.admin_post_empty("/api/config/reload");
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "no_config_file");
}
