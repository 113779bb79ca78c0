//! Small collections held once per person (a profile's traits, channels, consents,
//! identifiers), grown snugly.
//!
//! A `Vec` grows from nothing to room for four, then doubles: a person with one
//! channel holds room for four, and the spare room, over millions of people, was a
//! quarter of what the projections held. These grow one slot at a time while small,
//! then by a quarter (so growing stays amortised O(1)). A [`SmallMap`], and the boxed
//! lists grown with [`insert_exact`] and its kin, hold exactly their entries.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Makes room in `list` for one more item, snugly (see the module docs).
fn make_room<T>(list: &mut Vec<T>) {
    if list.len() == list.capacity() {
        list.reserve_exact((list.len() / 4).max(1));
    }
}

/// Pushes `item`, growing `list` snugly.
pub fn push_snug<T>(list: &mut Vec<T>, item: T) {
    make_room(list);
    list.push(item);
}

/// A map kept as a slice sorted by key, exactly its entries long: for the few entries a
/// person holds, in 16 bytes and no spare room (an insert moves the entries after it,
/// as in any sorted vector, and grows the slice by one). Serialised as a map in binary
/// formats, as a list of pairs in human-readable ones (whose maps take only text keys).
#[derive(Debug, Clone, PartialEq)]
pub struct SmallMap<K, V>(Box<[(K, V)]>);

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap(Box::default())
    }
}

/// Pushes `item` onto `list`, the list grown by exactly one.
pub fn push_exact<T>(list: &mut Box<[T]>, item: T) {
    let at = list.len();
    insert_exact(list, at, item);
}

/// Appends `items` to `list`, the list grown by exactly their number.
pub fn extend_exact<T>(list: &mut Box<[T]>, items: Box<[T]>) {
    if items.is_empty() {
        return;
    }
    let mut all = std::mem::take(list).into_vec();
    all.reserve_exact(items.len());
    all.extend(items);
    *list = all.into_boxed_slice();
}

/// Puts `item` at `i` in `list`, the list grown by exactly one.
pub fn insert_exact<T>(list: &mut Box<[T]>, i: usize, item: T) {
    let mut items = std::mem::take(list).into_vec();
    items.reserve_exact(1);
    items.insert(i, item);
    *list = items.into_boxed_slice();
}

impl<K: Ord, V> SmallMap<K, V> {
    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    /// The value under `key`, to change.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    /// Puts `value` under `key`, giving back the value it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                insert_exact(&mut self.0, i, (key, value));
                None
            }
        }
    }

    /// The value under `key`, a default one put there first when there is none.
    pub fn or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                insert_exact(&mut self.0, i, (key, V::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// The entries, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The entries, by key, to keep.
    pub fn into_pairs(self) -> Vec<(K, V)> {
        self.0.into_vec()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// The map of `entries`, written sorted; sorted again (a later duplicate wins) if not.
    fn from_entries(mut entries: Vec<(K, V)>) -> Self {
        if !entries.is_sorted_by(|(a, _), (b, _)| a < b) {
            entries.sort_by(|(a, _), (b, _)| a.cmp(b));
            entries.reverse();
            entries.dedup_by(|(a, _), (b, _)| a == b);
            entries.reverse();
        }
        SmallMap(entries.into_boxed_slice())
    }
}

impl<K: Serialize, V: Serialize> Serialize for SmallMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return serializer.collect_seq(self.0.iter());
        }
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for SmallMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);

        impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Entries<K, V> {
            type Value = SmallMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map, or a list of pairs")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                // The size hint is the map's length in binary formats: exact room.
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(1024));
                while let Some(entry) = access.next_entry()? {
                    entries.push(entry);
                }
                Ok(SmallMap::from_entries(entries))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(1024));
                while let Some(entry) = access.next_element()? {
                    entries.push(entry);
                }
                Ok(SmallMap::from_entries(entries))
            }
        }

        if deserializer.is_human_readable() {
            deserializer.deserialize_seq(Entries(PhantomData))
        } else {
            deserializer.deserialize_map(Entries(PhantomData))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_one_slot_at_a_time_while_small_then_by_a_quarter() {
        let mut list = Vec::new();
        for i in 0..8 {
            push_snug(&mut list, i);
            assert_eq!(list.capacity(), i + 1);
        }
        for i in 8..1000 {
            push_snug(&mut list, i);
            assert!(list.capacity() <= list.len() + list.len() / 4 + 1);
        }
        assert_eq!(list, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn keeps_entries_by_key_and_reads_back_as_a_map() {
        let mut map = SmallMap::default();
        assert_eq!(map.insert("web".to_string(), 1), None);
        *map.or_default("email".to_string()) += 2;
        *map.or_default("web".to_string()) += 3;
        assert_eq!(map.insert("sms".to_string(), 5), None);
        assert_eq!(map.insert("sms".to_string(), 6), Some(5));
        assert_eq!(map.get("web"), Some(&4));
        assert_eq!(map.get("phone"), None);
        let keys: Vec<&String> = map.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["email", "sms", "web"]);
        assert_eq!(size_of::<SmallMap<String, i32>>(), 16);

        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, r#"[["email",2],["sms",6],["web",4]]"#);
        assert_eq!(
            serde_json::from_str::<SmallMap<String, i32>>(&json).unwrap(),
            map
        );
        // Out of order, with a duplicate: sorted, the later value kept.
        let read: SmallMap<String, i32> =
            serde_json::from_str(r#"[["web",1],["email",2],["web",4],["sms",6]]"#).unwrap();
        assert_eq!(read, map);
        // Binary formats: a map, as before.
        let packed = rmp_serde::to_vec(&map).unwrap();
        let as_map: std::collections::BTreeMap<String, i32> =
            rmp_serde::from_slice(&packed).unwrap();
        assert_eq!(as_map.len(), 3);
        assert_eq!(
            rmp_serde::from_slice::<SmallMap<String, i32>>(&packed).unwrap(),
            map
        );
    }
}
