//! Counts per string for the reports, bounded: a hostile file with millions of distinct model names or
//! field names must not grow memory, report.json or the terminal output with them.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::error::shown;

/// Distinct keys kept; the rest are counted together under [`OTHERS`].
pub const MAX_KEYS: usize = 50;
/// Longest key kept, in bytes; a longer one is cut at a character boundary and ends with `…`.
pub const MAX_KEY_BYTES: usize = 100;
/// The key under which lines of every key beyond the first [`MAX_KEYS`] are counted.
pub const OTHERS: &str = "(others)";

/// How many times each string was met, for the first [`MAX_KEYS`] distinct strings; later ones are
/// counted in `others` (lines) and `other_keys` (an upper bound on distinct strings, since only new
/// keys beyond the cap are counted and a repeat of one cannot be told from a new one).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    kept: BTreeMap<String, u64>,
    others: u64,
}

impl Counts {
    pub fn bump(&mut self, key: &str) {
        let key = shown_key(key);
        if let Some(n) = self.kept.get_mut(key.as_str()) {
            *n += 1;
        } else if self.kept.len() < MAX_KEYS {
            self.kept.insert(key, 1);
        } else {
            self.others += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.others == 0
    }

    /// Every count: the kept keys in order, then [`OTHERS`] when there are any.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.kept
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .chain((self.others > 0).then_some((OTHERS, self.others)))
    }

    /// The kept keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.kept.keys()
    }

    /// The sum of all counts.
    pub fn total(&self) -> u64 {
        self.kept.values().sum::<u64>() + self.others
    }

    /// The count of one key (0 when absent or folded into the others).
    pub fn get(&self, key: &str) -> u64 {
        self.kept.get(key).copied().unwrap_or(0)
    }
}

impl Serialize for Counts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

/// A key as reports show it: control characters escaped, at most [`MAX_KEY_BYTES`].
fn shown_key(key: &str) -> String {
    shown(key, MAX_KEY_BYTES)
}

/// A count with commas between its thousands, as reports print them: 1234567 is "1,234,567".
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_grouped() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ] {
            assert_eq!(super::grouped(n), text);
        }
    }

    use super::*;

    #[test]
    fn keeps_the_first_keys_and_folds_the_rest() {
        let mut c = Counts::default();
        for i in 0..(MAX_KEYS + 10) {
            c.bump(&format!("k{i:03}"));
        }
        c.bump("k000");
        c.bump("k999");
        assert_eq!(c.get("k000"), 2);
        assert_eq!(c.iter().count(), MAX_KEYS + 1);
        assert_eq!(c.iter().last(), Some((OTHERS, 11)));
        assert_eq!(c.total(), MAX_KEYS as u64 + 12);
        let json = serde_json::to_value(&c).expect("serializes");
        assert_eq!(json[OTHERS], 11);
    }

    #[test]
    fn long_and_control_keys_are_shown_safely() {
        let mut c = Counts::default();
        c.bump("\u{1b}[31mred");
        c.bump(&"é".repeat(200));
        let keys: Vec<&str> = c.iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&"\\u{1b}[31mred"), "{keys:?}");
        assert!(keys.iter().all(|k| k.len() <= MAX_KEY_BYTES + '…'.len_utf8()));
    }
}
