//! Insights for departments: the JSON a department's webhook receives, and the digest
//! e-mail that gathers a period's insights.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use unavoce_store::OutboxEntry;

use crate::Dispatcher;
use crate::providers::smtp::Smtp;
use crate::providers::{Accepted, Failure};

/// What raised an insight, from its decision's reasons.
fn reason(entry: &OutboxEntry) -> &Value {
    entry.reasons.get(0).unwrap_or(&Value::Null)
}

impl Dispatcher {
    /// The person an insight is about, as a department needs to act: name, e-mail,
    /// phone, stage, open cases, and where their context card is.
    fn insight_person(&self, entry: &OutboxEntry) -> Value {
        let identity = &self.platform().identity;
        let found = identity.read(|g| {
            g.profile(entry.profile_id).map(|node| {
                let of = |kind: &str| identity.identifier_of_kind(node, kind);
                (node.id, of("email"), of("phone"))
            })
        });
        let Some((profile, email, phone)) = found else {
            return json!({"profile_id": entry.profile_id});
        };
        let (facts, _) = identity.person(profile, jiff::Timestamp::now());
        let name = unavoce_core::profile::traits::display_name(|k| facts.traits.get(k)?.as_str());
        json!({
            "profile_id": profile,
            "name": name,
            "email": email,
            "phone": phone,
            "stage": facts.lifecycle_stage,
            "open_cases": facts.open_cases.len(),
            "context_card": format!("{}/api/profiles/{profile}/context", self.public_url()),
        })
    }

    /// The JSON posted to a department's webhook.
    pub(crate) fn insight_payload(&self, entry: &OutboxEntry) -> Value {
        let why = reason(entry);
        json!({
            "type": "insight",
            "id": entry.idempotency_key(),
            "subscription": entry.message,
            "department": why.get("department"),
            "detail": why.get("detail"),
            "event": why.get("event"),
            "event_at": why.get("event_at"),
            "raised_at": entry.first_due,
            "person": self.insight_person(entry),
        })
    }

    /// One e-mail with every insight in `entries` to `to`.
    pub(crate) async fn send_digest(
        &self,
        smtp: &Smtp,
        to: &str,
        entries: &[OutboxEntry],
    ) -> Result<Accepted, Failure> {
        let mut by_subscription: BTreeMap<&str, Vec<&OutboxEntry>> = BTreeMap::new();
        for entry in entries {
            by_subscription
                .entry(&entry.message)
                .or_default()
                .push(entry);
        }
        let mut departments: Vec<&str> = entries
            .iter()
            .filter_map(|e| reason(e).get("department").and_then(Value::as_str))
            .collect();
        departments.sort();
        departments.dedup();
        let subject = format!(
            "{} customer insight{} for {}",
            entries.len(),
            if entries.len() == 1 { "" } else { "s" },
            departments.join(", ")
        );
        let mut text = String::new();
        for (subscription, entries) in by_subscription {
            text.push_str(&format!("{subscription} ({})\n\n", entries.len()));
            for entry in entries {
                let person = self.insight_person(entry);
                let who = person["name"]
                    .as_str()
                    .or(person["email"].as_str())
                    .map_or_else(|| entry.profile_id.to_string(), str::to_string);
                let why = reason(entry);
                text.push_str(&format!(
                    "- {who}: {}\n  at {}; context card: {}\n",
                    why.get("detail").and_then(Value::as_str).unwrap_or(""),
                    why.get("event_at").and_then(Value::as_str).unwrap_or(""),
                    person["context_card"].as_str().unwrap_or(""),
                ));
            }
            text.push('\n');
        }
        let key = format!(
            "unavoce-digest-{}-{}",
            entries.first().map_or(0, |e| e.id),
            entries.len()
        );
        smtp.send_text(to, &subject, text, &key).await
    }
}
