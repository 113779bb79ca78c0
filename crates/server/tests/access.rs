//! Roles and keys: every route answers every role as the access table says; a
//! marketer sees people masked; a revoked key opens nothing; changes and reads of one
//! person are in the audit log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use unavoce_core::access::Role;
use unavoce_server::access::RULES;

mod common;

use common::*;

/// Makes a key for each role but the owner (the admin key); the keys by role.
async fn keys(s: &TestServer) -> BTreeMap<Role, String> {
    let mut keys = BTreeMap::from([(Role::Owner, ADMIN_KEY.to_string())]);
    for (name, role) in [
        ("campaigns", Role::Marketer),
        ("bi", Role::Analyst),
        ("care-desk", Role::Agent),
    ] {
        let made = s
            .admin_json("POST", "/api/keys", json!({"name": name, "role": role}))
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.json);
        keys.insert(role, made.json["key"].as_str().unwrap().to_string());
    }
    keys
}

async fn ada(s: &TestServer) -> String {
    s.send_batch(vec![
        json!({"type": "identify", "userId": "ada", "traits": {
        "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
        "phone": "+393331234567"}}),
    ])
    .await;
    s.profile_of("ada").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_the_access_table_says() {
    let s = server().await;
    let profile = ada(&s).await;
    let keys = keys(&s).await;
    for rule in RULES {
        let path = rule
            .route
            .replace("{id}", &profile)
            .replace("{name}", "nothing-here")
            .replace("{decision}", "accept")
            .replace("{hash}", "nothing-here");
        // Reads and harmless changes: every body is empty, so changes are refused as
        // invalid where they are allowed at all.
        if [
            "/api/keys/{name}",
            "/api/identity/matching",
            "/api/profiles/{id}/erase",
        ]
        .contains(&rule.route)
        {
            continue; // walked below, on purpose
        }
        for (role, key) in &keys {
            let answer = s.keyed(key, rule.method, &path, json!({})).await;
            let what = format!("{role} {} {path}: {}", rule.method, answer.json);
            if rule.allows(*role) {
                assert!(
                    ![
                        StatusCode::UNAUTHORIZED,
                        StatusCode::FORBIDDEN,
                        StatusCode::METHOD_NOT_ALLOWED
                    ]
                    .contains(&answer.status),
                    "{what}"
                );
                assert_ne!(
                    answer.json["error"]["message"], "no such endpoint",
                    "the table names a route the server does not have: {what}"
                );
            } else {
                assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}");
                assert_eq!(answer.json["error"]["code"], "forbidden", "{what}");
            }
        }
    }
    for (role, key) in &keys {
        let matching = s
            .keyed(key, "POST", "/api/identity/matching", json!({}))
            .await;
        assert_eq!(
            matching.status == StatusCode::FORBIDDEN,
            *role != Role::Owner
        );
        let revoke = s.keyed(key, "DELETE", "/api/keys/nobody", json!({})).await;
        let expected = if *role == Role::Owner {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(revoke.status, expected, "{}", revoke.json);
    }
    // Erasure last: only an owner may, and then she is gone.
    let erase = format!("/api/profiles/{profile}/erase");
    for role in [Role::Marketer, Role::Analyst, Role::Agent, Role::Owner] {
        let answer = s.keyed(&keys[&role], "POST", &erase, json!({})).await;
        let expected = if role == Role::Owner {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(answer.status, expected, "{role}: {}", answer.json);
    }
    // A route outside the table answers no one.
    let unknown = s
        .admin("GET", "/api/nowhere", axum::body::Body::empty())
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketer_sees_people_masked_an_agent_in_full_and_a_revoked_key_nothing() {
    let s = server().await;
    let profile = ada(&s).await;
    let keys = keys(&s).await;
    let path = format!("/api/profiles/{profile}/context");
    let full = s.keyed(&keys[&Role::Agent], "GET", &path, json!({})).await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.json);
    let masked = s
        .keyed(&keys[&Role::Marketer], "GET", &path, json!({}))
        .await;
    assert_eq!(masked.status, StatusCode::OK, "{}", masked.json);
    let text = masked.json.to_string();
    for secret in ["ada@example.com", "393331234567", "Lovelace"] {
        assert!(
            full.json.to_string().contains(secret),
            "{secret}: {}",
            full.json
        );
        assert!(
            !text.contains(secret),
            "{secret} shown to a marketer: {text}"
        );
    }
    assert!(text.contains("a•••@example.com"), "{text}");
    assert!(text.contains("567"), "{text}");
    let listed = s
        .keyed(&keys[&Role::Marketer], "GET", "/api/profiles", json!({}))
        .await;
    assert!(
        !listed.json.to_string().contains("ada@example.com"),
        "{}",
        listed.json
    );
    let analyst = s
        .keyed(&keys[&Role::Analyst], "GET", &path, json!({}))
        .await;
    assert_eq!(analyst.status, StatusCode::FORBIDDEN);

    // Keys are listed without the key; a key's use is written down.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let listed = s.get("/api/keys").await;
        let used = listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "care-desk" && !k["last_used_at"].is_null());
        if used || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let names: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "bi", "campaigns", "care-desk"]);
    for key in keys.values() {
        assert!(!listed.to_string().contains(key.as_str()));
    }
    let care = &listed["keys"][3];
    assert_eq!(care["role"], "agent");
    assert!(!care["last_used_at"].is_null(), "{listed}");
    let taken = s
        .admin_json("POST", "/api/keys", json!({"name": "bi", "role": "owner"}))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let bad = s
        .admin_json("POST", "/api/keys", json!({"name": "x", "role": "boss"}))
        .await;
    assert_eq!(bad.json["error"]["code"], "invalid_role");

    let revoked = s
        .admin("DELETE", "/api/keys/care-desk", axum::body::Body::empty())
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = s.keyed(&keys[&Role::Agent], "GET", &path, json!({})).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.json["error"]["code"], "invalid_admin_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_and_reads_of_one_person_are_audited_and_only_owners_read_the_audit() {
    let s = server().await;
    let profile = ada(&s).await;
    let keys = keys(&s).await;
    let agent = &keys[&Role::Agent];
    let card = format!("/api/profiles/{profile}/context");
    assert_eq!(
        s.keyed(agent, "GET", &card, json!({})).await.status,
        StatusCode::OK
    );
    let lookup = s
        .keyed(
            agent,
            "GET",
            "/api/profiles/lookup?email=ada@example.com",
            json!({}),
        )
        .await;
    assert_eq!(lookup.status, StatusCode::OK, "{}", lookup.json);
    let consent = s
        .keyed(
            agent,
            "POST",
            &format!("/api/profiles/{profile}/consents"),
            json!({"purpose": "promotional", "granted": false, "channel": "sms"}),
        )
        .await;
    assert!(consent.status.is_success(), "{}", consent.json);
    // Counts and lists are not one person's data: not audited.
    assert_eq!(
        s.keyed(agent, "GET", "/api/stats", json!({})).await.status,
        StatusCode::OK
    );

    let audit = s.get("/api/audit?actor=care-desk").await;
    let records: Vec<(String, Value, u64)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["profile_id"].clone(),
                r["outcome"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        records,
        [
            (
                "POST /api/profiles/{id}/consents".to_string(),
                json!(profile),
                consent.status.as_u16() as u64
            ),
            ("GET /api/profiles/lookup".to_string(), json!(profile), 200),
            (
                "GET /api/profiles/{id}/context".to_string(),
                json!(profile),
                200
            ),
        ],
        "{audit}"
    );
    let creations = s
        .get("/api/audit?actor=admin&action=POST%20/api/keys")
        .await;
    assert_eq!(creations["records"].as_array().unwrap().len(), 3);
    assert_eq!(creations["records"][0]["role"], "owner");
    let by_person = s
        .get(&format!("/api/audit?profile_id={profile}&limit=2"))
        .await;
    assert_eq!(by_person["records"].as_array().unwrap().len(), 2);
    let next = by_person["next_cursor"].as_str().unwrap();
    let rest = s
        .get(&format!("/api/audit?profile_id={profile}&cursor={next}"))
        .await;
    assert!(!rest["records"].as_array().unwrap().is_empty());
    let denied = s.keyed(agent, "GET", "/api/audit", json!({})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_adds_a_note_to_a_case_and_the_card_shows_it() {
    let s = server().await;
    let profile = ada(&s).await;
    s.send_batch(vec![
        json!({"type": "track", "userId": "ada", "event": "Case Opened",
        "properties": {"case_id": "C-7", "subject": "No line since Monday"}}),
    ])
    .await;
    let keys = keys(&s).await;
    let path = format!("/api/profiles/{profile}/notes");
    let noted = s
        .keyed(
            &keys[&Role::Agent],
            "POST",
            &path,
            json!({"case_id": "C-7", "note": "technician booked for Thursday"}),
        )
        .await;
    assert_eq!(noted.status, StatusCode::CREATED, "{}", noted.json);
    let empty = s
        .keyed(
            &keys[&Role::Agent],
            "POST",
            &path,
            json!({"case_id": "C-7", "note": " "}),
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let card = s.get(&format!("/api/profiles/{profile}/context")).await;
    let touches = card["open_cases"][0]["touches"].as_array().unwrap();
    assert_eq!(
        touches.last().unwrap()["note"],
        "technician booked for Thursday",
        "{card}"
    );
}
