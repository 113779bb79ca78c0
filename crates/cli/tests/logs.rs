//! No personal data and no secrets in the logs, even at debug level: a customer is
//! taken in (and a message of hers quarantined), looked up, and sent an e-mail the mail
//! server refuses naming her address, an SMS Twilio refuses naming her number, and a
//! call-center task to a webhook whose URL holds a secret and cannot be reached.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_KEY, Server, WRITE_KEY};
use serde_json::{Value, json};
use unavoce_testkit::{daytime_zone, http_server_answering, refusing_smtp_server};

const EMAIL: &str = "ada.lovelace@example.com";
const PHONE: &str = "+393331234567";
const SECRETS: [&str; 4] = [
    "twilio-auth-token-s3cr3t",
    "s3cr3t-path-token",
    "s3cr3t-query",
    "crm-signing-s3cr3t",
];

#[test]
fn debug_logs_hold_no_personal_data_and_no_secrets() {
    let smtp = refusing_smtp_server("550 5.1.1 <ada.lovelace@example.com>: user unknown");
    let twilio = http_server_answering(
        400,
        json!({"code": 21211, "status": 400,
            "message": format!("The 'To' number {PHONE} is not a valid phone number."),
            "more_info": "https://www.twilio.com/docs/errors/21211"})
        .to_string(),
    );
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("unavoce.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[delivery.retry]
max_attempts = 1
[delivery.email]
url = "smtp://127.0.0.1:{smtp}"
from = "Acme <news@acme.example>"
[delivery.sms]
api_url = "{twilio}"
account_sid = "AC00000000000000000000000000000001"
auth_token = {{ value = "{token}" }}
from = "+15005550006"
[delivery.call_task]
url = "http://127.0.0.1:1/tasks/{path}?key={query}"
secret = {{ value = "{signing}" }}

[[messages]]
id = "outage-update"
email = {{ subject = "Your line, {{{{ first_name }}}}", html = "<p>Hi {{{{ first_name }}}}</p>", text = "Hi {{{{ first_name }}}}" }}
sms = {{ text = "Hi {{{{ first_name }}}}, your line is back." }}
call_task = {{ summary = "Call {{{{ first_name }}}} {{{{ traits.last_name }}}} at {{{{ traits.phone }}}}" }}
"#,
            token = SECRETS[0],
            path = SECRETS[1],
            query = SECRETS[2],
            signing = SECRETS[3],
        ),
    )
    .unwrap();
    let log = data.path().join("unavoce.log");
    let mut server = Server::start_logging(data.path(), &config, &log);

    server.send_batch(vec![
        json!({"type": "identify", "userId": "ada-1", "traits": {
        "first_name": "Ada", "last_name": "Lovelace", "email": EMAIL, "phone": PHONE,
        "timezone": daytime_zone()}}),
    ]);
    // A message with no identity, carrying her address: quarantined with its reason.
    let refused = ureq::post(&format!("{}/v1/identify", server.base))
        .header("Authorization", &common::basic_auth())
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(json!({"traits": {"email": EMAIL, "phone": PHONE}}))
        .unwrap();
    assert_eq!(refused.status(), 400);
    let found = server.admin_get(&format!("/api/profiles/search?q={EMAIL}"));
    let profile = found["profiles"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no profile found: {found}"))
        .to_string();
    let card = server.admin_get(&format!("/api/profiles/{profile}/context"));
    assert_eq!(card["traits"]["email"], EMAIL, "{card}");

    for channel in ["email", "sms", "call_task"] {
        let (status, answer) = server.admin_post(
            "/api/broadcasts",
            &json!({"message": "outage-update", "audience": "true",
                "purpose": "service", "channel": channel}),
        );
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["outcomes"]["send"], 1, "{answer}");
    }
    // Proof the work was done: every message was given up, each for its reason.
    let entries = given_up(&server, 3);
    let errors: Vec<&str> = entries
        .iter()
        .map(|e| e["last_error"].as_str().unwrap_or_default())
        .collect();
    assert!(errors[0].contains("user unknown"), "{errors:?}");
    assert!(errors[1].contains("21211"), "{errors:?}");
    assert!(errors[2].contains("cannot reach"), "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| !SECRETS.iter().any(|s| e.contains(s))),
        "a URL's secret in an outbox error: {errors:?}"
    );

    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    // Debug logging was on, and the failures were logged.
    assert!(logged.contains("DEBUG"), "{logged}");
    assert_eq!(logged.matches("message given up").count(), 3, "{logged}");
    let mut forbidden = vec![
        EMAIL,
        PHONE,
        "393331234567",
        "Lovelace",
        ADMIN_KEY,
        WRITE_KEY,
    ];
    forbidden.extend(SECRETS);
    for needle in forbidden {
        let lines: Vec<&str> = logged.lines().filter(|l| l.contains(needle)).collect();
        assert!(lines.is_empty(), "{needle} is in the logs: {lines:#?}");
    }
}

/// The outbox entries, oldest first, once `n` of them are dead letters.
fn given_up(server: &Server, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = server.admin_get("/api/outbox?status=dead");
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        if entries.len() >= n {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} messages given up: {:#}",
            entries.len(),
            server.admin_get("/api/outbox")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
