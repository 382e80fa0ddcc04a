//! A resource's attributes, kept compact.
//!
//! A large estate holds tens of thousands of resources at once (10,000 IAM users, the people
//! of the roster, their joined accounts…), each with ten to twenty attributes. As a
//! `serde_json::Map` (a B-tree of `String` keys) one resource costs 2–3 KiB before its values.
//! Here a resource holds its values in one boxed slice, in the order of its names, and the
//! sorted list of names is interned: every resource with the same names (every resource of a
//! probe, as a rule) shares one list. 32 bytes an attribute; lookups are binary searches.
//!
//! The API is the part of `serde_json::Map` the probes and the evaluator use, and it
//! serializes as the same JSON object (keys in sorted order, as `Map` does).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use serde::ser::SerializeMap;
use serde_json::Value;

/// Attribute names, shared (a run's resources use a few hundred names between them).
fn intern(name: &str) -> Arc<str> {
    static NAMES: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(found) = names.get(name) {
        return found.clone();
    }
    let new: Arc<str> = Arc::from(name);
    names.insert(new.clone());
    new
}

/// Sorts (key, value) pairs by key, keeping the last value of a repeated key, as collecting
/// them into a map would.
pub(crate) fn sort_last_wins<K: Ord, V>(pairs: &mut Vec<(K, V)>) {
    pairs.reverse();
    // Stable: of a repeated key, the last given comes first and is the one kept.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.dedup_by(|later, earlier| later.0 == earlier.0);
}

/// A sorted list of attribute names, shared by every resource that has exactly these names
/// (there are as many lists as shapes of resource: a few per probe).
type Names = Arc<[Arc<str>]>;

fn intern_names(names: &[Arc<str>]) -> Names {
    static LISTS: OnceLock<Mutex<HashSet<Names>>> = OnceLock::new();
    let mut lists = LISTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(found) = lists.get(names) {
        return found.clone();
    }
    let new: Names = Arc::from(names);
    lists.insert(new.clone());
    new
}

/// Attribute values by name (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Attributes {
    /// Sorted, interned.
    names: Names,
    /// `values[i]` is the value of `names[i]`.
    values: Box<[Value]>,
}

impl Default for Attributes {
    fn default() -> Attributes {
        Attributes {
            names: intern_names(&[]),
            values: Box::default(),
        }
    }
}

impl Attributes {
    pub fn new() -> Attributes {
        Attributes::default()
    }

    /// From (name, value) pairs sorted by name, without repeats.
    fn from_sorted(pairs: Vec<(Arc<str>, Value)>) -> Attributes {
        let (names, values): (Vec<Arc<str>>, Vec<Value>) = pairs.into_iter().unzip();
        Attributes {
            names: intern_names(&names),
            values: values.into_boxed_slice(),
        }
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|k| k.as_ref().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.find(name).ok().map(|i| &self.values[i])
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        match self.find(name) {
            Ok(i) => Some(&mut self.values[i]),
            Err(_) => None,
        }
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `value`; returns the value it replaces.
    pub fn insert(&mut self, name: String, value: Value) -> Option<Value> {
        let name = name.as_str();
        match self.find(name) {
            Ok(i) => Some(std::mem::replace(&mut self.values[i], value)),
            Err(i) => {
                let mut names = self.names.to_vec();
                names.insert(i, intern(name));
                let mut values = std::mem::take(&mut self.values).into_vec();
                values.insert(i, value);
                self.names = intern_names(&names);
                self.values = values.into_boxed_slice();
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// (name, value) pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.names.iter().map(AsRef::as_ref).zip(self.values.iter())
    }
}

impl From<serde_json::Map<String, Value>> for Attributes {
    fn from(map: serde_json::Map<String, Value>) -> Attributes {
        // A `Map` iterates in key order: already sorted.
        Attributes::from_sorted(map.into_iter().map(|(k, v)| (intern(&k), v)).collect())
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Attributes {
        let mut pairs: Vec<(Arc<str>, Value)> = iter
            .into_iter()
            .map(|(k, v)| (intern(k.as_ref()), v))
            .collect();
        sort_last_wins(&mut pairs);
        Attributes::from_sorted(pairs)
    }
}

impl<K: AsRef<str>> Extend<(K, Value)> for Attributes {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        let mine = std::mem::take(self);
        *self = mine
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(iter.into_iter().map(|(k, v)| (k.as_ref().to_string(), v)))
            .collect();
    }
}

impl IntoIterator for Attributes {
    type Item = (Arc<str>, Value);
    type IntoIter = std::vec::IntoIter<(Arc<str>, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.names
            .iter()
            .cloned()
            .zip(self.values.into_vec())
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl std::ops::Index<&str> for Attributes {
    type Output = Value;

    /// `Value::Null` for a name that is not there, as `serde_json::Map` indexing through a
    /// `Value` does.
    fn index(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(name).unwrap_or(&NULL)
    }
}

impl serde::Serialize for Attributes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn behaves_like_the_json_object_it_came_from() {
        let map = json!({"zeta": 1, "alpha": [true], "mid": null})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut a = Attributes::from(map.clone());
        assert_eq!(serde_json::to_value(&a).ok(), Some(Value::Object(map)));
        let keys = |a: &Attributes| a.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>();
        assert_eq!(keys(&a), ["alpha", "mid", "zeta"]);
        assert_eq!(a.get("zeta"), Some(&json!(1)));
        assert_eq!(a["missing"], Value::Null);
        assert!(a.contains_key("mid") && !a.contains_key("nope"));
        assert_eq!(a.insert("beta".into(), json!("b")), None);
        assert_eq!(a.insert("zeta".into(), json!(2)), Some(json!(1)));
        assert_eq!(keys(&a), ["alpha", "beta", "mid", "zeta"]);
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn collected_pairs_are_sorted_and_the_last_repeat_wins() {
        let a: Attributes = [("b", json!(1)), ("a", json!(2)), ("b", json!(3))]
            .into_iter()
            .collect();
        assert_eq!(
            a.iter().map(|(k, v)| (k, v.clone())).collect::<Vec<_>>(),
            [("a", json!(2)), ("b", json!(3))]
        );
    }

    #[test]
    fn names_are_shared_between_resources() {
        let one: Attributes = [("shared_name", json!(1)), ("other", json!(0))]
            .into_iter()
            .collect();
        let two: Attributes = [("other", json!(2)), ("shared_name", json!(3))]
            .into_iter()
            .collect();
        // One list of names for both, and each name's text once.
        assert!(Arc::ptr_eq(&one.names, &two.names));
        let three: Attributes = [("shared_name", json!(4))].into_iter().collect();
        assert!(Arc::ptr_eq(&one.names[1], &three.names[0]));
        assert_eq!(two.get("shared_name"), Some(&json!(3)));
        // A resource given a name of its own gets a list of its own; the others keep theirs.
        let mut four = two.clone();
        four.insert("extra".into(), json!(true));
        assert!(!Arc::ptr_eq(&four.names, &two.names));
        assert_eq!(two.len(), 2);
        assert_eq!(four.len(), 3);
        assert_eq!(four.get("shared_name"), Some(&json!(3)));
        let mut extended = two.clone();
        extended.extend([("extra", json!(true))]);
        assert_eq!(extended, four);
        assert_eq!(
            extended
                .into_iter()
                .map(|(k, _)| k.to_string())
                .collect::<Vec<_>>(),
            ["extra", "other", "shared_name"]
        );
    }
}
