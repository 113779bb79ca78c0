//! The seeds' outage story, end to end through a real SMTP server: a promotional
//! broadcast reaches every consenting customer but the one whose line is down (she has
//! an open case), once each — although the server is killed mid-send and restarted.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::Server;
use serde_json::json;
use unavoce_testkit::{SmtpServer, daytime_zone, header};

const CUSTOMERS: usize = 150;
const CONCURRENCY: usize = 4;

#[test]
fn a_broadcast_reaches_every_consenting_customer_once_despite_a_kill_mid_send() {
    let smtp = SmtpServer::start();
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("unavoce.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[delivery.email]
url = "{}"
from = "Voce Telecom <offers@voce.example>"
pace = {{ per_second = 40, concurrency = {CONCURRENCY} }}

[[messages]]
id = "fibre-upgrade"
email = {{ subject = "{{{{ first_name }}}}, faster fibre this month", html = "<p>Hi {{{{ first_name }}}}</p>", text = "Hi {{{{ first_name }}}}" }}
"#,
            smtp.url()
        ),
    )
    .unwrap();
    let mut server = Server::start_with(data.path(), Some(&config));
    let zone = daytime_zone();
    let mut batch = Vec::new();
    for i in 0..CUSTOMERS {
        let user = format!("customer-{i}");
        batch.push(json!({"type": "identify", "userId": user, "traits": {
            "first_name": format!("Name{i}"), "email": format!("{user}@example.com"), "timezone": zone}}));
        // Every tenth customer never consented.
        if i % 10 != 9 {
            batch.push(
                json!({"type": "track", "userId": user, "event": "Consent Given",
                "properties": {"purpose": "promotional"}}),
            );
        }
    }
    // Customer 0's line is down: she called, and the case is open.
    batch.push(
        json!({"type": "track", "userId": "customer-0", "event": "Case Opened",
        "properties": {"case_id": "CASE-1", "subject": "Line down"},
        "context": {"touchpoint": "call-center", "channel": "phone"}}),
    );
    server.send_batch(batch);

    let (status, report) = server.admin_post(
        "/api/broadcasts",
        &json!({"message": "fibre-upgrade", "audience": "consents.promotional",
            "purpose": "promotional", "channel": "email"}),
    );
    assert_eq!(status, 201, "{report}");
    let consenting = CUSTOMERS - CUSTOMERS / 10;
    assert_eq!(report["audience"], consenting, "{report}");
    assert_eq!(report["outcomes"]["send"], consenting - 1, "{report}");
    assert_eq!(report["reasons"]["suppressed"], 1, "{report}");

    // Mid-send: kill -9.
    let before_kill = smtp.wait_for(30, Duration::from_secs(30)).len();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        before_kill < consenting - 1,
        "the broadcast was over before the kill ({before_kill} sent)"
    );

    let server = Server::start_with(data.path(), Some(&config));
    let mails = smtp.wait_for(consenting - 1, Duration::from_secs(60));
    // Let anything extra arrive too.
    std::thread::sleep(Duration::from_secs(1));
    let mails = smtp
        .mails()
        .into_iter()
        .chain(mails.into_iter().take(0))
        .collect::<Vec<_>>();
    let mut ids_by_recipient: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for mail in &mails {
        let to = header(mail, "To").unwrap();
        let id = header(mail, "Message-ID").unwrap();
        ids_by_recipient.entry(to).or_default().insert(id);
    }
    let expected: BTreeSet<String> = (1..CUSTOMERS)
        .filter(|i| i % 10 != 9)
        .map(|i| format!("customer-{i}@example.com"))
        .collect();
    let reached: BTreeSet<String> = ids_by_recipient.keys().cloned().collect();
    assert_eq!(
        reached, expected,
        "every consenting customer but the one with the open case"
    );
    for (to, ids) in &ids_by_recipient {
        assert_eq!(ids.len(), 1, "{to} got {} different messages", ids.len());
    }
    // A copy the server was sending at the kill, or had sent without yet recording it,
    // is sent again under the same Message-ID (a receiver can tell): a few, about one
    // per sending slot.
    let again = mails.len() - expected.len();
    assert!(again <= 2 * CONCURRENCY, "{again} messages were sent again");
    let outbox = server.admin_get("/api/outbox/summary");
    let counts = outbox["counts"].as_array().unwrap();
    assert_eq!(counts.len(), 1, "{outbox}");
    assert_eq!(counts[0]["status"], "sent", "{outbox}");
    assert_eq!(counts[0]["entries"], consenting - 1, "{outbox}");
    eprintln!(
        "sent before the kill: {before_kill}; after the restart every one of {} reached, {again} sent again under the same Message-ID",
        expected.len()
    );
}
