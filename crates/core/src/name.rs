//! Names that recur across people — channels, trait names, touchpoints, sources — held
//! once in the process and shared.
//!
//! A profile's state names things: the channels it was reached on, its traits and where
//! each was said. Held as a `String` each, every person paid for their own copy (24
//! bytes and an allocation); a [`Name`] is a shared pointer to one copy, 8 bytes (a
//! thin pointer: the count and the text's length live with the text). The names come
//! from outside (any sender can make up a trait name), so the process keeps at most
//! [`KEPT`] of them, none longer than [`LONGEST`] bytes; past that a name is still
//! correct, only not shared.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use serde::de::{Error, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Distinct names the process shares at most.
pub const KEPT: usize = 65_536;

/// The longest name shared, in bytes (a longer one is rarely a name that recurs).
pub const LONGEST: usize = 64;

static NAMES: LazyLock<Mutex<HashSet<Name, foldhash::quality::RandomState>>> =
    LazyLock::new(Mutex::default);

/// A shared name. Compared, ordered and hashed as its text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<Box<str>>);

impl Name {
    /// The shared copy of `text`.
    pub fn new(text: &str) -> Name {
        let name = || Name(Arc::new(Box::from(text)));
        if text.len() > LONGEST {
            return name();
        }
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = names.get(text) {
            return shared.clone();
        }
        let name = name();
        if names.len() < KEPT {
            names.insert(name.clone());
        }
        name
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// Hashed and compared as its text (the derived `Hash` hashes the text alone), so the
/// set of shared names is looked up by `&str`.
impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Name {
        Name::new(text)
    }
}

impl From<&Name> for Name {
    fn from(name: &Name) -> Name {
        name.clone()
    }
}

impl From<&String> for Name {
    fn from(text: &String) -> Name {
        Name::new(text)
    }
}

impl From<String> for Name {
    fn from(text: String) -> Name {
        Name::new(&text)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        **self.0 == *other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        **self.0 == **other
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Debug::fmt(&**self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
        struct Text;

        impl Visitor<'_> for Text {
            type Value = Name;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name")
            }

            fn visit_str<E: Error>(self, text: &str) -> Result<Name, E> {
                Ok(Name::new(text))
            }
        }

        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_is_one_copy() {
        assert_eq!(size_of::<Name>(), 8);
        assert_eq!(size_of::<Option<Name>>(), 8);
        let a = Name::new("preferred_channel");
        let b: Name = "preferred_channel".to_string().into();
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "preferred_channel");
        assert!(Name::new("email") < Name::new("web"));
        // Too long to be a recurring name: equal, not shared.
        let long = "x".repeat(LONGEST + 1);
        let (c, d) = (Name::new(&long), Name::new(&long));
        assert_eq!(c, d);
        assert!(!Arc::ptr_eq(&c.0, &d.0));
    }

    #[test]
    fn reads_back_as_the_shared_copy() {
        let a = Name::new("web-shop");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#""web-shop""#);
        let b: Name = serde_json::from_str(&json).unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0));
    }
}
