//! The identifiers an event carries.

use serde_json::Value;

use std::borrow::Cow;

use super::fields::OwnId;
use super::rules::{IdKey, IdentityRules, lower_case};
use crate::event::{Event, EventType, scalar_str, scalar_text};

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

/// Extracts and normalises the identifiers of `event` under `rules`.
pub fn extract(event: &Event, rules: &IdentityRules) -> IdentifierSet {
    let mut set = IdentifierSet::default();
    let fields = rules.fields();
    let objects = fields.objects_of(event);
    let external = match objects.value(&fields.external_ids) {
        Some(Value::Array(entries)) => entries.as_slice(),
        _ => &[],
    };
    for (kind, (rule, read)) in rules.config.types.iter().zip(&fields.types).enumerate() {
        let kind = kind as u16;
        let mut take = |value: Cow<'_, str>| match rules.normalised(kind, &value) {
            Some(normalised) => set.keys.push(IdKey::new(kind, &normalised)),
            None if !value.trim().is_empty() => {
                set.unusable.push((rule.name.clone(), value.into_owned()))
            }
            None => {}
        };
        let own = match read.own {
            OwnId::UserId => event.user_id.as_deref(),
            OwnId::AnonymousId => event.anonymous_id.as_deref(),
            OwnId::None => None,
        };
        if let Some(own) = own {
            take(Cow::Borrowed(own));
        }
        for field in &read.fields {
            if let Some(value) = objects.value(field).and_then(scalar_str) {
                take(value);
            }
        }
        for entry in external {
            if entry.get("type").and_then(Value::as_str) == Some(rule.name.as_str())
                && let Some(id) = entry.get("id").and_then(scalar_str)
            {
                take(id);
            }
        }
    }
    for (index, read) in fields.traits.iter().enumerate() {
        // The first place that states the trait decides, as `Event::trait_value` reads.
        let said = read.iter().find_map(|field| objects.value(field));
        if let Some(value) = said.and_then(scalar_str) {
            set.traits
                .push((index as u16, lower_case(&value).into_owned()));
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
            .map(|k| {
                (
                    rules.type_rule(k.kind()).name.clone(),
                    k.value().to_string(),
                )
            })
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
