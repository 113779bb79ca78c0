//! Identity resolution end to end: realistic histories with ground truth, sent through
//! the tracking API, resolved into profiles, read back through the admin API.

mod common;

use std::collections::HashMap;

use common::{ADMIN_KEY, Server, basic_auth};
use serde_json::{Map, Value, json};
use unavoce_synthetic::{STORE_PHONE, omnichannel, pairwise_quality};

fn send(server: &Server, messages: &[Map<String, Value>]) {
    for chunk in messages.chunks(250) {
        let response = ureq::post(&format!("{}/v1/batch", server.base))
            .header("Authorization", &basic_auth())
            .send_json(json!({ "batch": chunk }))
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// Every message's profile, read through the API.
fn assignment(server: &Server) -> HashMap<String, String> {
    let mut assigned = HashMap::new();
    let mut cursor = String::new();
    loop {
        let page = server.admin_get(&format!("/api/profiles?limit=200&cursor={cursor}"));
        for profile in page["profiles"].as_array().unwrap() {
            let id = profile["id"].as_str().unwrap();
            let mut event_cursor = String::new();
            loop {
                let events = server.admin_get(&format!(
                    "/api/events?profile_id={id}&limit=1000&cursor={event_cursor}"
                ));
                for event in events["events"].as_array().unwrap() {
                    assigned.insert(
                        event["messageId"].as_str().unwrap().to_string(),
                        id.to_string(),
                    );
                }
                match events["next_cursor"].as_str() {
                    Some(next) => event_cursor = next.to_string(),
                    None => break,
                }
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return assigned,
        }
    }
}

#[test]
fn resolved_profiles_match_the_truth() {
    let start = "2024-01-01T00:00:00Z".parse().unwrap();
    let data = omnichannel(1_500, 42, start, 120);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    send(&server, &data.messages);

    let assigned = assignment(&server);
    let (precision, recall) = pairwise_quality(&data.truth, &assigned);
    let stats = server.admin_get("/api/stats");
    eprintln!(
        "{} messages from {} people → {} profiles; pairwise precision {precision:.4}, recall {recall:.4}",
        data.messages.len(),
        data.people.len(),
        stats["profiles"]
    );
    assert!(precision >= 0.99, "precision {precision:.4} < 0.99");
    assert!(recall >= 0.97, "recall {recall:.4} < 0.97");

    // The store's phone number, typed for walk-ins, was caught and stops linking.
    let flagged = server.admin_get("/api/identity/flagged");
    let numbers: Vec<&str> = flagged["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["identifier"]["value"].as_str().unwrap())
        .collect();
    assert!(
        numbers.contains(&"+390667891234"),
        "{STORE_PHONE} not flagged: {flagged}"
    );

    // Lookup by any identifier, normalised the same way.
    let shares_email = |p: &unavoce_synthetic::Person| {
        data.people.iter().filter(|q| q.email == p.email).count() > 1
    };
    let person = data
        .people
        .iter()
        .find(|p| p.user_id.is_some() && p.email.is_some() && p.phone.is_some() && !shares_email(p))
        .unwrap();
    let by_user = server.admin_get(&format!(
        "/api/profiles/lookup?user_id={}",
        person.user_id.as_ref().unwrap()
    ));
    let email = person.email.as_ref().unwrap().to_uppercase();
    let by_email = server.admin_get(&format!("/api/profiles/lookup?email=%20{email}"));
    assert_eq!(by_user["id"], by_email["id"]);
    assert_eq!(by_user["traits"]["firstName"], person.first_name);

    // A family's e-mail, proven shared by two user ids, identifies no one.
    let family_email = flagged["shared"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["identifier"]["type"] == "email")
        .map(|s| s["identifier"]["value"].as_str().unwrap().to_string())
        .expect("no family e-mail was proven shared");
    assert!(
        data.people
            .iter()
            .filter(|p| p.email.as_deref() == Some(family_email.as_str()))
            .count()
            > 1
    );
    let response = ureq::get(&format!(
        "{}/api/profiles/lookup?email={family_email}",
        server.base
    ))
    .header("Authorization", &format!("Bearer {ADMIN_KEY}"))
    .config()
    .http_status_as_error(false)
    .build()
    .call()
    .unwrap();
    assert_eq!(response.status(), 409);
}

#[test]
fn unmerge_equals_a_fresh_replay_without_the_link() {
    let start = "2024-01-01T00:00:00Z".parse().unwrap();
    let data = omnichannel(200, 9, start, 60);
    // A logged-in person's browser cookie: the link to cut.
    let (cookie, user) = data
        .messages
        .iter()
        .find_map(
            |m| match (m["type"].as_str(), m.get("anonymousId"), m.get("userId")) {
                (Some("identify"), Some(Value::String(a)), Some(Value::String(u)))
                    if a.starts_with("web-") =>
                {
                    Some((a.clone(), u.clone()))
                }
                _ => None,
            },
        )
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    send(&server, &data.messages);
    let profile = server.admin_get(&format!("/api/profiles/lookup?user_id={user}"));
    let id = profile["id"].as_str().unwrap().to_string();
    let (status, split) = server.admin_post(
        &format!("/api/profiles/{id}/unmerge"),
        &json!({"identifier": {"type": "anonymous_id", "value": cookie}}),
    );
    assert_eq!(status, 200, "{split}");
    assert_eq!(split["profiles"].as_array().unwrap().len(), 2, "{split}");
    let after_unmerge = assignment(&server);

    // The same log, had the link never been seen: wherever the cookie came with the
    // person's other identifiers, it is replaced by a cookie of its own.
    let others: Vec<String> = profile["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["value"] != cookie.as_str())
        .map(|i| i["value"].as_str().unwrap().to_string())
        .collect();
    let carries_others = |m: &Map<String, Value>| {
        let text = Value::Object(m.clone()).to_string();
        others.iter().any(|o| text.contains(&format!("\"{o}\"")))
    };
    let without_link: Vec<Map<String, Value>> = data
        .messages
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m.get("anonymousId").and_then(Value::as_str) == Some(cookie.as_str())
                && carries_others(&m)
            {
                let fresh = format!("fresh-{}", m["messageId"].as_str().unwrap());
                m.insert("anonymousId".into(), fresh.into());
            }
            m
        })
        .collect();
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = Server::start(fresh_dir.path());
    send(&fresh, &without_link);
    let replayed = assignment(&fresh);
    assert_eq!(
        after_unmerge, replayed,
        "unmerge differs from a replay without the link"
    );

    // The cut survives a restart, and a new event with both does not undo it.
    drop(server);
    let server = Server::start(dir.path());
    assert_eq!(assignment(&server), replayed);
    send(
        &server,
        &[
            json!({"type": "track", "userId": user, "anonymousId": cookie, "event": "Again",
        "messageId": "after-unmerge"})
            .as_object()
            .unwrap()
            .clone(),
        ],
    );
    // The cookie's part keeps the old id (it holds the event that created the profile);
    // the person's part is the profile with the user id.
    let profile_after = server.admin_get(&format!("/api/profiles/lookup?user_id={user}"));
    assert!(!profile_after["identifiers"].to_string().contains(&cookie));
    let cookie_profile = server.admin_get(&format!("/api/profiles/lookup?anonymous_id={cookie}"));
    assert_eq!(cookie_profile["id"], id.as_str());
    assert_ne!(profile_after["id"], cookie_profile["id"]);

    // Errors say what is wrong.
    let (status, body) = server.admin_post(
        "/api/profiles/p-999999/unmerge",
        &json!({"identifier": {"type": "email", "value": "x@example.com"}}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = server.admin_post(
        &format!("/api/profiles/{id}/unmerge"),
        &json!({"identifier": {"type": "email", "value": "nobody@example.com"}}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("cannot_unmerge"))
    );
}

#[test]
fn profiles_without_a_shared_identifier_are_matched_on_their_traits() {
    // Web accounts (user ids) and store sign-up forms (loyalty cards) of the same people,
    // typed again by store staff with typos: no identifier in common.
    let (_, rows) = unavoce_synthetic::people_with_duplicates(1_500, 3);
    let messages: Vec<Map<String, Value>> = rows
        .iter()
        .map(|r| {
            let (id_field, id) = match r[0].strip_suffix("-dup") {
                Some(person) => ("traits", json!({"loyalty_id": format!("L-{person}")})),
                None => ("userId", json!(r[0])),
            };
            let mut traits = json!({"firstName": r[1], "lastName": r[2], "birthDate": r[3], "postcode": r[4], "city": r[5]});
            if id_field == "traits" {
                traits["loyalty_id"] = id["loyalty_id"].clone();
            }
            let mut m = json!({"type": "identify", "messageId": format!("m-{}", r[0]), "traits": traits});
            match id_field {
                "userId" => m["userId"] = id,
                _ => m["anonymousId"] = json!(format!("form-{}", r[0])),
            }
            m.as_object().unwrap().clone()
        })
        .collect();
    let truth = rows.iter().filter(|r| r[0].ends_with("-dup")).count();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    send(&server, &messages);
    let before = server.admin_get("/api/stats")["profiles"].as_u64().unwrap();

    let (status, report) = server.admin_post_empty("/api/identity/matching");
    assert_eq!(status, 200, "{report}");
    let linked = report["linked_automatically"].as_u64().unwrap() as usize;
    let queued = report["queued_for_review"].as_u64().unwrap() as usize;
    eprintln!("{truth} true pairs: {report}");
    assert!(linked + queued >= truth * 9 / 10, "{report}");

    // Automatic links are right: each merged profile holds one person's two records.
    let after = server.admin_get("/api/stats")["profiles"].as_u64().unwrap();
    assert_eq!(before - after, linked as u64);
    let mut wrong = 0;
    for person in rows.iter().filter_map(|r| r[0].strip_suffix("-dup")) {
        let web = server.admin_get(&format!("/api/profiles/lookup?user_id={person}"));
        let identifiers = web["identifiers"].to_string();
        if identifiers.contains("loyalty_id") && !identifiers.contains(&format!("L-{person}\"")) {
            wrong += 1;
        }
    }
    assert!(
        wrong * 100 <= linked.max(1),
        "{wrong} wrong automatic links of {linked}"
    );

    // A person decides the rest.
    let queue = server.admin_get("/api/identity/review");
    let items = queue["items"].as_array().unwrap();
    assert_eq!(items.len(), queued);
    if let Some(item) = items.first() {
        let id = item["id"].as_u64().unwrap();
        let (status, decided) =
            server.admin_post_empty(&format!("/api/identity/review/{id}/accept"));
        assert_eq!(status, 200, "{decided}");
        assert_eq!(decided["status"], "accepted");
        let (a, b) = (&item["a"], &item["b"]);
        let pa = server.admin_get(&format!(
            "/api/profiles/lookup?{}={}",
            a["type"].as_str().unwrap(),
            a["value"].as_str().unwrap()
        ));
        let pb = server.admin_get(&format!(
            "/api/profiles/lookup?{}={}",
            b["type"].as_str().unwrap(),
            b["value"].as_str().unwrap()
        ));
        assert_eq!(pa["id"], pb["id"], "accepted: one profile");
        let (status, again) = server.admin_post_empty(&format!("/api/identity/review/{id}/reject"));
        assert_eq!(
            (status, again["error"]["code"].as_str()),
            (409, Some("already_decided"))
        );
    }
    if let Some(item) = items.get(1) {
        let id = item["id"].as_u64().unwrap();
        let (status, decided) =
            server.admin_post_empty(&format!("/api/identity/review/{id}/reject"));
        assert_eq!(
            (status, decided["status"].as_str()),
            (200, Some("rejected"))
        );
    }
    // Decisions are kept: a second run proposes nothing already decided or queued, and a
    // restart replays the links to the same profiles.
    let (_, second) = server.admin_post_empty("/api/identity/matching");
    assert_eq!(second["queued_for_review"], 0, "{second}");
    let profiles = server.admin_get("/api/stats")["profiles"].clone();
    drop(server);
    let server = Server::start(dir.path());
    assert_eq!(server.admin_get("/api/stats")["profiles"], profiles);
}
