//! Where an event's identifiers and distinguishing traits are read from, compiled once
//! with the rules: each path is split into the object it names (`context.traits`) and a
//! field (`email`), and each object is found once per event, however many fields are
//! read from it. Reading every configured path from the message's root instead cost
//! most of the identity projection's time per event (a dozen walks of the same maps).

use serde_json::{Map, Value};

use super::rules::{IdentityConfig, TypeRule};
use crate::event::Event;

/// One field: the object it is in (by position in [`Fields::objects`]) and its name.
#[derive(Debug)]
pub(crate) struct Field {
    object: usize,
    name: Box<str>,
}

/// Which of the event's own ids a type also takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnId {
    None,
    UserId,
    AnonymousId,
}

/// Where one identifier type's values come from, in the order they are read.
#[derive(Debug)]
pub(crate) struct TypeFields {
    pub(crate) own: OwnId,
    pub(crate) fields: Vec<Field>,
}

/// The compiled paths of a set of identity rules.
#[derive(Debug)]
pub(crate) struct Fields {
    /// Objects that fields are read from, as paths from the message's root (the empty
    /// path is the root itself).
    objects: Vec<Box<[Box<str>]>>,
    /// Per identifier type, in the rules' order.
    pub(crate) types: Vec<TypeFields>,
    /// Per distinguishing trait: the fields it is read from; the first present wins.
    pub(crate) traits: Vec<[Field; 2]>,
    /// `context.externalIds`.
    pub(crate) external_ids: Field,
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

impl Fields {
    /// Compiles the paths of `config`.
    pub(crate) fn new(config: &IdentityConfig) -> Fields {
        let mut objects: Vec<Box<[Box<str>]>> = Vec::new();
        let mut field = |path: &str| {
            let mut parts: Vec<Box<str>> = path.split('.').map(Box::from).collect();
            let name = parts.pop().unwrap_or_default();
            let parts = parts.into_boxed_slice();
            let object = match objects.iter().position(|o| *o == parts) {
                Some(known) => known,
                None => {
                    objects.push(parts);
                    objects.len() - 1
                }
            };
            Field { object, name }
        };
        let types = (config.types.iter())
            .map(|rule: &TypeRule| TypeFields {
                own: match rule.name.as_str() {
                    "user_id" => OwnId::UserId,
                    "anonymous_id" => OwnId::AnonymousId,
                    _ => OwnId::None,
                },
                fields: (built_in_paths(&rule.name).iter().copied())
                    .chain(rule.paths.iter().map(String::as_str))
                    .map(&mut field)
                    .collect(),
            })
            .collect();
        let traits = (config.distinguishing_traits.iter())
            .map(|name| {
                [
                    field(&format!("traits.{name}")),
                    field(&format!("context.traits.{name}")),
                ]
            })
            .collect();
        let external_ids = field("context.externalIds");
        Fields {
            objects,
            types,
            traits,
            external_ids,
        }
    }

    /// The objects of `event` that fields are read from, each found once.
    pub(crate) fn objects_of<'e>(&self, event: &'e Event) -> Objects<'e> {
        Objects(
            (self.objects.iter())
                .map(|path| {
                    let mut object = &event.message;
                    for part in path {
                        object = object.get(&**part)?.as_object()?;
                    }
                    Some(object)
                })
                .collect(),
        )
    }
}

/// One event's objects, as [`Fields::objects_of`] found them.
pub(crate) struct Objects<'e>(Vec<Option<&'e Map<String, Value>>>);

impl<'e> Objects<'e> {
    /// The value of `field` in this event, if present.
    pub(crate) fn value(&self, field: &Field) -> Option<&'e Value> {
        self.0[field.object]?.get(&*field.name)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segment::{IntakeContext, normalise};

    #[test]
    fn a_field_reads_what_the_path_names_and_objects_are_shared() {
        let mut config = IdentityConfig::default();
        config.types[0].paths = vec!["traits.login".into(), "login".into()];
        let fields = Fields::new(&config);
        let event = normalise(
            json!({"type": "identify", "userId": "u1", "login": "top",
                "traits": {"login": "nested", "email": "a@b.c"},
                "context": {"traits": {"email": "c@d.e"}, "device": {"id": 7}}})
            .as_object()
            .unwrap()
            .clone(),
            &IntakeContext::new("2024-05-01T10:00:00Z".parse().unwrap(), "test"),
            || "m".into(),
        )
        .unwrap();
        let objects = fields.objects_of(&event);
        let read = |f: &Field| objects.value(f).cloned();
        let user = &fields.types[0];
        assert_eq!(user.own, OwnId::UserId);
        assert_eq!(read(&user.fields[0]), Some(json!("nested")));
        assert_eq!(read(&user.fields[1]), Some(json!("top")));
        let email = &fields.types[1];
        assert_eq!(read(&email.fields[0]), Some(json!("a@b.c")));
        assert_eq!(read(&email.fields[1]), Some(json!("c@d.e")));
        let device = (config.types.iter()).position(|t| t.name == "device_id");
        let device = &fields.types[device.unwrap()];
        assert_eq!(read(&device.fields[0]), Some(json!(7)));
        assert_eq!(read(&fields.external_ids), None);
        // root, traits, context.traits, context.device, context: each once.
        assert_eq!(fields.objects.len(), 5);
    }
}
