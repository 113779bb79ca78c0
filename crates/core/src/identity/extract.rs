//! The identifiers an event carries.

use serde_json::Value;

use super::rules::{IdKey, IdentityRules};
use crate::event::{Event, EventType, scalar_text};

/// The identifiers of one event, normalised, highest priority first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentifierSet {
    pub keys: Vec<IdKey>,
    /// Values that could not be normalised (an unparseable phone number): type and raw value.
    pub unusable: Vec<(String, String)>,
    /// The `previousId` of an alias call: an earlier user id or anonymous id.
    pub alias_previous: Option<String>,
    /// Values of the distinguishing traits (by their position in the rules), trimmed
    /// and lower-cased.
    pub traits: Vec<(u16, String)>,
}

/// Where each well-known type is read from, besides configured paths and
/// `context.externalIds`.
fn built_in_paths(type_name: &str) -> &'static [&'static str] {
    match type_name {
        "email" => &["traits.email", "context.traits.email"],
        "phone" => &["traits.phone", "context.traits.phone"],
        "device_id" => &["context.device.id"],
        _ => &[],
    }
}

/// Extracts and normalises the identifiers of `event` under `rules`.
pub fn extract(event: &Event, rules: &IdentityRules) -> IdentifierSet {
    let mut set = IdentifierSet::default();
    let external = match event.get("context.externalIds") {
        Some(Value::Array(entries)) => entries.as_slice(),
        _ => &[],
    };
    for (kind, rule) in rules.config.types.iter().enumerate() {
        let kind = kind as u16;
        let mut raw: Vec<String> = Vec::new();
        match rule.name.as_str() {
            "user_id" => raw.extend(event.user_id.clone()),
            "anonymous_id" => raw.extend(event.anonymous_id.clone()),
            _ => {}
        }
        for path in built_in_paths(&rule.name)
            .iter()
            .copied()
            .chain(rule.paths.iter().map(String::as_str))
        {
            if let Some(value) = event.get(path).and_then(scalar_text) {
                raw.push(value);
            }
        }
        for entry in external {
            if entry.get("type").and_then(Value::as_str) == Some(rule.name.as_str())
                && let Some(id) = entry.get("id").and_then(scalar_text)
            {
                raw.push(id);
            }
        }
        for value in raw {
            match rules.normalise(kind, &value) {
                Some(value) => set.keys.push(IdKey {
                    kind,
                    value: value.into(),
                }),
                None if !value.trim().is_empty() => set.unusable.push((rule.name.clone(), value)),
                None => {}
            }
        }
    }
    for (index, name) in rules.config.distinguishing_traits.iter().enumerate() {
        if let Some(value) = event.trait_value(name).and_then(scalar_text) {
            set.traits.push((index as u16, value.trim().to_lowercase()));
        }
    }
    if event.event_type == EventType::Alias {
        set.alias_previous = event.get("previousId").and_then(scalar_text);
    }
    set.keys.sort();
    set.keys.dedup();
    set
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segment::{IntakeContext, normalise};

    fn event(message: serde_json::Value) -> Event {
        normalise(
            message.as_object().unwrap().clone(),
            &IntakeContext::new("2024-05-01T10:00:00Z".parse().unwrap(), "test"),
            || "m".into(),
        )
        .unwrap()
    }

    #[test]
    fn identifiers_come_from_ids_traits_device_and_external_ids() {
        let rules = IdentityRules::default_rules();
        let e = event(
            json!({"type": "identify", "userId": "u1", "anonymousId": "a1",
            "traits": {"email": " Ada@Example.com", "phone": "333 123 4567", "loyalty_id": 42},
            "context": {"device": {"id": "dev-1"}, "traits": {"email": "ada@example.com"},
                "externalIds": [{"id": "L-7", "type": "loyalty_id", "collection": "users"}]}}),
        );
        let set = extract(&e, &rules);
        let names: Vec<(String, String)> = set
            .keys
            .iter()
            .map(|k| (rules.type_rule(k.kind).name.clone(), k.value.to_string()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("user_id".into(), "u1".into()),
                ("email".into(), "ada@example.com".into()),
                ("loyalty_id".into(), "42".into()),
                ("loyalty_id".into(), "L-7".into()),
                ("phone".into(), "+393331234567".into()),
                ("device_id".into(), "dev-1".into()),
                ("anonymous_id".into(), "a1".into()),
            ]
        );
    }

    #[test]
    fn unusable_values_are_reported_and_alias_keeps_its_previous_id() {
        let rules = IdentityRules::default_rules();
        let e = event(json!({"type": "track", "userId": "u1", "event": "E",
            "traits": {"phone": "call me", "email": "nope"}}));
        let set = extract(&e, &rules);
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.unusable.len(), 2);
        let alias = event(json!({"type": "alias", "userId": "u1", "previousId": "anon-9"}));
        assert_eq!(
            extract(&alias, &rules).alias_previous.as_deref(),
            Some("anon-9")
        );
    }
}
