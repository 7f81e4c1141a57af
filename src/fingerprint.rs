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
use serde::ser::{self, Serialize, Serializer};
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

/// One fingerprint for the records of one line, in order: the record map keeps one per line, and the
/// results step recomputes it from the `modelInput` each record echoes. A line of one record keeps that
/// record's own fingerprint.
pub fn combined(parts: impl IntoIterator<Item = Fingerprint>) -> Fingerprint {
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return Fingerprint(0);
    };
    parts.fold(first, |acc, p| Fingerprint(mix(acc.0, p.0)))
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

/// The fingerprint of a value as serde_json would write it, computed without writing or parsing it:
/// the same number [`Fingerprint::of_json`] gives for its JSON text, at a fraction of the cost (translate
/// fingerprints every body it writes). `None` when serde_json could not write the value either.
pub fn of_value<T: Serialize + ?Sized>(value: &T) -> Option<Fingerprint> {
    value.serialize(ValueHasher { raw: false }).ok().map(Fingerprint)
}

/// Why a value has no fingerprint: what serde_json would refuse to write (a map key that is not a
/// string or a number, or a raw value that is not JSON).
#[derive(Debug)]
pub struct NotJson(String);

impl fmt::Display for NotJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotJson {}

impl ser::Error for NotJson {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NotJson(msg.to_string())
    }
}

fn not_a_key() -> NotJson {
    NotJson("a map key that is not a string".into())
}

/// serde_json's token for a `RawValue`: a struct of that name whose one field is the raw JSON text.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// A serde Serializer that hashes what serde_json would write; `raw` while reading a RawValue's text.
#[derive(Clone, Copy)]
struct ValueHasher {
    raw: bool,
}

fn string(s: &str) -> u64 {
    xxh3_64_with_seed(s.as_bytes(), STRING)
}

fn key(s: &str) -> u64 {
    xxh3_64_with_seed(s.as_bytes(), KEY)
}

fn object(sum: u64) -> u64 {
    mix(OBJECT, sum)
}

/// serde_json writes an enum variant with data as `{"Variant": data}`.
fn wrap_variant(variant: Option<u64>, h: u64) -> u64 {
    match variant {
        Some(k) => object(mix(k, h)),
        None => h,
    }
}

/// An array being hashed, in order.
struct SeqHasher {
    h: u64,
    variant: Option<u64>,
}

/// An object being hashed: the wrapping sum of its entries' hashes.
struct MapHasher {
    sum: u64,
    pending_key: Option<u64>,
    variant: Option<u64>,
    raw: bool,
    raw_hash: Option<u64>,
}

impl MapHasher {
    fn new(variant: Option<u64>, raw: bool) -> MapHasher {
        MapHasher {
            sum: 0,
            pending_key: None,
            variant,
            raw,
            raw_hash: None,
        }
    }
}

/// Every integer is a JSON number; as f64, as the reading side sees it.
macro_rules! integers_as_numbers {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name(self, v: $ty) -> Result<u64, NotJson> {
            Ok(number(v as f64))
        })*
    };
}

impl Serializer for ValueHasher {
    type Ok = u64;
    type Error = NotJson;
    type SerializeSeq = SeqHasher;
    type SerializeTuple = SeqHasher;
    type SerializeTupleStruct = SeqHasher;
    type SerializeTupleVariant = SeqHasher;
    type SerializeMap = MapHasher;
    type SerializeStruct = MapHasher;
    type SerializeStructVariant = MapHasher;

    fn serialize_bool(self, v: bool) -> Result<u64, NotJson> {
        Ok(if v { TRUE } else { FALSE })
    }
    integers_as_numbers!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64);
    fn serialize_f32(self, v: f32) -> Result<u64, NotJson> {
        // serde_json writes an f32 in its shortest form, which reads back as the nearest f64.
        match v.to_string().parse::<f64>() {
            Ok(x) if v.is_finite() => Ok(number(x)),
            _ => Ok(NULL),
        }
    }
    fn serialize_f64(self, v: f64) -> Result<u64, NotJson> {
        // serde_json writes NaN and the infinities as null.
        Ok(if v.is_finite() { number(v) } else { NULL })
    }
    fn serialize_char(self, v: char) -> Result<u64, NotJson> {
        Ok(string(v.encode_utf8(&mut [0u8; 4])))
    }
    fn serialize_str(self, v: &str) -> Result<u64, NotJson> {
        if self.raw {
            return Fingerprint::of_json(v.as_bytes())
                .map(|f| f.0)
                .ok_or_else(|| NotJson("a raw value that is not JSON".into()));
        }
        Ok(string(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<u64, NotJson> {
        Ok(v.iter().fold(ARRAY, |h, b| mix(h, number(f64::from(*b)))))
    }
    fn serialize_none(self) -> Result<u64, NotJson> {
        Ok(NULL)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<u64, NotJson> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<u64, NotJson> {
        Ok(NULL)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<u64, NotJson> {
        Ok(NULL)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<u64, NotJson> {
        Ok(string(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<u64, NotJson> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<u64, NotJson> {
        Ok(wrap_variant(Some(key(variant)), value.serialize(self)?))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<SeqHasher, NotJson> {
        Ok(SeqHasher {
            h: ARRAY,
            variant: None,
        })
    }
    fn serialize_tuple(self, _: usize) -> Result<SeqHasher, NotJson> {
        self.serialize_seq(None)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<SeqHasher, NotJson> {
        self.serialize_seq(None)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<SeqHasher, NotJson> {
        Ok(SeqHasher {
            h: ARRAY,
            variant: Some(key(variant)),
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapHasher, NotJson> {
        Ok(MapHasher::new(None, false))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<MapHasher, NotJson> {
        Ok(MapHasher::new(None, name == RAW_VALUE_TOKEN))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<MapHasher, NotJson> {
        Ok(MapHasher::new(Some(key(variant)), false))
    }
}

impl SeqHasher {
    fn add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotJson> {
        self.h = mix(self.h, value.serialize(ValueHasher { raw: false })?);
        Ok(())
    }
    fn done(self) -> u64 {
        wrap_variant(self.variant, self.h)
    }
}

/// The four sequence traits of serde, all an array to serde_json.
macro_rules! seq_hasher {
    ($($trait:ident::$method:ident),*) => {
        $(impl ser::$trait for SeqHasher {
            type Ok = u64;
            type Error = NotJson;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotJson> {
                self.add(value)
            }
            fn end(self) -> Result<u64, NotJson> {
                Ok(self.done())
            }
        })*
    };
}

seq_hasher!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl MapHasher {
    fn entry(&mut self, k: u64, value_hash: u64) {
        self.sum = self.sum.wrapping_add(mix(k, value_hash));
    }
    fn done(self) -> u64 {
        match self.raw_hash {
            Some(h) => h,
            None => wrap_variant(self.variant, object(self.sum)),
        }
    }
    fn field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), NotJson> {
        if self.raw {
            self.raw_hash = Some(value.serialize(ValueHasher { raw: true })?);
            return Ok(());
        }
        let v = value.serialize(ValueHasher { raw: false })?;
        self.entry(key(name), v);
        Ok(())
    }
}

impl ser::SerializeMap for MapHasher {
    type Ok = u64;
    type Error = NotJson;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), NotJson> {
        self.pending_key = Some(k.serialize(KeyHasher)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotJson> {
        let k = self
            .pending_key
            .take()
            .ok_or_else(|| NotJson("a map value without its key".into()))?;
        let v = value.serialize(ValueHasher { raw: false })?;
        self.entry(k, v);
        Ok(())
    }
    fn end(self) -> Result<u64, NotJson> {
        Ok(self.done())
    }
}

/// Structs and struct variants, both objects to serde_json.
macro_rules! struct_hasher {
    ($($trait:ident),*) => {
        $(impl ser::$trait for MapHasher {
            type Ok = u64;
            type Error = NotJson;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), NotJson> {
                self.field(name, value)
            }
            fn end(self) -> Result<u64, NotJson> {
                Ok(self.done())
            }
        })*
    };
}

struct_hasher!(SerializeStruct, SerializeStructVariant);

/// A map key as serde_json writes it: a string, or an integer, boolean or char as its text.
struct KeyHasher;

macro_rules! key_as_text {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name(self, v: $ty) -> Result<u64, NotJson> {
            Ok(key(&v.to_string()))
        })*
    };
}

impl Serializer for KeyHasher {
    type Ok = u64;
    type Error = NotJson;
    type SerializeSeq = ser::Impossible<u64, NotJson>;
    type SerializeTuple = ser::Impossible<u64, NotJson>;
    type SerializeTupleStruct = ser::Impossible<u64, NotJson>;
    type SerializeTupleVariant = ser::Impossible<u64, NotJson>;
    type SerializeMap = ser::Impossible<u64, NotJson>;
    type SerializeStruct = ser::Impossible<u64, NotJson>;
    type SerializeStructVariant = ser::Impossible<u64, NotJson>;

    key_as_text!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
        serialize_char: char);

    fn serialize_str(self, v: &str) -> Result<u64, NotJson> {
        Ok(key(v))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<u64, NotJson> {
        value.serialize(self)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<u64, NotJson> {
        Ok(key(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<u64, NotJson> {
        value.serialize(self)
    }
    fn serialize_f32(self, _: f32) -> Result<u64, NotJson> {
        Err(not_a_key())
    }
    fn serialize_f64(self, _: f64) -> Result<u64, NotJson> {
        Err(not_a_key())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<u64, NotJson> {
        Err(not_a_key())
    }
    fn serialize_none(self) -> Result<u64, NotJson> {
        Err(not_a_key())
    }
    fn serialize_unit(self) -> Result<u64, NotJson> {
        Err(not_a_key())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<u64, NotJson> {
        Err(not_a_key())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u64, NotJson> {
        Err(not_a_key())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotJson> {
        Err(not_a_key())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotJson> {
        Err(not_a_key())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, NotJson> {
        Err(not_a_key())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotJson> {
        Err(not_a_key())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotJson> {
        Err(not_a_key())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotJson> {
        Err(not_a_key())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotJson> {
        Err(not_a_key())
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

    #[test]
    fn a_value_hashes_as_its_json_text_does() {
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            New(u8),
            Tuple(u8, String),
            Struct { a: f32 },
        }
        #[derive(serde::Serialize)]
        struct S<'a> {
            text: &'a str,
            n: u64,
            neg: i32,
            x: f64,
            nan: f64,
            none: Option<u8>,
            list: Vec<E>,
            map: std::collections::BTreeMap<u32, bool>,
            raw: &'a serde_json::value::RawValue,
            bytes: &'a [u8],
            c: char,
        }
        let raw: Box<serde_json::value::RawValue> =
            serde_json::from_str(r#"{ "type" : "object", "properties": {"q": {"type": "string"}}, "n": 1e2 }"#)
                .expect("raw");
        let value = S {
            text: "h\u{e9}llo \"x\"\n",
            n: u64::MAX,
            neg: -7,
            x: 0.1,
            nan: f64::NAN,
            none: None,
            list: vec![E::Unit, E::New(3), E::Tuple(1, "t".into()), E::Struct { a: 0.1 }],
            map: [(1, true), (20, false)].into_iter().collect(),
            raw: &raw,
            bytes: b"ab",
            c: 'z',
        };
        let text = serde_json::to_vec(&value).expect("serializes");
        assert!(of_value(&value).is_some());
        assert_eq!(of_value(&value), Fingerprint::of_json(&text));
    }
}
