//! A resource's attributes, kept compact.
//!
//! A large estate holds tens of thousands of resources for a whole run (10,000 IAM users, the
//! people of the roster, their joined accounts…), each with ten to twenty attributes. As a
//! `serde_json::Map` (a B-tree of `String` keys) one resource costs 2–3 KiB before its values;
//! here it is one boxed slice of (name, value) pairs sorted by name, the names interned and
//! shared by every resource: 48 bytes an attribute. Lookups are binary searches.
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

/// Attribute values by name (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(Box<[(Arc<str>, Value)]>);

impl Attributes {
    pub fn new() -> Attributes {
        Attributes::default()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        match self.find(name) {
            Ok(i) => Some(&mut self.0[i].1),
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
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                let mut pairs = std::mem::take(&mut self.0).into_vec();
                pairs.insert(i, (intern(name), value));
                self.0 = pairs.into_boxed_slice();
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (name, value) pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl From<serde_json::Map<String, Value>> for Attributes {
    fn from(map: serde_json::Map<String, Value>) -> Attributes {
        // A `Map` iterates in key order: already sorted.
        Attributes(map.into_iter().map(|(k, v)| (intern(&k), v)).collect())
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Attributes {
        let mut pairs: Vec<(Arc<str>, Value)> = iter
            .into_iter()
            .map(|(k, v)| (intern(k.as_ref()), v))
            .collect();
        // The last value of a repeated name wins, as with a map.
        pairs.reverse();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| later.0 == earlier.0);
        Attributes(pairs.into_boxed_slice())
    }
}

impl<K: AsRef<str>> Extend<(K, Value)> for Attributes {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        let mine = std::mem::take(&mut self.0).into_vec();
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
        self.0.into_vec().into_iter()
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
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
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
        let one: Attributes = [("shared_name", json!(1))].into_iter().collect();
        let two: Attributes = [("shared_name", json!(2))].into_iter().collect();
        assert!(Arc::ptr_eq(&one.0[0].0, &two.0[0].0));
    }
}
