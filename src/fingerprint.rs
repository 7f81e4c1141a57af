//! A 64-bit fingerprint of a JSON value that ignores how it was written: whitespace, key order, string
//! escapes and number spelling (`1`, `1.0`, `1e0`) do not change it.
//!
//! The record map stores the fingerprint of each `modelInput` sent, and Bedrock echoes `modelInput` in
//! every output line, so the results step can prove that an answer belongs to the request it is joined
//! with (docs/formats.md, "The record map"). Bedrock re-serializes the echo, hence a fingerprint of the
//! value rather than of the bytes.
//!
//! Objects hash as the wrapping sum of their entries' hashes, so key order does not matter and nothing
//! is buffered: one pass over the bytes, no allocation beyond serde_json's scratch space for escaped
//! strings.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

const NULL: u64 = 0x6e75_6c6c;
const FALSE: u64 = 0x6661_6c73;
const TRUE: u64 = 0x7472_7565;
const NUMBER: u64 = 1;
const STRING: u64 = 2;
const ARRAY: u64 = 3;
const OBJECT: u64 = 4;
const KEY: u64 = 5;

fn mix(a: u64, b: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    xxh3_64(&bytes)
}

fn number(v: f64) -> u64 {
    // -0.0 and 0.0 are one number.
    let v = if v == 0.0 { 0.0 } else { v };
    mix(NUMBER, v.to_bits())
}

/// The fingerprint of one JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// The fingerprint of a JSON text; `None` when it is not valid JSON (or nests too deep for serde_json).
    pub fn of_json(json: &[u8]) -> Option<Fingerprint> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let fp = Fingerprint::deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(fp)
    }

    /// 16 lowercase hex digits, as the record map stores it.
    pub fn to_hex(self) -> String {
        format!("{:016x}", self.0)
    }

    pub fn from_hex(s: &str) -> Option<Fingerprint> {
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Fingerprint)
    }
}

struct FpVisitor;

impl<'de> Visitor<'de> for FpVisitor {
    type Value = Fingerprint;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Fingerprint, E> {
        Ok(Fingerprint(NULL))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Fingerprint, E> {
        Ok(Fingerprint(if v { TRUE } else { FALSE }))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Fingerprint, E> {
        Ok(Fingerprint(number(v as f64)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Fingerprint, E> {
        Ok(Fingerprint(number(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Fingerprint, E> {
        Ok(Fingerprint(number(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Fingerprint, E> {
        Ok(Fingerprint(xxh3_64_with_seed(v.as_bytes(), STRING)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Fingerprint, A::Error> {
        let mut h = ARRAY;
        while let Some(Fingerprint(e)) = seq.next_element()? {
            h = mix(h, e);
        }
        Ok(Fingerprint(h))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fingerprint, A::Error> {
        let mut sum = 0u64;
        while let Some(KeyHash(k)) = map.next_key()? {
            let Fingerprint(v) = map.next_value()?;
            sum = sum.wrapping_add(mix(k, v));
        }
        Ok(Fingerprint(mix(OBJECT, sum)))
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FpVisitor)
    }
}

/// An object key, hashed where it is read.
struct KeyHash(u64);

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyHash;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyHash, E> {
                Ok(KeyHash(xxh3_64_with_seed(v.as_bytes(), KEY)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(s: &str) -> Fingerprint {
        Fingerprint::of_json(s.as_bytes()).expect("valid JSON")
    }

    #[test]
    fn ignores_spelling_and_key_order() {
        let a = fp(r#"{"messages":[{"role":"user","content":"héllo"}],"max_tokens":10,"temperature":0.5}"#);
        let b = fp(r#" { "temperature" : 5e-1, "max_tokens": 10.0,
            "messages": [ { "content": "h\u00e9llo", "role": "user" } ] } "#);
        assert_eq!(a, b);
        assert_eq!(fp("0"), fp("-0.0"));
    }

    #[test]
    fn tells_values_apart() {
        let base = r#"{"a":[1,2],"b":"x"}"#;
        for other in [
            r#"{"a":[2,1],"b":"x"}"#,
            r#"{"a":[1,2],"b":"y"}"#,
            r#"{"a":[1,2],"c":"x"}"#,
            r#"{"a":[1,2]}"#,
            r#"{"a":[1,2],"b":"x","c":null}"#,
            r#"{"b":[1,2],"a":"x"}"#,
            r#"[{"a":[1,2],"b":"x"}]"#,
            r#"{"a":[1,2,null],"b":"x"}"#,
            r#"{"a":["1",2],"b":"x"}"#,
        ] {
            assert_ne!(fp(base), fp(other), "{other}");
        }
        assert_ne!(fp("true"), fp("false"));
        assert_ne!(fp("null"), fp("\"null\""));
        assert_ne!(fp("{}"), fp("[]"));
    }

    #[test]
    fn invalid_json_has_none_and_hex_round_trips() {
        assert_eq!(Fingerprint::of_json(b"{\"a\":"), None);
        assert_eq!(Fingerprint::of_json(b"{} {}"), None);
        let f = fp(r#"{"a":1}"#);
        assert_eq!(Fingerprint::from_hex(&f.to_hex()), Some(f));
        assert_eq!(Fingerprint::from_hex("xyz"), None);
    }
}
