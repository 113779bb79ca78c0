//! Who may see what: the roles an API key holds, and how a person's data is shown to a
//! role that may not see it in full (masked: `a•••@example.com`, a phone's last three
//! digits, a name's initial).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

/// What a named API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: keys, erasure, export, settings, and all the others may do.
    Owner,
    /// Segments, messages, journeys, broadcasts and reports; people masked.
    Marketer,
    /// Reports, KPIs, census, paths, funnel, attribution, segment sizes; no person.
    Analyst,
    /// One customer at a time: search, context card, timeline, consents; unmasked, no
    /// bulk listing, no export.
    Agent,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Marketer, Role::Analyst, Role::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Marketer => "marketer",
            Role::Analyst => "analyst",
            Role::Agent => "agent",
        }
    }

    /// How this role sees a person's data where it may see people at all.
    pub fn person_view(self) -> PersonView {
        match self {
            Role::Owner | Role::Agent => PersonView::Full,
            Role::Marketer => PersonView::Masked,
            Role::Analyst => PersonView::Hidden,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: one of owner, marketer, analyst, agent")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// How an API key is kept: its SHA-256, in hex. Keys are long random strings, so a
/// plain hash is as good as a slow one, and a request finds its key by index.
pub fn key_hash(key: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `name` can name an API key: 1 to 64 letters, digits, `.`, `-` or `_`.
pub fn is_valid_key_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// How a role sees a person's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonView {
    Full,
    /// E-mail addresses, phone numbers and names masked.
    Masked,
    /// No person-level data at all.
    Hidden,
}

/// The mask's character.
const DOT: char = '•';

/// `ada@example.com` → `a•••@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}{DOT}{DOT}{DOT}@{domain}")
        }
        None => DOT.to_string().repeat(3),
    }
}

/// `+39 333 123 4567` → `+•• ••• ••• •567`: every digit but the last three masked.
pub fn mask_phone(phone: &str) -> String {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    phone
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + 3 <= digits { DOT } else { c }
            } else {
                c
            }
        })
        .collect()
}

/// `Ada Lovelace` → `A.`: the initial only.
pub fn mask_name(name: &str) -> String {
    match name.trim().chars().next() {
        Some(initial) => format!("{initial}."),
        None => String::new(),
    }
}

/// Keys whose text values are a person's name anywhere.
const NAME_KEYS: [&str; 7] = [
    "first_name",
    "last_name",
    "full_name",
    "firstName",
    "lastName",
    "fullName",
    "display_name",
];

/// Masks, anywhere in `value`, every e-mail address and phone number, and every name
/// (a text under a name key; `name` itself in a person's traits or in an object about a
/// person, one with a `p-…` id): what a role with [`PersonView::Masked`] receives.
pub fn mask_people(value: &mut Value) {
    mask(value, false);
}

fn mask(value: &mut Value, about_a_person: bool) {
    match value {
        Value::Object(map) => {
            let person = about_a_person
                || ["id", "profile_id"].iter().any(|k| {
                    map.get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.starts_with("p-"))
                });
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text)
                        if NAME_KEYS.contains(&key.as_str()) || (person && key == "name") =>
                    {
                        *text = mask_name(text)
                    }
                    _ => mask(v, key == "traits"),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask(v, false)),
        Value::String(text) => {
            if is_email(text) {
                *text = mask_email(text);
            } else if is_phone(text) {
                *text = mask_phone(text);
            }
        }
        _ => {}
    }
}

fn is_email(text: &str) -> bool {
    text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !text.contains(char::is_whitespace)
    })
}

/// Digits (at least eight), with the separators phone numbers are written with.
fn is_phone(text: &str) -> bool {
    text.chars().filter(char::is_ascii_digit).count() >= 8
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_read_back_and_see_people_as_their_role_allows() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("admin".parse::<Role>().is_err());
        assert_eq!(Role::Agent.person_view(), PersonView::Full);
        assert_eq!(Role::Marketer.person_view(), PersonView::Masked);
        assert_eq!(Role::Analyst.person_view(), PersonView::Hidden);
    }

    #[test]
    fn masks_keep_what_a_marketer_may_know() {
        assert_eq!(mask_email("ada.lovelace@example.com"), "a•••@example.com");
        assert_eq!(mask_phone("+39 333 123 4567"), "+•• ••• ••• •567");
        assert_eq!(mask_phone("393331234567"), "•••••••••567");
        assert_eq!(mask_name("Ada Lovelace"), "A.");

        let mut answer = json!({
            "id": "p-12",
            "name": "Ada Lovelace",
            "traits": {"name": "Ada Lovelace", "last_name": "Lovelace", "email": "ada@example.com",
                "phone": "+393331234567", "plan": "fibre", "visits": 12},
            "identifiers": [{"type": "email", "value": "ada@example.com"},
                {"type": "user_id", "value": "u-1"}],
            "events": [{"timestamp": "2024-05-01T10:00:00Z", "name": "Order Completed"}],
        });
        mask_people(&mut answer);
        assert_eq!(
            answer,
            json!({
                "id": "p-12",
                "name": "A.",
                "traits": {"name": "A.", "last_name": "L.", "email": "a•••@example.com",
                    "phone": "+•••••••••567", "plan": "fibre", "visits": 12},
                "identifiers": [{"type": "email", "value": "a•••@example.com"},
                    {"type": "user_id", "value": "u-1"}],
                "events": [{"timestamp": "2024-05-01T10:00:00Z", "name": "Order Completed"}],
            })
        );
    }
}
