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
        Fingerprint::of_json_text(crate::jsonl::utf8(json).ok()?)
    }

    /// [`Fingerprint::of_json`] of a text already known to be UTF-8, which serde_json then does not check
    /// again string by string.
    pub fn of_json_text(json: &str) -> Option<Fingerprint> {
        let mut de = serde_json::Deserializer::from_str(json);
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

/// The hash of a JSON string whose decoded text is `text`, as a [`Fingerprint`] of a value holding it
/// counts it: for a text kept as the input wrote it ([`crate::json_text`]).
pub fn string_hash(text: &[u8]) -> u64 {
    xxh3_64_with_seed(text, STRING)
}

/// The fingerprint of a JSON object of strings, whole numbers and booleans, field by field, for a body
/// written by hand: the one [`write`] and [`Fingerprint::of_json`] give the same object.
#[derive(Default)]
pub struct ObjectPrint(u64);

impl ObjectPrint {
    /// A string field, by the hash of its value ([`string_hash`]).
    pub fn text(self, name: &str, hash: u64) -> ObjectPrint {
        ObjectPrint(self.0.wrapping_add(mix(key(name), hash)))
    }

    pub fn integer(self, name: &str, v: u64) -> ObjectPrint {
        ObjectPrint(self.0.wrapping_add(mix(key(name), number(v as f64))))
    }

    pub fn boolean(self, name: &str, v: bool) -> ObjectPrint {
        ObjectPrint(self.0.wrapping_add(mix(key(name), if v { TRUE } else { FALSE })))
    }

    pub fn finish(self) -> Fingerprint {
        Fingerprint(object(self.0))
    }
}

/// The fingerprint of a value as serde_json would write it, computed without writing or parsing it:
/// the same number [`Fingerprint::of_json`] gives for its JSON text. `None` when serde_json could not
/// write the value either.
pub fn of_value<T: Serialize + ?Sized>(value: &T) -> Option<Fingerprint> {
    value
        .serialize(ValueHasher {
            raw: false,
            out: &mut Discard,
        })
        .ok()
        .map(Fingerprint)
}

/// Appends `value` to `out` as JSON, byte for byte what `serde_json::to_writer` writes, and returns its
/// fingerprint, in one pass: translate writes and fingerprints every body. Strings are checked for what
/// needs escaping eight bytes at a time, where serde_json goes byte by byte; long texts are most of a
/// body. On an error `out` may hold part of the value.
pub fn write<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<Fingerprint, NotJson> {
    value.serialize(ValueHasher { raw: false, out }).map(Fingerprint)
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

/// JSON text, written as it is, by serde_json and by [`write`]: what a `&RawValue` does, for text that is
/// known to be one JSON value without serde_json having to read it again to make a `RawValue` of it
/// (the results step copies Titan's vectors so). It serializes as RawValue does, through serde_json's
/// token; a test checks that serde_json still writes it verbatim.
pub struct Verbatim<'a>(pub &'a str);

impl Serialize for Verbatim<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut raw = s.serialize_struct(RAW_VALUE_TOKEN, 1)?;
        raw.serialize_field(RAW_VALUE_TOKEN, self.0)?;
        raw.end()
    }
}

/// Where the JSON text goes: nowhere when only the fingerprint is wanted ([`of_value`]), else a buffer
/// ([`write`]). Both compile to their own serializer, so hashing alone pays nothing for writing, but for
/// formatting each float: its hash is of the value its text reads back as.
trait Out {
    fn bytes(&mut self, b: &[u8]);
    fn string(&mut self, s: &str);
    /// An integer, as itoa writes it for serde_json.
    fn integer<I: itoa::Integer>(&mut self, v: I);
}

struct Discard;

impl Out for Discard {
    fn bytes(&mut self, _: &[u8]) {}
    fn string(&mut self, _: &str) {}
    fn integer<I: itoa::Integer>(&mut self, _: I) {}
}

impl Out for Vec<u8> {
    fn bytes(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    fn string(&mut self, s: &str) {
        write_string(self, s);
    }
    fn integer<I: itoa::Integer>(&mut self, v: I) {
        self.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The bytes of `v` that JSON escapes (control characters, `"` and `\`), as the high bit of each: exact
/// for the lowest such byte, which is all [`write_string`] reads (a borrow can flag a byte above a flagged
/// one, never below). Bytes of 0x80 and above are never flagged: `!v` clears their high bit.
fn escapes(v: u64) -> u64 {
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
    let below_space = v.wrapping_sub(ONES * 0x20) & !v;
    let quote = zero_in(v ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(v ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash) & HIGHS
}

/// The escape of a byte JSON escapes; `None` for the others.
fn escape(b: u8) -> Option<[u8; 6]> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        0x00..=0x1f => 0,
        _ => return None,
    };
    Some(if short == 0 {
        [
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]
    } else {
        [b'\\', short, 0, 0, 0, 0]
    })
}

/// `s` as a JSON string, escaped as serde_json escapes it: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, and
/// the other control characters as `\u00XX` in lowercase hex; everything else as it is.
fn write_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        // Eight bytes at a time to the next byte to escape, then that byte alone.
        let at = match bytes.get(i..i + 8) {
            Some(chunk) => {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                match escapes(u64::from_le_bytes(word)) {
                    0 => {
                        i += 8;
                        continue;
                    }
                    flags => i + (flags.trailing_zeros() / 8) as usize,
                }
            }
            None => i,
        };
        match escape(bytes[at]) {
            Some(esc) => {
                out.extend_from_slice(&bytes[start..at]);
                let len = if esc[1] == b'u' { 6 } else { 2 };
                out.extend_from_slice(&esc[..len]);
                start = at + 1;
            }
            None => debug_assert!(at == i, "a word flagged a byte that needs no escape"),
        }
        i = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A serde Serializer that writes what serde_json would write to `out` and returns its hash; `raw` while
/// reading a RawValue's text.
struct ValueHasher<'o, O: Out> {
    raw: bool,
    out: &'o mut O,
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

/// Opens `{"variant":` for an enum variant with data.
fn open_variant<O: Out>(out: &mut O, variant: &str) -> u64 {
    out.bytes(b"{");
    out.string(variant);
    out.bytes(b":");
    key(variant)
}

/// An array being written and hashed, in order.
struct SeqHasher<'o, O: Out> {
    h: u64,
    variant: Option<u64>,
    first: bool,
    out: &'o mut O,
}

/// An object being written and hashed: the wrapping sum of its entries' hashes.
struct MapHasher<'o, O: Out> {
    sum: u64,
    pending_key: Option<u64>,
    variant: Option<u64>,
    raw: bool,
    raw_hash: Option<u64>,
    first: bool,
    out: &'o mut O,
}

impl<'o, O: Out> MapHasher<'o, O> {
    fn new(variant: Option<u64>, raw: bool, out: &'o mut O) -> MapHasher<'o, O> {
        if !raw {
            out.bytes(b"{");
        }
        MapHasher {
            sum: 0,
            pending_key: None,
            variant,
            raw,
            raw_hash: None,
            first: true,
            out,
        }
    }
}

impl<O: Out> ValueHasher<'_, O> {
    /// A float as serde_json writes it (`text`, zmij's shortest form), hashed as the value serde_json reads
    /// back from that text, which is what [`Fingerprint::of_json`] sees: serde_json's parser is not always
    /// correctly rounded (an f64 of 17 digits or a large exponent can come back an ulp away), so hashing
    /// the value written would not always match the echo.
    fn float(self, text: &str) -> Result<u64, NotJson> {
        self.out.bytes(text.as_bytes());
        serde_json::from_str::<f64>(text)
            .map(number)
            .map_err(|e| NotJson(format!("a float that does not read back: {e}")))
    }
}

/// Every integer is a JSON number; as f64, as the reading side sees it.
macro_rules! integers_as_numbers {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name(self, v: $ty) -> Result<u64, NotJson> {
            self.out.integer(v);
            Ok(number(v as f64))
        })*
    };
}

impl<'o, O: Out> Serializer for ValueHasher<'o, O> {
    type Ok = u64;
    type Error = NotJson;
    type SerializeSeq = SeqHasher<'o, O>;
    type SerializeTuple = SeqHasher<'o, O>;
    type SerializeTupleStruct = SeqHasher<'o, O>;
    type SerializeTupleVariant = SeqHasher<'o, O>;
    type SerializeMap = MapHasher<'o, O>;
    type SerializeStruct = MapHasher<'o, O>;
    type SerializeStructVariant = MapHasher<'o, O>;

    fn serialize_bool(self, v: bool) -> Result<u64, NotJson> {
        self.out.bytes(if v { b"true" } else { b"false" });
        Ok(if v { TRUE } else { FALSE })
    }
    integers_as_numbers!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64);
    fn serialize_f32(self, v: f32) -> Result<u64, NotJson> {
        // serde_json writes NaN and the infinities as null.
        if !v.is_finite() {
            return self.serialize_unit();
        }
        self.float(zmij::Buffer::new().format_finite(v))
    }
    fn serialize_f64(self, v: f64) -> Result<u64, NotJson> {
        if !v.is_finite() {
            return self.serialize_unit();
        }
        self.float(zmij::Buffer::new().format_finite(v))
    }
    fn serialize_char(self, v: char) -> Result<u64, NotJson> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<u64, NotJson> {
        if self.raw {
            let fp =
                Fingerprint::of_json(v.as_bytes()).ok_or_else(|| NotJson("a raw value that is not JSON".into()))?;
            self.out.bytes(v.as_bytes());
            return Ok(fp.0);
        }
        self.out.string(v);
        Ok(string(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<u64, NotJson> {
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        ser::SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Result<u64, NotJson> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<u64, NotJson> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<u64, NotJson> {
        self.out.bytes(b"null");
        Ok(NULL)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<u64, NotJson> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<u64, NotJson> {
        self.serialize_str(variant)
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
        let k = open_variant(self.out, variant);
        let h = value.serialize(ValueHasher {
            raw: false,
            out: &mut *self.out,
        })?;
        self.out.bytes(b"}");
        Ok(wrap_variant(Some(k), h))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<SeqHasher<'o, O>, NotJson> {
        self.out.bytes(b"[");
        Ok(SeqHasher {
            h: ARRAY,
            variant: None,
            first: true,
            out: self.out,
        })
    }
    fn serialize_tuple(self, _: usize) -> Result<SeqHasher<'o, O>, NotJson> {
        self.serialize_seq(None)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<SeqHasher<'o, O>, NotJson> {
        self.serialize_seq(None)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<SeqHasher<'o, O>, NotJson> {
        let k = open_variant(self.out, variant);
        self.out.bytes(b"[");
        Ok(SeqHasher {
            h: ARRAY,
            variant: Some(k),
            first: true,
            out: self.out,
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapHasher<'o, O>, NotJson> {
        Ok(MapHasher::new(None, false, self.out))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<MapHasher<'o, O>, NotJson> {
        Ok(MapHasher::new(None, name == RAW_VALUE_TOKEN, self.out))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<MapHasher<'o, O>, NotJson> {
        let k = open_variant(self.out, variant);
        Ok(MapHasher::new(Some(k), false, self.out))
    }
}

impl<O: Out> SeqHasher<'_, O> {
    fn add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotJson> {
        if !std::mem::take(&mut self.first) {
            self.out.bytes(b",");
        }
        let e = value.serialize(ValueHasher {
            raw: false,
            out: &mut *self.out,
        })?;
        self.h = mix(self.h, e);
        Ok(())
    }
    fn done(self) -> u64 {
        self.out.bytes(if self.variant.is_some() { b"]}" } else { b"]" });
        wrap_variant(self.variant, self.h)
    }
}

/// The four sequence traits of serde, all an array to serde_json.
macro_rules! seq_hasher {
    ($($trait:ident::$method:ident),*) => {
        $(impl<O: Out> ser::$trait for SeqHasher<'_, O> {
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

impl<O: Out> MapHasher<'_, O> {
    fn entry(&mut self, k: u64, value_hash: u64) {
        self.sum = self.sum.wrapping_add(mix(k, value_hash));
    }
    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.out.bytes(b",");
        }
    }
    fn done(self) -> u64 {
        match self.raw_hash {
            Some(h) => h,
            None => {
                self.out.bytes(if self.variant.is_some() { b"}}" } else { b"}" });
                wrap_variant(self.variant, object(self.sum))
            }
        }
    }
    fn field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), NotJson> {
        if self.raw {
            self.raw_hash = Some(value.serialize(ValueHasher {
                raw: true,
                out: &mut *self.out,
            })?);
            return Ok(());
        }
        self.comma();
        self.out.string(name);
        self.out.bytes(b":");
        let v = value.serialize(ValueHasher {
            raw: false,
            out: &mut *self.out,
        })?;
        self.entry(key(name), v);
        Ok(())
    }
}

impl<O: Out> ser::SerializeMap for MapHasher<'_, O> {
    type Ok = u64;
    type Error = NotJson;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), NotJson> {
        self.comma();
        self.pending_key = Some(k.serialize(KeyHasher { out: &mut *self.out })?);
        self.out.bytes(b":");
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotJson> {
        let k = self
            .pending_key
            .take()
            .ok_or_else(|| NotJson("a map value without its key".into()))?;
        let v = value.serialize(ValueHasher {
            raw: false,
            out: &mut *self.out,
        })?;
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
        $(impl<O: Out> ser::$trait for MapHasher<'_, O> {
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
struct KeyHasher<'o, O: Out> {
    out: &'o mut O,
}

impl<O: Out> KeyHasher<'_, O> {
    fn text(self, s: &str) -> Result<u64, NotJson> {
        self.out.string(s);
        Ok(key(s))
    }
}

macro_rules! key_as_text {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name(self, v: $ty) -> Result<u64, NotJson> {
            self.text(&v.to_string())
        })*
    };
}

impl<O: Out> Serializer for KeyHasher<'_, O> {
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
        self.text(v)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<u64, NotJson> {
        value.serialize(self)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<u64, NotJson> {
        self.text(variant)
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
        // write gives serde_json's very bytes, after what the buffer already held, and the same hash.
        let mut out = b"prefix ".to_vec();
        let written = write(&value, &mut out).expect("writes");
        assert_eq!(String::from_utf8_lossy(&out[7..]), String::from_utf8_lossy(&text));
        assert_eq!(Some(written), of_value(&value));
    }

    #[test]
    fn verbatim_text_is_written_as_it_is() {
        let text = r#"[1.50, -2e-7 ,{"a" : "\u00e9"}]"#;
        assert_eq!(serde_json::to_string(&Verbatim(text)).expect("serializes"), text);
        let mut out = Vec::new();
        let fp = write(&Verbatim(text), &mut out).expect("writes");
        assert_eq!(out, text.as_bytes());
        assert_eq!(Some(fp), Fingerprint::of_json(text.as_bytes()));
    }

    #[test]
    fn a_word_flags_its_first_byte_to_escape_exactly() {
        // Every byte at every place among neighbours that need no escape, and after one that does.
        for filler in [b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xbf, 0xff] {
            for b in 0..=255u8 {
                for at in 0..8 {
                    let mut word = [filler; 8];
                    word[at] = b;
                    let flags = escapes(u64::from_le_bytes(word));
                    match escape(b) {
                        None => assert_eq!(flags, 0, "{b:#x} at {at} among {filler:#x}"),
                        Some(_) => assert_eq!(flags.trailing_zeros() / 8, at as u32, "{b:#x} at {at}"),
                    }
                    if at < 7 {
                        // A control character below: it is found first, whatever comes above it.
                        word[at + 1] = b;
                        word[at] = 0x1f;
                        assert_eq!(escapes(u64::from_le_bytes(word)).trailing_zeros() / 8, at as u32);
                    }
                }
            }
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        // Every byte that needs escaping, at every offset of an 8-byte word and next to multibyte text.
        let mut cases: Vec<String> = vec![String::new(), "plain ascii, longer than one word".into()];
        let specials: Vec<char> = (0u8..0x20).map(char::from).chain(['"', '\\', '\u{7f}', '/']).collect();
        for c in &specials {
            for at in 0..17 {
                let mut s: String = "abcdefghijklmnop".chars().take(at).collect();
                s.push(*c);
                s.push_str("h\u{e9}llo \u{1F600} \u{2028} tail");
                cases.push(s);
            }
        }
        cases.push(specials.iter().collect());
        cases.push("\u{e9}".repeat(40) + "\"" + &"\u{80}".repeat(9));
        for s in cases {
            let mut out = Vec::new();
            write(s.as_str(), &mut out).expect("writes");
            assert_eq!(out, serde_json::to_vec(&s).expect("serializes"), "{s:?}");
        }
    }
}
