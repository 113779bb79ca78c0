//! Identifiers: typed values that point to a person.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The type of an identifier. Custom types (`loyalty_id`, `social:instagram`) are
/// carried by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum IdentifierType {
    UserId,
    AnonymousId,
    Email,
    Phone,
    DeviceId,
    Custom(String),
}

impl IdentifierType {
    /// The name used in APIs and config (`user_id`, `email`, `loyalty_id`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Self::UserId => "user_id",
            Self::AnonymousId => "anonymous_id",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::DeviceId => "device_id",
            Self::Custom(name) => name,
        }
    }
}

impl From<String> for IdentifierType {
    fn from(name: String) -> Self {
        match name.as_str() {
            "user_id" | "userId" => Self::UserId,
            "anonymous_id" | "anonymousId" => Self::AnonymousId,
            "email" => Self::Email,
            "phone" => Self::Phone,
            "device_id" | "deviceId" => Self::DeviceId,
            _ => Self::Custom(name),
        }
    }
}

impl From<IdentifierType> for String {
    fn from(t: IdentifierType) -> Self {
        t.as_str().to_string()
    }
}

impl fmt::Display for IdentifierType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed identifier value, written `type=value` on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: IdentifierType,
    pub value: String,
}

/// The error for a malformed `type=value` identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identifier {0:?} must be written TYPE=VALUE, e.g. email=ada@example.com")]
pub struct MalformedIdentifier(pub String);

impl FromStr for Identifier {
    type Err = MalformedIdentifier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((kind, value)) if !kind.trim().is_empty() && !value.trim().is_empty() => {
                Ok(Identifier {
                    kind: IdentifierType::from(kind.trim().to_string()),
                    value: value.trim().to_string(),
                })
            }
            _ => Err(MalformedIdentifier(s.to_string())),
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_type_equals_value() {
        let id: Identifier = "email=ada@example.com".parse().unwrap();
        assert_eq!(id.kind, IdentifierType::Email);
        assert_eq!(id.value, "ada@example.com");
        let custom: Identifier = "loyalty_id=L-42".parse().unwrap();
        assert_eq!(custom.kind, IdentifierType::Custom("loyalty_id".into()));
        assert_eq!(custom.to_string(), "loyalty_id=L-42");
        assert!("nonsense".parse::<Identifier>().is_err());
        assert!("email=".parse::<Identifier>().is_err());
    }

    #[test]
    fn serialises_type_by_name() {
        let id: Identifier = "user_id=u1".parse().unwrap();
        assert_eq!(
            serde_json::to_value(&id).unwrap(),
            serde_json::json!({"type": "user_id", "value": "u1"})
        );
    }
}
