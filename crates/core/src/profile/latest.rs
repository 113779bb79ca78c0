//! Statements where the latest wins: a trait's value, a consent, a segment membership.

use std::borrow::Borrow;

use crate::log_time::LogTime;
use crate::small_map::SmallMap;

/// A value stated at a moment.
pub trait Stated {
    fn at(&self) -> LogTime;

    /// Between two statements made at the same moment, the one of higher precedence wins
    /// (a withdrawn consent outranks a given one); log order decides between equals.
    fn precedence(&self) -> u8 {
        0
    }
}

/// Values by key, each the latest statement by event time — then by precedence, then by
/// log order — so events may arrive in any order and two people's maps merge into that
/// of all their events.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "K: serde::Serialize, V: serde::Serialize",
    deserialize = "K: Ord + serde::Deserialize<'de>, V: serde::Deserialize<'de>"
))]
pub struct Latest<K, V>(SmallMap<K, (V, i64)>);

impl<K, V> Default for Latest<K, V> {
    fn default() -> Self {
        Latest(SmallMap::default())
    }
}

impl<K: Ord + Clone, V: Stated> Latest<K, V> {
    /// Takes a statement made by the event at log position `seq`.
    pub fn state<Q>(&mut self, key: &Q, value: V, seq: i64)
    where
        K: Borrow<Q> + for<'q> From<&'q Q>,
        Q: Ord + ?Sized,
    {
        if let Some(value) = self.update(key, value, seq) {
            self.0.insert(K::from(key), (value, seq));
        }
    }

    /// Adds another person's statements (a merge).
    pub fn merge(&mut self, other: Self) {
        for (key, (value, seq)) in other.0.into_pairs() {
            if let Some(value) = self.update(&key, value, seq) {
                self.0.insert(key, (value, seq));
            }
        }
    }

    /// Puts the statement in place of the one held under `key` if it is later; gives it
    /// back when there is none.
    fn update<Q>(&mut self, key: &Q, value: V, seq: i64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let Some((old, old_seq)) = self.0.get_mut(key) else {
            return Some(value);
        };
        if (old.at(), old.precedence(), *old_seq) <= (value.at(), value.precedence(), seq) {
            (*old, *old_seq) = (value, seq);
        }
        None
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.get(key).map(|(v, _)| v)
    }

    /// Every key's latest value, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, (v, _))| (k, v))
    }

    /// The values, by key.
    pub fn into_values(self) -> impl Iterator<Item = (K, V)> {
        self.0.into_pairs().into_iter().map(|(k, (v, _))| (k, v))
    }
}
