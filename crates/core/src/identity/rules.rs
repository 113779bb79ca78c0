//! Identity rules: identifier types, priorities, limits, normalisation, blocked values.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arcstr::ArcStr;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::fields::Fields;
use crate::identifier::{Identifier, IdentifierType};

/// How values of a type are normalised before they are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalisation {
    /// Trimmed only.
    #[default]
    Trim,
    /// Trimmed and lower-cased.
    Lowercase,
    /// Trimmed, lower-cased, and required to look like an address (`a@b.c`).
    Email,
    /// Parsed and written in E.164 (`+393331234567`) with the default region.
    Phone,
}

/// One identifier type, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeRule {
    /// The type's name (`user_id`, `email`, `loyalty_id`, `social:instagram`, ...).
    pub name: String,
    /// Most identifiers of this type one profile may hold; none means no limit.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Count only identifiers first seen within this many days of the event (a limit
    /// such as "three devices a month").
    #[serde(default)]
    pub window_days: Option<u32>,
    #[serde(default)]
    pub normalise: Normalisation,
    /// Extra message paths the type is read from (`traits.loyalty_id`).
    #[serde(default)]
    pub paths: Vec<String>,
}

/// The `[identity]` section of the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Region for phone numbers written without an international prefix (ISO 3166, `IT`).
    #[serde(default = "default_region")]
    pub default_region: String,
    /// Identifier types in priority order, highest first.
    #[serde(default = "default_types")]
    pub types: Vec<TypeRule>,
    /// Values that never identify anyone (compared after normalisation, any type).
    #[serde(default)]
    pub blocked_values: Vec<String>,
    /// Regular expressions of values that never identify anyone.
    #[serde(default)]
    pub blocked_patterns: Vec<String>,
    /// An identifier seen with more than this many distinct identifiers of a
    /// higher-priority type (e.g. one phone with 12 user ids) is flagged and stops
    /// linking.
    #[serde(default = "default_detection")]
    pub flag_after: usize,
    /// Traits that tell people apart: profiles that hold different values of one
    /// (compared trimmed and case-insensitively) are never merged. A family sharing an
    /// e-mail address does not share a first name and a date of birth.
    #[serde(default = "default_distinguishing")]
    pub distinguishing_traits: Vec<String>,
    /// Probabilistic matching of profiles that share no identifier.
    #[serde(default)]
    pub matching: MatchingConfig,
}

/// `[identity.matching]`: which traits to compare, and what to do with a match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingConfig {
    /// Traits compared (latest value of each profile).
    #[serde(default = "default_matching_traits")]
    pub traits: Vec<String>,
    /// At or above this probability, profiles are linked automatically.
    #[serde(default = "default_upper")]
    pub upper: f64,
    /// From this probability up to `upper`, a pair goes to the review queue.
    #[serde(default = "default_lower")]
    pub lower: f64,
}

fn default_matching_traits() -> Vec<String> {
    [
        "firstName",
        "lastName",
        "birthDate",
        "postcode",
        "city",
        "address",
    ]
    .map(String::from)
    .to_vec()
}

fn default_upper() -> f64 {
    0.98
}

fn default_lower() -> f64 {
    0.6
}

impl Default for MatchingConfig {
    fn default() -> Self {
        MatchingConfig {
            traits: default_matching_traits(),
            upper: default_upper(),
            lower: default_lower(),
        }
    }
}

fn default_distinguishing() -> Vec<String> {
    vec!["firstName".into(), "birthDate".into()]
}

fn default_region() -> String {
    "IT".into()
}

fn default_detection() -> usize {
    8
}

fn rule(name: &str, limit: Option<usize>, normalise: Normalisation) -> TypeRule {
    TypeRule {
        name: name.into(),
        limit,
        window_days: None,
        normalise,
        paths: Vec::new(),
    }
}

/// The default priority: a login, an e-mail, a loyalty card, then a phone number (often
/// typed by someone else: a cashier, an agent), devices, cookies.
fn default_types() -> Vec<TypeRule> {
    vec![
        rule("user_id", Some(1), Normalisation::Trim),
        rule("email", Some(5), Normalisation::Email),
        TypeRule {
            paths: vec![
                "traits.loyalty_id".into(),
                "context.traits.loyalty_id".into(),
            ],
            ..rule("loyalty_id", Some(1), Normalisation::Trim)
        },
        rule("phone", Some(3), Normalisation::Phone),
        rule("device_id", Some(10), Normalisation::Trim),
        rule("anonymous_id", Some(100), Normalisation::Trim),
    ]
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            default_region: default_region(),
            types: default_types(),
            blocked_values: Vec::new(),
            blocked_patterns: Vec::new(),
            flag_after: default_detection(),
            distinguishing_traits: default_distinguishing(),
            matching: MatchingConfig::default(),
        }
    }
}

/// Values blocked whatever the config says: placeholders people and systems type.
const BUILT_IN_BLOCKED: [&str; 14] = [
    "",
    "null",
    "nil",
    "none",
    "undefined",
    "0",
    "-1",
    "n/a",
    "na",
    "unknown",
    "anonymous",
    "test@test.com",
    "test@example.com",
    "noreply@example.com",
];

/// Built-in patterns: a value of one repeated digit (`0000000`, `1111111111`) and
/// numbers of all zeros with a prefix (`+390000000`).
const BUILT_IN_PATTERNS: [&str; 2] = [r"^\+?(\d)\1{5,}$", r"^\+?\d{1,3}0{6,}$"];

/// Normalised phone numbers remembered at most.
const PHONE_CACHE_ENTRIES: usize = 100_000;

/// A type's position in the priority order (0 = highest).
pub type TypeIx = u16;

/// Identifier types a configuration may list at most: a type's index is held in one
/// byte of each key (see [`IdKey`]).
pub const MAX_TYPES: usize = 128;

/// A normalised identifier, as the graph keys it: a thin pointer (8 bytes) to one
/// shared allocation of a count and a length (16 bytes), the type's index in one byte
/// and the normalised text. The graph holds one allocation however many times it keeps
/// the identifier (owner, profile, evidence). Compared, ordered and hashed as (type,
/// text): the index byte comes first, so the text order of the whole is that order.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdKey(ArcStr);

/// Keys written or read once each, while [`IdKey::written_once`] or
/// [`IdKey::read_once`] runs on this thread.
enum Once {
    /// Each key written so far (by its address: one shared copy), and its number.
    Writing(HashMap<usize, u32, foldhash::fast::RandomState>),
    /// Each key read so far, by number.
    Reading(Vec<IdKey>),
}

thread_local! {
    static ONCE: RefCell<Option<Once>> = const { RefCell::new(None) };
}

impl IdKey {
    /// The key of `value` (normalised) of the type at `kind` (below [`MAX_TYPES`], as
    /// [`IdentityRules`] guarantees for its types; the index is reduced modulo it).
    pub fn new(kind: TypeIx, value: &str) -> IdKey {
        debug_assert!(usize::from(kind) < MAX_TYPES, "type index {kind}");
        let key = ArcStr::init_with(1 + value.len(), |bytes| {
            bytes[0] = (kind % MAX_TYPES as TypeIx) as u8;
            bytes[1..].copy_from_slice(value.as_bytes());
        });
        IdKey(key.expect("an ASCII byte followed by text is text"))
    }

    /// The type's position in the priority order.
    pub fn kind(&self) -> TypeIx {
        TypeIx::from(self.0.as_bytes()[0])
    }

    /// The normalised text.
    pub fn value(&self) -> &str {
        &self.0.as_str()[1..]
    }

    /// Runs `write` with each key it serialises in a binary format written once: later
    /// places write its number (in the order first written) in place of the text. What
    /// it writes is read back with [`Self::read_once`], each key then shared again by
    /// every place that keeps it, as in a graph built event by event.
    pub fn written_once<R>(write: impl FnOnce() -> R) -> R {
        Self::with_once(Once::Writing(HashMap::default()), write)
    }

    /// Runs `read` over what [`Self::written_once`] wrote.
    pub fn read_once<R>(read: impl FnOnce() -> R) -> R {
        Self::with_once(Once::Reading(Vec::new()), read)
    }

    fn with_once<R>(once: Once, work: impl FnOnce() -> R) -> R {
        struct Done;

        impl Drop for Done {
            fn drop(&mut self) {
                ONCE.with(|once| once.borrow_mut().take());
            }
        }

        ONCE.with(|slot| *slot.borrow_mut() = Some(once));
        let _done = Done;
        work()
    }

    /// The number of this key if [`Self::written_once`] wrote it already; else it is
    /// numbered, to be written.
    fn written_before(&self) -> Option<u32> {
        ONCE.with(|once| match once.borrow_mut().as_mut() {
            Some(Once::Writing(numbers)) => {
                let next = numbers.len() as u32;
                match numbers.entry(self.0.as_ptr() as usize) {
                    std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(next);
                        None
                    }
                }
            }
            _ => None,
        })
    }

    /// The key of `kind` and `text` read, numbered if [`Self::read_once`] runs.
    fn read(kind: TypeIx, text: &str) -> IdKey {
        let key = IdKey::new(kind, text);
        ONCE.with(|once| {
            if let Some(Once::Reading(read)) = once.borrow_mut().as_mut() {
                read.push(key.clone());
            }
        });
        key
    }

    /// The key read before under `number`.
    fn read_before(number: u64) -> Option<IdKey> {
        ONCE.with(|once| match once.borrow().as_ref() {
            Some(Once::Reading(read)) => usize::try_from(number)
                .ok()
                .and_then(|n| read.get(n))
                .cloned(),
            _ => None,
        })
    }
}

impl std::fmt::Debug for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("IdKey")
            .field("kind", &self.kind())
            .field("value", &self.value())
            .finish()
    }
}

/// As the struct `{kind, value}`; in a binary format written by
/// [`IdKey::written_once`], the value of a key written before is its number.
impl serde::Serialize for IdKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        struct Text<'a>(&'a IdKey);

        impl serde::Serialize for Text<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if !s.is_human_readable()
                    && let Some(number) = self.0.written_before()
                {
                    return s.serialize_u32(number);
                }
                s.serialize_str(self.0.value())
            }
        }

        let mut fields = serializer.serialize_struct("IdKey", 2)?;
        fields.serialize_field("kind", &self.kind())?;
        fields.serialize_field("value", &Text(self))?;
        fields.end()
    }
}

impl<'de> serde::Deserialize<'de> for IdKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{DeserializeSeed, Error, MapAccess, SeqAccess, Visitor};

        /// A key's value, of the type it holds: its text, or the number of a key read
        /// before.
        struct Text(TypeIx);

        impl<'de> DeserializeSeed<'de> for Text {
            type Value = IdKey;

            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<IdKey, D::Error> {
                if d.is_human_readable() {
                    d.deserialize_str(self)
                } else {
                    d.deserialize_any(self)
                }
            }
        }

        impl Visitor<'_> for Text {
            type Value = IdKey;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("text, or the number of an identifier written before")
            }

            fn visit_str<E: Error>(self, text: &str) -> Result<IdKey, E> {
                Ok(IdKey::read(self.0, text))
            }

            fn visit_u64<E: Error>(self, number: u64) -> Result<IdKey, E> {
                let key = IdKey::read_before(number).ok_or_else(|| {
                    E::custom(format!("no identifier numbered {number} was read before"))
                })?;
                if key.kind() != self.0 {
                    return Err(E::custom(format!(
                        "identifier {number} was read as type {}, not {}",
                        key.kind(),
                        self.0
                    )));
                }
                Ok(key)
            }
        }

        struct Key;

        impl<'de> Visitor<'de> for Key {
            type Value = IdKey;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an identifier: its type's index and its value")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IdKey, A::Error> {
                let kind = seq
                    .next_element::<TypeIx>()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                seq.next_element_seed(Text(in_range::<A::Error>(kind)?))?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdKey, A::Error> {
                let (mut kind, mut key, mut text) = (None, None, None::<String>);
                while let Some(field) = map.next_key::<String>()? {
                    match (field.as_str(), kind) {
                        ("kind", _) => kind = Some(in_range::<A::Error>(map.next_value()?)?),
                        ("value", Some(kind)) => key = Some(map.next_value_seed(Text(kind))?),
                        ("value", None) => text = Some(map.next_value()?),
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                let kind = kind.ok_or_else(|| A::Error::missing_field("kind"))?;
                match (key, text) {
                    (Some(key), _) => Ok(key),
                    (None, Some(text)) => Ok(IdKey::read(kind, &text)),
                    (None, None) => Err(A::Error::missing_field("value")),
                }
            }
        }

        /// A type's index as a key can hold it.
        fn in_range<E: Error>(kind: TypeIx) -> Result<TypeIx, E> {
            if usize::from(kind) < MAX_TYPES {
                Ok(kind)
            } else {
                Err(E::custom(format!("type index {kind} out of range")))
            }
        }

        deserializer.deserialize_struct("IdKey", &["kind", "value"], Key)
    }
}

/// Why the `[identity]` section cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RulesError {
    #[error("identity type {0:?} is listed twice")]
    DuplicateType(String),
    #[error("identity.blocked_patterns: {pattern:?} is not a valid regular expression: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("identity.default_region {0:?} is not an ISO 3166 region code such as IT or GB")]
    BadRegion(String),
    #[error("identity type {0:?} has a limit of 0; leave the limit out for no limit")]
    ZeroLimit(String),
    #[error("identity.types is empty")]
    NoTypes,
    #[error("identity.types lists {0} types; at most {max} are supported", max = MAX_TYPES)]
    TooManyTypes(usize),
    #[error("identity.matching needs 0 < lower <= upper <= 1 (lower {lower}, upper {upper})")]
    BadThresholds { lower: f64, upper: f64 },
}

/// Validated, ready-to-use identity rules.
#[derive(Debug)]
pub struct IdentityRules {
    pub config: IdentityConfig,
    pub region: phonenumber::country::Id,
    /// The region's calling code (39 for IT).
    calling_code: u16,
    /// Phone numbers already normalised: parsing one costs microseconds, and the same
    /// person's number recurs in many events. Bounded; cleared when full.
    phones: Mutex<HashMap<Box<str>, Option<Box<str>>>>,
    blocked: HashSet<String>,
    patterns: Vec<Regex>,
    /// Where each type's values and each distinguishing trait are read from.
    fields: Fields,
}

impl IdentityRules {
    /// Checks and compiles `config`.
    pub fn new(config: IdentityConfig) -> Result<Arc<Self>, RulesError> {
        if config.types.is_empty() {
            return Err(RulesError::NoTypes);
        }
        if config.types.len() > MAX_TYPES {
            return Err(RulesError::TooManyTypes(config.types.len()));
        }
        let (lower, upper) = (config.matching.lower, config.matching.upper);
        if !(lower > 0.0 && lower <= upper && upper <= 1.0) {
            return Err(RulesError::BadThresholds { lower, upper });
        }
        let mut seen = HashSet::new();
        for t in &config.types {
            if !seen.insert(t.name.as_str()) {
                return Err(RulesError::DuplicateType(t.name.clone()));
            }
            if t.limit == Some(0) {
                return Err(RulesError::ZeroLimit(t.name.clone()));
            }
        }
        let region = config
            .default_region
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| RulesError::BadRegion(config.default_region.clone()))?;
        let calling_code = phonenumber::metadata::DATABASE
            .by_id(config.default_region.to_ascii_uppercase().as_str())
            .map(|m| m.country_code())
            .ok_or_else(|| RulesError::BadRegion(config.default_region.clone()))?;
        let mut patterns = Vec::new();
        for pattern in BUILT_IN_PATTERNS
            .iter()
            .map(|p| p.to_string())
            .chain(config.blocked_patterns.iter().cloned())
        {
            // The regex crate has no back-references; the repeated-digit rule is
            // checked in code, so only other patterns are compiled.
            if pattern == BUILT_IN_PATTERNS[0] {
                continue;
            }
            patterns.push(Regex::new(&pattern).map_err(|e| RulesError::BadPattern {
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?);
        }
        let blocked = BUILT_IN_BLOCKED
            .iter()
            .map(|v| v.to_string())
            .chain(
                config
                    .blocked_values
                    .iter()
                    .map(|v| v.trim().to_lowercase()),
            )
            .collect();
        Ok(Arc::new(IdentityRules {
            fields: Fields::new(&config),
            config,
            region,
            calling_code,
            phones: Mutex::new(HashMap::new()),
            blocked,
            patterns,
        }))
    }

    /// Whether `other` reads identifiers as these rules do: the same types in the same
    /// order, each normalised the same way, in the same default region. Then an
    /// identifier's key (a type's position and a normalised value) means the same under
    /// both, and a graph, a stored decision or a suppression hash made under one holds
    /// under the other; limits, blocked values and flagging may differ.
    pub fn reads_identifiers_as(&self, other: &IdentityRules) -> bool {
        fn shape(rules: &IdentityRules) -> (String, Vec<(&str, Normalisation)>) {
            let types = (rules.config.types.iter())
                .map(|t| (t.name.as_str(), t.normalise))
                .collect();
            (rules.config.default_region.to_ascii_uppercase(), types)
        }
        shape(self) == shape(other)
    }

    /// Rules with the defaults.
    pub fn default_rules() -> Arc<Self> {
        Self::new(IdentityConfig::default()).expect("the default identity rules are valid")
    }

    /// The position of a type in the priority order, if configured.
    pub fn type_index(&self, name: &str) -> Option<TypeIx> {
        self.config
            .types
            .iter()
            .position(|t| t.name == name)
            .map(|i| i as TypeIx)
    }

    /// The rule of a type index.
    pub fn type_rule(&self, kind: TypeIx) -> &TypeRule {
        &self.config.types[kind as usize]
    }

    /// Normalises a raw value of type `kind`; `None` when it is not a usable value.
    pub fn normalise(&self, kind: TypeIx, raw: &str) -> Option<String> {
        self.normalised(kind, raw).map(Cow::into_owned)
    }

    /// [`Self::normalise`], borrowing from `raw` when normalising changes nothing but
    /// surrounding spaces (most values, read from every event).
    pub fn normalised<'a>(&self, kind: TypeIx, raw: &'a str) -> Option<Cow<'a, str>> {
        let trimmed = raw.trim();
        let value = match self.type_rule(kind).normalise {
            Normalisation::Trim => Cow::Borrowed(trimmed),
            Normalisation::Lowercase => lower_case(trimmed),
            Normalisation::Email => {
                let email = lower_case(trimmed);
                let (local, domain) = email.split_once('@')?;
                if local.is_empty() || !domain.contains('.') || email.contains(char::is_whitespace)
                {
                    return None;
                }
                email
            }
            Normalisation::Phone => Cow::Owned(self.normalise_phone(trimmed)?),
        };
        (!value.is_empty()).then_some(value)
    }

    /// Where identifiers and distinguishing traits are read from in an event.
    pub(crate) fn fields(&self) -> &Fields {
        &self.fields
    }

    /// `raw` read as a whole phone number in the default region, in E.164; `None` when
    /// it is not a valid number.
    pub fn phone_number(&self, raw: &str) -> Option<String> {
        self.normalise_phone(raw.trim())
    }

    /// A phone number in E.164, read in the default region. A national number whose
    /// first digits equal the calling code (Italian mobiles starting `393`) can be taken
    /// for an international one; when that reading is invalid, the national one is tried.
    fn normalise_phone(&self, raw: &str) -> Option<String> {
        if let Some(known) = self.phones.lock().ok().and_then(|c| c.get(raw).cloned()) {
            return known.map(String::from);
        }
        let normalised = self.parse_phone(raw);
        if let Ok(mut cache) = self.phones.lock() {
            if cache.len() >= PHONE_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(raw.into(), normalised.as_deref().map(Box::from));
        }
        normalised
    }

    fn parse_phone(&self, raw: &str) -> Option<String> {
        let valid = |text: &str, region| {
            phonenumber::parse(region, text)
                .ok()
                .filter(phonenumber::is_valid)
                .map(|n| n.format().mode(phonenumber::Mode::E164).to_string())
        };
        if let Some(e164) = valid(raw, Some(self.region)) {
            return Some(e164);
        }
        if raw.starts_with('+') || raw.starts_with("00") {
            return None;
        }
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        valid(&format!("+{}{digits}", self.calling_code), None)
    }

    /// Whether a normalised value is blocked by the built-in list, the config or a pattern.
    pub fn is_blocked(&self, value: &str) -> bool {
        self.blocked.contains(&*lower_case(value))
            || is_repeated_digit(value)
            || self.patterns.iter().any(|p| p.is_match(value))
    }

    /// The key of an API identifier (`email=Ada@Example.com`), normalised; `None` when
    /// its type is not configured or its value is not usable.
    pub fn key_of(&self, identifier: &Identifier) -> Option<IdKey> {
        let kind = self.type_index(identifier.kind.as_str())?;
        let value = self.normalise(kind, &identifier.value)?;
        Some(IdKey::new(kind, &value))
    }

    /// The API form of a key.
    pub fn identifier_of(&self, key: &IdKey) -> Identifier {
        Identifier {
            kind: IdentifierType::from(self.type_rule(key.kind()).name.clone()),
            value: key.value().to_string(),
        }
    }
}

/// `text` lower-cased, borrowed when it has nothing to lower (`str::to_lowercase`
/// otherwise, so the result is the same).
pub(crate) fn lower_case(text: &str) -> Cow<'_, str> {
    let unchanged = if text.is_ascii() {
        !text.bytes().any(|b| b.is_ascii_uppercase())
    } else {
        text.chars().all(|c| {
            let mut lower = c.to_lowercase();
            lower.next() == Some(c) && lower.next().is_none()
        })
    };
    if unchanged {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

/// `0000000`, `+39 3333333333`: one digit repeated, with an optional `+`.
fn is_repeated_digit(value: &str) -> bool {
    let digits = value.strip_prefix('+').unwrap_or(value);
    let mut chars = digits.chars();
    match chars.next() {
        Some(first) if first.is_ascii_digit() => digits.len() >= 6 && chars.all(|c| c == first),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Borrowing when nothing changes gives what `str::to_lowercase` gives.
        #[test]
        fn lower_case_is_to_lowercase(text in "\\PC{0,12}|[a-zA-Z@. ]{0,12}") {
            proptest::prop_assert_eq!(lower_case(&text), text.to_lowercase());
        }
    }

    #[test]
    fn lower_case_borrows_only_what_is_already_lower() {
        for (text, borrowed) in [
            ("ada@x.it", true),
            ("Ada@x.it", false),
            ("ǆ", true),
            ("ǅ", false),
            ("straße", true),
            ("ΣΑ", false),
        ] {
            assert_eq!(lower_case(text), text.to_lowercase());
            assert_eq!(
                matches!(lower_case(text), Cow::Borrowed(_)),
                borrowed,
                "{text}"
            );
        }
    }

    #[test]
    fn a_key_is_written_once_and_read_back_shared() {
        let email = IdKey::new(1, "ada@example.com");
        let phone = IdKey::new(2, "+393471234567");
        assert_eq!((email.kind(), email.value()), (1, "ada@example.com"));
        assert_eq!(size_of::<IdKey>(), 8);
        let places = vec![
            email.clone(),
            phone.clone(),
            email.clone(),
            email.clone(),
            phone,
        ];
        let plain = rmp_serde::to_vec(&places).unwrap();
        let once = IdKey::written_once(|| rmp_serde::to_vec(&places)).unwrap();
        assert!(
            once.len() + 2 * email.value().len() < plain.len(),
            "{once:?}"
        );

        let read: Vec<IdKey> = IdKey::read_once(|| rmp_serde::from_slice(&once)).unwrap();
        assert_eq!(read, places);
        assert!(ArcStr::ptr_eq(&read[0].0, &read[2].0) && ArcStr::ptr_eq(&read[0].0, &read[3].0));
        assert!(ArcStr::ptr_eq(&read[1].0, &read[4].0));
        // Outside `read_once` a number means nothing: refused, not guessed.
        assert!(rmp_serde::from_slice::<Vec<IdKey>>(&once).is_err());
        // Plain keys read back as they always did; JSON is the struct it always was.
        assert_eq!(rmp_serde::from_slice::<Vec<IdKey>>(&plain).unwrap(), places);
        let json = IdKey::written_once(|| serde_json::to_string(&places)).unwrap();
        assert_eq!(json, serde_json::to_string(&places).unwrap());
        assert!(
            json.starts_with(r#"[{"kind":1,"value":"ada@example.com"}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Vec<IdKey>>(&json).unwrap(), places);
    }

    #[test]
    fn more_types_than_a_key_can_hold_are_refused() {
        let mut config = IdentityConfig::default();
        let template = config.types[0].clone();
        config.types = (0..=MAX_TYPES)
            .map(|i| TypeRule {
                name: format!("type_{i}"),
                ..template.clone()
            })
            .collect();
        assert_eq!(
            IdentityRules::new(config.clone()).err(),
            Some(RulesError::TooManyTypes(MAX_TYPES + 1))
        );
        config.types.pop();
        assert!(
            IdentityRules::new(config).is_ok(),
            "{MAX_TYPES} types are fine"
        );
    }

    #[test]
    fn keys_order_by_type_then_text() {
        let mut keys = [
            IdKey::new(2, "a"),
            IdKey::new(1, "zz"),
            IdKey::new(1, "z"),
            IdKey::new(0, "~"),
        ];
        keys.sort();
        let pairs: Vec<(TypeIx, &str)> = keys.iter().map(|k| (k.kind(), k.value())).collect();
        assert_eq!(pairs, [(0, "~"), (1, "z"), (1, "zz"), (2, "a")]);
    }

    #[test]
    fn values_are_normalised_per_type() {
        let rules = IdentityRules::default_rules();
        let email = rules.type_index("email").unwrap();
        let phone = rules.type_index("phone").unwrap();
        assert_eq!(
            rules.normalise(email, "  Ada.Lovelace@Example.COM "),
            Some("ada.lovelace@example.com".into())
        );
        assert_eq!(rules.normalise(email, "not an email"), None);
        assert_eq!(
            rules.normalise(phone, "333 123 4567"),
            Some("+393331234567".into())
        );
        assert_eq!(
            rules.normalise(phone, "+39 333-123-4567"),
            Some("+393331234567".into())
        );
        assert_eq!(
            rules.normalise(phone, "0039 333 1234567"),
            Some("+393331234567".into())
        );
        assert_eq!(
            rules.normalise(phone, "+44 20 7946 0018"),
            Some("+442079460018".into())
        );
        assert_eq!(rules.normalise(phone, "12"), None);
        // A mobile that starts with the calling code is still read as national.
        assert_eq!(
            rules.normalise(phone, "393 1234567"),
            Some("+393931234567".into())
        );
        assert_eq!(
            rules.normalise(phone, "+39 393 1234567"),
            Some("+393931234567".into())
        );
    }

    #[test]
    fn placeholders_are_blocked() {
        let rules = IdentityRules::new(IdentityConfig {
            blocked_values: vec!["+390612345678".into()],
            blocked_patterns: vec!["^guest-".into()],
            ..IdentityConfig::default()
        })
        .unwrap();
        for v in [
            "null",
            "NULL",
            "0",
            "-1",
            "anonymous",
            "test@test.com",
            "0000000",
            "+39000000000",
            "1111111111",
            "+390612345678",
            "guest-42",
        ] {
            assert!(rules.is_blocked(v), "{v} should be blocked");
        }
        for v in ["ada@example.com", "+393331234567", "cust-00042", "1234567"] {
            assert!(!rules.is_blocked(v), "{v} should not be blocked");
        }
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let bad = |config: IdentityConfig| IdentityRules::new(config).unwrap_err().to_string();
        assert!(
            bad(IdentityConfig {
                blocked_patterns: vec!["(".into()],
                ..Default::default()
            })
            .contains("not a valid regular expression")
        );
        assert!(
            bad(IdentityConfig {
                default_region: "Italy".into(),
                ..Default::default()
            })
            .contains("ISO 3166")
        );
        let mut types = default_types();
        types.push(rule("email", None, Normalisation::Email));
        assert!(
            bad(IdentityConfig {
                types,
                ..Default::default()
            })
            .contains("twice")
        );
    }
}
