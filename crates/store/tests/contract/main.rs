//! The store contract: what every store (SQLite, PostgreSQL) must do, tested through
//! the store interfaces alone. The store is the one `UNAVOCE_TEST_STORE` names
//! (`sqlite` by default, `postgres` for a fresh PostgreSQL database per test); what
//! only one store has (SQLite's file, say) is tested beside that store.

mod erasure;
mod governance;
mod leases;
mod log;
mod outbox;

use serde_json::json;
use unavoce_core::Event;
use unavoce_core::segment::{IntakeContext, normalise};
use unavoce_store::NewQuarantineEntry;

/// A `track` event from `user`.
pub fn event(id: &str, user: &str) -> Event {
    sent_by(id, Some(user), None)
}

/// A `track` event from these identifiers, as the intake makes it.
pub fn sent_by(id: &str, user: Option<&str>, anonymous: Option<&str>) -> Event {
    let mut message = json!({"type": "track", "event": "Viewed", "messageId": id});
    if let Some(user) = user {
        message["userId"] = json!(user);
    }
    if let Some(anonymous) = anonymous {
        message["anonymousId"] = json!(anonymous);
    }
    normalise(
        message.as_object().unwrap().clone(),
        &IntakeContext::new("2024-05-01T10:00:00Z".parse().unwrap(), "test"),
        || unreachable!(),
    )
    .unwrap()
}

/// A message quarantined for `reason`.
pub fn quarantined(reason: &str) -> NewQuarantineEntry {
    NewQuarantineEntry {
        received_at: "2024-05-01T10:00:00Z".parse().unwrap(),
        source: "test".into(),
        code: "missing_identity".into(),
        reason: reason.into(),
        message_id: Some("q-1".into()),
        payload: r#"{"type":"track","event":"Viewed"}"#.into(),
        origin: json!({"endpoint": "batch", "index": 1}),
    }
}
