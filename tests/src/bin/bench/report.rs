//! The benchmark's output: a JSON object that keeps keys in the order they were added
//! (serde_json's own map sorts them, which would tear each figure from its target), and
//! the list of correctness checks every run carries.

use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// A JSON object in insertion order.
#[derive(Default)]
pub struct Obj(Vec<(String, Node)>);

enum Node {
    Value(Value),
    Obj(Obj),
}

impl Obj {
    pub fn new() -> Obj {
        Obj::default()
    }

    pub fn put(&mut self, key: &str, value: impl Into<Value>) -> &mut Obj {
        self.0.push((key.to_owned(), Node::Value(value.into())));
        self
    }

    pub fn obj(&mut self, key: &str, value: Obj) -> &mut Obj {
        self.0.push((key.to_owned(), Node::Obj(value)));
        self
    }

    /// A measured figure followed by its target, as `KEY` and `KEY_target`.
    pub fn figure(&mut self, key: &str, measured: f64, target: f64) -> &mut Obj {
        self.put(key, measured)
            .put(&format!("{key}_target"), target)
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Node::Value(v) => map.serialize_entry(k, v)?,
                Node::Obj(o) => map.serialize_entry(k, o)?,
            }
        }
        map.end()
    }
}

/// Seconds, rounded to 0.1 ms.
pub fn secs(d: Duration) -> f64 {
    round(d.as_secs_f64(), 4)
}

pub fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// min / median / max of per-request durations, and the first and last (a trend shows
/// cost growing with the data), in ms.
pub fn spread_ms(ds: &[Duration]) -> Obj {
    let in_order: Vec<f64> = ds.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let mut ms = in_order.clone();
    ms.sort_by(f64::total_cmp);
    let mut o = Obj::new();
    let (Some(first), Some(last)) = (in_order.first(), in_order.last()) else {
        return o;
    };
    o.put("n", ms.len())
        .put("first_ms", round(*first, 2))
        .put("last_ms", round(*last, 2))
        .put("min_ms", round(ms[0], 2))
        .put("median_ms", round(ms[ms.len() / 2], 2))
        .put("max_ms", round(ms[ms.len() - 1], 2));
    o
}

/// Correctness checks: each has a name, a verdict and what was seen.
#[derive(Default)]
pub struct Checks(Vec<(String, bool, String)>);

impl Checks {
    pub fn check(&mut self, name: &str, ok: bool, seen: impl Into<String>) -> bool {
        let seen = seen.into();
        if !ok {
            eprintln!("CHECK FAILED: {name}: {seen}");
        }
        self.0.push((name.to_owned(), ok, seen));
        ok
    }

    /// `seen == want`, described as such.
    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, seen: T, want: T) -> bool {
        let ok = seen == want;
        self.check(name, ok, format!("{seen:?} (want {want:?})"))
    }

    pub fn all_ok(&self) -> bool {
        self.0.iter().all(|(_, ok, _)| *ok)
    }

    pub fn failed(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, ok, _)| !ok)
            .map(|(n, _, seen)| format!("{n}: {seen}"))
            .collect()
    }

    /// Every check by name: `true`, or what was seen when it failed.
    pub fn to_obj(&self) -> Obj {
        let mut o = Obj::new();
        for (name, ok, seen) in &self.0 {
            if *ok {
                o.put(name, true);
            } else {
                o.put(name, format!("FAILED: {seen}"));
            }
        }
        o
    }
}
