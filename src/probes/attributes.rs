//! A resource's attributes, kept compact.
//!
//! A large estate holds tens of thousands of resources at once (10,000 IAM users, the people
//! of the roster, their joined accounts…), each with ten to twenty attributes. As a
//! `serde_json::Map` (a B-tree of `String` keys) one resource costs 2–3 KiB before its values.
//! Here a resource holds its values in one boxed slice, in the order of its names, and the
//! sorted list of names is interned: every resource with the same names (every resource of a
//! probe, as a rule) shares one list. Lookups are binary searches.
//!
//! The values are [`AttrValue`]s, not `serde_json::Value`s: 24 bytes instead of 32, a map is
//! a sorted slice of pairs (a one-tag map was a ~640-byte B-tree leaf), and short strings —
//! the repeated ones: account ids, tag keys and values, enumerations, dates — are shared
//! through a pool instead of copied into every resource.
//!
//! The API is the part of `serde_json::Map` the probes and the evaluator use, and it
//! serializes as the same JSON object (keys in sorted order, as `Map` does).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use serde::ser::{SerializeMap, SerializeSeq};
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

/// Strings up to this long are shared through the [`Pool`]; longer ones (ARNs, names with
/// their context, sentences) are nearly always unique and are held on their own.
const SHARED_MAX: usize = 32;

/// Shared strings. Unlike attribute names, values are data: the pool lets go of the strings
/// no resource holds any more whenever it has doubled since it last did, so it stays within
/// about twice what is in use, however long `serve` runs.
#[derive(Default)]
struct Pool {
    strings: HashSet<Arc<str>>,
    prune_at: usize,
}

impl Pool {
    /// The pool is not pruned below this many strings.
    const MIN: usize = 4096;

    fn share(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.strings.get(s) {
            return found.clone();
        }
        if self.strings.len() >= self.prune_at.max(Pool::MIN) {
            self.strings.retain(|s| Arc::strong_count(s) > 1);
            if self.strings.capacity() > 4 * self.strings.len() {
                self.strings.shrink_to_fit();
            }
            self.prune_at = 2 * self.strings.len();
        }
        let new: Arc<str> = Arc::from(s);
        self.strings.insert(new.clone());
        new
    }
}

fn share(s: &str) -> Arc<str> {
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    POOL.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .share(s)
}

fn text(s: String) -> Arc<str> {
    if s.len() <= SHARED_MAX {
        share(&s)
    } else {
        Arc::from(s)
    }
}

/// One attribute's value: what a JSON value can be (see the module docs).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AttrValue {
    #[default]
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Arc<str>),
    Array(Box<[AttrValue]>),
    /// Sorted by key, without repeats.
    Object(Box<[(Arc<str>, AttrValue)]>),
}

impl AttrValue {
    pub fn is_null(&self) -> bool {
        matches!(self, AttrValue::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[AttrValue]> {
        match self {
            AttrValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value of `key` in a map.
    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        match self {
            AttrValue::Object(pairs) => pairs
                .binary_search_by(|(k, _)| k.as_ref().cmp(key))
                .ok()
                .map(|i| &pairs[i].1),
            _ => None,
        }
    }

    /// The same value as a `serde_json::Value`.
    pub fn to_json(&self) -> Value {
        match self {
            AttrValue::Null => Value::Null,
            AttrValue::Bool(b) => Value::Bool(*b),
            AttrValue::Number(n) => Value::Number(n.clone()),
            AttrValue::String(s) => Value::String(s.to_string()),
            AttrValue::Array(a) => Value::Array(a.iter().map(AttrValue::to_json).collect()),
            AttrValue::Object(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

static NULL: AttrValue = AttrValue::Null;

/// `Null` for a key that is not there or a value that is not a map, as indexing a
/// `serde_json::Value` does.
impl std::ops::Index<&str> for AttrValue {
    type Output = AttrValue;

    fn index(&self, key: &str) -> &AttrValue {
        self.get(key).unwrap_or(&NULL)
    }
}

/// `Null` past the end or for a value that is not a list, as indexing a `serde_json::Value`
/// does.
impl std::ops::Index<usize> for AttrValue {
    type Output = AttrValue;

    fn index(&self, i: usize) -> &AttrValue {
        self.as_array().and_then(|a| a.get(i)).unwrap_or(&NULL)
    }
}

impl From<Value> for AttrValue {
    fn from(v: Value) -> AttrValue {
        match v {
            Value::Null => AttrValue::Null,
            Value::Bool(b) => AttrValue::Bool(b),
            Value::Number(n) => AttrValue::Number(n),
            Value::String(s) => AttrValue::String(text(s)),
            Value::Array(a) => AttrValue::Array(a.into_iter().map(AttrValue::from).collect()),
            // A `Map` iterates in key order: already sorted. Keys (tag keys…) repeat between
            // resources as names do, so they are shared whatever their length.
            Value::Object(m) => AttrValue::Object(
                m.into_iter()
                    .map(|(k, v)| (share(&k), AttrValue::from(v)))
                    .collect(),
            ),
        }
    }
}

/// Compares with the JSON value it stands for, without building one.
impl PartialEq<Value> for AttrValue {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (AttrValue::Null, Value::Null) => true,
            (AttrValue::Bool(a), Value::Bool(b)) => a == b,
            (AttrValue::Number(a), Value::Number(b)) => a == b,
            (AttrValue::String(a), Value::String(b)) => **a == **b,
            (AttrValue::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
            }
            (AttrValue::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.get(k.as_ref()).is_some_and(|w| v == w))
            }
            _ => false,
        }
    }
}

// Comparisons with plain values, as `serde_json::Value` has them.
impl PartialEq<bool> for AttrValue {
    fn eq(&self, other: &bool) -> bool {
        self.as_bool() == Some(*other)
    }
}

impl PartialEq<str> for AttrValue {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for AttrValue {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<String> for AttrValue {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == Some(other.as_str())
    }
}

macro_rules! eq_number {
    ($($t:ty => $as:ident as $wide:ty),*) => {$(
        impl PartialEq<$t> for AttrValue {
            fn eq(&self, other: &$t) -> bool {
                match self {
                    AttrValue::Number(n) => n.$as() == Some(*other as $wide),
                    _ => false,
                }
            }
        }
    )*};
}
eq_number!(i32 => as_i64 as i64, i64 => as_i64 as i64, u32 => as_u64 as u64,
    u64 => as_u64 as u64, usize => as_u64 as u64, f64 => as_f64 as f64);

impl serde::Serialize for AttrValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AttrValue::Null => serializer.serialize_unit(),
            AttrValue::Bool(b) => serializer.serialize_bool(*b),
            AttrValue::Number(n) => n.serialize(serializer),
            AttrValue::String(s) => serializer.serialize_str(s),
            AttrValue::Array(a) => {
                let mut seq = serializer.serialize_seq(Some(a.len()))?;
                for v in a.iter() {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            AttrValue::Object(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs.iter() {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
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
    values: Box<[AttrValue]>,
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
    fn from_sorted(pairs: Vec<(Arc<str>, AttrValue)>) -> Attributes {
        let (names, values): (Vec<Arc<str>>, Vec<AttrValue>) = pairs.into_iter().unzip();
        Attributes {
            names: intern_names(&names),
            values: values.into_boxed_slice(),
        }
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|k| k.as_ref().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.find(name).ok().map(|i| &self.values[i])
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `value`; returns the value it replaces.
    pub fn insert(&mut self, name: String, value: impl Into<AttrValue>) -> Option<AttrValue> {
        let name = name.as_str();
        let value = value.into();
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
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AttrValue)> {
        self.names.iter().map(AsRef::as_ref).zip(self.values.iter())
    }
}

impl From<serde_json::Map<String, Value>> for Attributes {
    fn from(map: serde_json::Map<String, Value>) -> Attributes {
        // A `Map` iterates in key order: already sorted.
        Attributes::from_sorted(
            map.into_iter()
                .map(|(k, v)| (intern(&k), AttrValue::from(v)))
                .collect(),
        )
    }
}

impl<K: AsRef<str>, V: Into<AttrValue>> FromIterator<(K, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Attributes {
        let mut pairs: Vec<(Arc<str>, AttrValue)> = iter
            .into_iter()
            .map(|(k, v)| (intern(k.as_ref()), v.into()))
            .collect();
        sort_last_wins(&mut pairs);
        Attributes::from_sorted(pairs)
    }
}

impl<K: AsRef<str>, V: Into<AttrValue>> Extend<(K, V)> for Attributes {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let mine = std::mem::take(self);
        *self = mine
            .into_iter()
            .chain(
                iter.into_iter()
                    .map(|(k, v)| (intern(k.as_ref()), v.into())),
            )
            .collect();
    }
}

impl IntoIterator for Attributes {
    type Item = (Arc<str>, AttrValue);
    type IntoIter = std::vec::IntoIter<(Arc<str>, AttrValue)>;

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
    type Output = AttrValue;

    /// `Null` for a name that is not there, as `serde_json::Map` indexing through a `Value`
    /// does.
    fn index(&self, name: &str) -> &AttrValue {
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
        assert_eq!(a["zeta"], json!(1));
        assert_eq!(a["missing"], Value::Null);
        assert!(a.contains_key("mid") && !a.contains_key("nope"));
        assert_eq!(a.insert("beta".into(), json!("b")), None);
        assert_eq!(a.insert("zeta".into(), json!(2)), Some(json!(1).into()));
        assert_eq!(keys(&a), ["alpha", "beta", "mid", "zeta"]);
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn collected_pairs_are_sorted_and_the_last_repeat_wins() {
        let a: Attributes = [("b", json!(1)), ("a", json!(2)), ("b", json!(3))]
            .into_iter()
            .collect();
        assert_eq!(
            a.iter().map(|(k, v)| (k, v.to_json())).collect::<Vec<_>>(),
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
        assert_eq!(two["shared_name"], json!(3));
        // A resource given a name of its own gets a list of its own; the others keep theirs.
        let mut four = two.clone();
        four.insert("extra".into(), json!(true));
        assert!(!Arc::ptr_eq(&four.names, &two.names));
        assert_eq!(two.len(), 2);
        assert_eq!(four.len(), 3);
        assert_eq!(four["shared_name"], json!(3));
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

    #[test]
    fn values_are_compact_and_write_the_json_they_came_from() {
        // 24 bytes a value (a `serde_json::Value` is 32).
        assert_eq!(std::mem::size_of::<AttrValue>(), 24);
        let json = json!({
            "tags": {"zone": "b", "env": "aws:production"},
            "list": [1, -2, 2.5, "x", null, true, {"k": []}],
            "long": "arn:aws:iam::123456789012:user/a-name-longer-than-the-pool-takes",
        });
        let a = object(json.clone());
        assert_eq!(serde_json::to_value(&a).ok(), Some(json.clone()));
        let tags = &a["tags"];
        // A map is sorted pairs, read by key.
        assert_eq!(
            tags.get("env").and_then(AttrValue::as_str),
            Some("aws:production")
        );
        assert_eq!(tags.get("nope"), None);
        assert_eq!(*tags, json["tags"]);
        assert_ne!(*tags, json!({"zone": "b"}));
        assert_ne!(*tags, json!({"zone": "b", "env": "other"}));
        assert_eq!(a["list"].to_json(), json["list"]);
        assert_eq!(a["list"].as_array().map(<[_]>::len), Some(7));
        assert_eq!(a["list"][1].as_i64(), Some(-2));
        assert_eq!(a["list"][6]["k"], json!([]));
        assert!(a["list"][7].is_null() && a["tags"][0].is_null() && a["list"]["k"].is_null());
        assert!(a["long"] == json["long"] && a["long"] != json!("arn"));
        assert!(a["nope"].is_null() && a["tags"].as_bool().is_none());
        assert!(AttrValue::Bool(true) == true && a["list"][0] == 1 && a["list"][3] == "x");
        assert!(a["list"][2] == 2.5 && a["list"][0] != 2 && a["list"][0] != "1");
    }

    fn object(v: Value) -> Attributes {
        match v {
            Value::Object(m) => m.into(),
            _ => Attributes::new(),
        }
    }

    #[test]
    fn short_strings_and_map_keys_are_shared_between_resources() {
        let one = object(json!({"account": "123456789012", "tags": {"env": "prod"}}));
        let two = object(json!({"account": "123456789012", "tags": {"env": "prod"}}));
        let (AttrValue::String(a), AttrValue::String(b)) = (&one["account"], &two["account"])
        else {
            panic!("strings expected");
        };
        assert!(Arc::ptr_eq(a, b));
        let (AttrValue::Object(a), AttrValue::Object(b)) = (&one["tags"], &two["tags"]) else {
            panic!("maps expected");
        };
        assert!(Arc::ptr_eq(&a[0].0, &b[0].0));
        assert!(matches!((&a[0].1, &b[0].1),
            (AttrValue::String(x), AttrValue::String(y)) if Arc::ptr_eq(x, y)));
        // Long strings are not pooled: each resource holds its own.
        let long = "x".repeat(SHARED_MAX + 1);
        let (one, two) = (object(json!({"s": long})), object(json!({"s": long})));
        let (AttrValue::String(a), AttrValue::String(b)) = (&one["s"], &two["s"]) else {
            panic!("strings expected");
        };
        assert!(!Arc::ptr_eq(a, b) && a == b);
    }

    #[test]
    fn the_pool_lets_go_of_strings_no_resource_holds() {
        let mut pool = Pool::default();
        let kept: Vec<Arc<str>> = (0..100).map(|i| pool.share(&format!("kept{i}"))).collect();
        // Strings shared once and dropped at once: the pool never holds many more than twice
        // what is in use (and at least its minimum).
        for i in 0..(Pool::MIN * 10) {
            drop(pool.share(&format!("gone{i}")));
            assert!(pool.strings.len() <= Pool::MIN.max(2 * kept.len()) + 1);
        }
        // Those still held stay shared.
        for (i, k) in kept.iter().enumerate() {
            assert!(Arc::ptr_eq(k, &pool.share(&format!("kept{i}"))));
        }
    }
}
