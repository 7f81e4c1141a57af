//! Amazon Titan Text Embeddings, both ways (docs/formats.md, "Embeddings"): the `modelInput` of one text, and
//! the vector its `modelOutput` holds. Titan embeds one text per request.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::completion::{Unusable, MALFORMED_MODEL_OUTPUT};
use crate::fingerprint::{self, Fingerprint};
use crate::format::openai_input::JsonText;

/// Appends the Titan Text Embeddings V2 request body of one text to `out` (docs/formats.md, "Embeddings")
/// and returns its fingerprint: `inputText` as the line wrote it, `hash` its value's
/// ([`JsonText::value`]). `normalize` is always sent as true: OpenAI's vectors have unit length,
/// and so do Titan's by default.
pub fn write_body(text: JsonText<'_>, hash: u64, dimensions: u32, out: &mut Vec<u8>) -> Fingerprint {
    out.reserve(text.raw.len() + 60);
    out.extend_from_slice(br#"{"inputText":""#);
    out.extend_from_slice(text.raw.as_bytes());
    out.extend_from_slice(br#"","dimensions":"#);
    out.extend_from_slice(itoa::Buffer::new().format(dimensions).as_bytes());
    out.extend_from_slice(br#","normalize":true}"#);
    fingerprint::ObjectPrint::default()
        .text("inputText", hash)
        .integer("dimensions", u64::from(dimensions))
        .boolean("normalize", true)
        .finish()
}

/// A Titan embeddings `modelOutput`, every field optional so that what is missing is said in our words.
#[derive(Deserialize)]
struct TitanOutput<'a> {
    #[serde(borrow, default)]
    embedding: Option<&'a RawValue>,
    #[serde(rename = "inputTextTokenCount", default)]
    input_text_token_count: Option<u64>,
}

/// One text's answer, read: its vector (raw JSON, checked to be `dimensions` finite numbers) and its tokens.
pub struct Vector<'a> {
    pub raw: &'a str,
    pub tokens: u64,
}

/// Calls `each` with the text of every number of the JSON array `array`, in order, and returns how many
/// there are; an error says what is not a finite number. A vector is a thousand numbers or so, read
/// twice per answer (checked here, copied or converted later): a scan of the bytes against JSON's number
/// grammar is several times faster than serde_json's parse to f64, which only a number too large for
/// its exponent to say for sure still goes through.
fn each_number<'a>(array: &'a str, mut each: impl FnMut(&'a str)) -> Result<usize, String> {
    let bytes = array.as_bytes();
    let skip_space = |mut i: usize| {
        while bytes.get(i).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    };
    let digits = |mut i: usize| {
        let from = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i - from)
    };
    let mut i = skip_space(0);
    if bytes.get(i) != Some(&b'[') {
        return Err("it is not an array".into());
    }
    i = skip_space(i + 1);
    let mut n = 0;
    if bytes.get(i) == Some(&b']') {
        return match skip_space(i + 1) == bytes.len() {
            true => Ok(0),
            false => Err("something follows the array".into()),
        };
    }
    loop {
        let start = i;
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        let (after, int_digits) = digits(i);
        if int_digits == 0 || (int_digits > 1 && bytes[i] == b'0') {
            return Err(format!("item {n} is not a number"));
        }
        i = after;
        if bytes.get(i) == Some(&b'.') {
            let (after, frac) = digits(i + 1);
            if frac == 0 {
                return Err(format!("item {n} is not a number"));
            }
            i = after;
        }
        let mut exponent_digits = 0;
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let (after, e) = digits(i);
            if e == 0 {
                return Err(format!("item {n} is not a number"));
            }
            exponent_digits = e;
            i = after;
        }
        let number = &array[start..i];
        // Under 10^300 (fewer than 300 integer digits, with room for a two-digit exponent) a number is
        // finite as an f64, whose largest is about 1.8e308; beyond, only reading it says.
        let large = exponent_digits >= 3 || int_digits + if exponent_digits > 0 { 99 } else { 0 } >= 300;
        if large && !number.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(format!("item {n} is out of range"));
        }
        each(number);
        n += 1;
        i = skip_space(i);
        match bytes.get(i) {
            Some(b',') => i = skip_space(i + 1),
            Some(b']') if skip_space(i + 1) == bytes.len() => return Ok(n),
            Some(b']') => return Err("something follows the array".into()),
            _ => return Err(format!("item {n} is not followed by a comma or the end of the array")),
        }
    }
}

/// How many numbers the array `raw` holds, when that is plain from its bytes alone; `None` when only
/// [`each_number`] can say. `raw` is a value serde_json has read, so its syntax is sound: an array whose
/// bytes are digits, signs, points, exponent marks, commas and spaces holds nothing but numbers, one more
/// than its commas. They are finite when no number is longer than 24 bytes and no exponent has three
/// digits (at most 10^123).
///
/// A vector is most of a Titan answer, so this is most of reading one: eight bytes are taken at a time
/// while they are only digits, signs, points and commas (as Titan writes vectors), and one at a time
/// around an exponent or a space, by the same rules.
fn plain_count(raw: &str) -> Option<usize> {
    let inner = raw.strip_prefix('[')?.strip_suffix(']')?.as_bytes();
    let mut count = PlainCount::default();
    let mut words = inner.chunks_exact(8);
    for word in words.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        if count.exponent.is_some() || !count.word(u64::from_le_bytes(w))? {
            word.iter().try_for_each(|&b| count.byte(b))?;
        }
    }
    words.remainder().iter().try_for_each(|&b| count.byte(b))?;
    Some(if count.any { count.commas + 1 } else { 0 })
}

/// What [`plain_count`] has read so far.
#[derive(Default)]
struct PlainCount {
    commas: usize,
    /// Bytes of the number being read, spaces not counted.
    token: usize,
    /// Digits of its exponent, once an `e` or `E` is read.
    exponent: Option<usize>,
    /// Whether any number was read.
    any: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `w` (all below 0x80) that equals `b`.
fn bytes_equal(w: u64, b: u8) -> u64 {
    let x = w ^ (ONES * u64::from(b));
    // Per byte, without carries between bytes: the high bit is set when any low bit of x is, or its own.
    !(((x & !HIGH) + !HIGH) | x) & HIGH
}

impl PlainCount {
    const LONGEST: usize = 24;

    fn byte(&mut self, b: u8) -> Option<()> {
        match b {
            b',' => {
                self.commas += 1;
                (self.token, self.exponent) = (0, None);
                return Some(());
            }
            b' ' | b'\t' | b'\n' | b'\r' => return Some(()),
            b'e' | b'E' => self.exponent = Some(0),
            b'0'..=b'9' => {
                if let Some(digits) = self.exponent.as_mut() {
                    *digits += 1;
                    if *digits >= 3 {
                        return None;
                    }
                }
            }
            b'-' | b'+' | b'.' => {}
            _ => return None,
        }
        self.any = true;
        self.token += 1;
        (self.token <= Self::LONGEST).then_some(())
    }

    /// Eight bytes (little-endian) read at once, outside an exponent: `Some(false)` when one of them is not
    /// a digit, sign, point or comma, and they are to be read one by one instead.
    fn word(&mut self, w: u64) -> Option<bool> {
        // b'+' is 0x2B and b'9' is 0x39: adding 0x80 - 0x2B sets a byte's high bit when it is b'+' or
        // above, adding 0x80 - 0x3A when it is above b'9'. b'/' (0x2F) is the one byte between them to refuse.
        if w & HIGH != 0 {
            return Some(false);
        }
        // No byte is 0x80 or above, so no sum carries into the next byte.
        let in_range = (w + ONES * 0x55) & !(w + ONES * 0x46) & HIGH;
        if in_range != HIGH || bytes_equal(w, b'/') != 0 {
            return Some(false);
        }
        self.any = true;
        let commas = bytes_equal(w, b',');
        if commas == 0 {
            self.token += 8;
        } else {
            // Bytes before the first comma end the number being read; those after the last start one.
            self.token += commas.trailing_zeros() as usize / 8;
            if self.token > Self::LONGEST {
                return None;
            }
            self.commas += commas.count_ones() as usize;
            self.token = commas.leading_zeros() as usize / 8;
        }
        (self.token <= Self::LONGEST).then_some(true)
    }
}

/// The embedding and token count of a Titan answer, when its shape is plain: an object whose keys hold
/// no escapes, with `embedding` once, an array that [`plain_count`] can count (returned with the count),
/// and `inputTextTokenCount` at most once, an integer. `None` otherwise: serde_json then reads it and
/// says what is wrong. `text` is a value serde_json has read already, so its syntax is sound, and a vector
/// (nearly all of an answer) is found by its closing bracket rather than read once more.
fn plain_output(text: &str) -> Option<(&str, usize, Option<u64>)> {
    let b = text.as_bytes();
    let space = |mut i: usize| {
        while b.get(i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    };
    let mut i = space(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let (mut embedding, mut tokens) = (None, None);
    i = space(i + 1);
    // The end of the string opening at `at`, past its closing quote, when it holds no escape.
    let plain_string = |at: usize| {
        let close = at + 1 + memchr::memchr2(b'"', b'\\', &b[at + 1..])?;
        (b[close] == b'"').then_some(close + 1)
    };
    while b.get(i) == Some(&b'"') {
        let end = plain_string(i)?;
        let key = &text[i + 1..end - 1];
        i = space(end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = space(i + 1);
        i = match (key, b.get(start)?) {
            ("embedding", b'[') if embedding.is_none() => {
                let end = start + memchr::memchr(b']', &b[start..])? + 1;
                let raw = &text[start..end];
                embedding = Some((raw, plain_count(raw)?));
                end
            }
            ("inputTextTokenCount", b'0'..=b'9') if tokens.is_none() => {
                let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
                tokens = Some(text[start..end].parse().ok()?);
                end
            }
            ("embedding" | "inputTextTokenCount", _) => return None,
            // Another field: a scalar or a string, skipped to its end; anything larger goes to serde_json.
            (_, b'"') => plain_string(start)?,
            (_, b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                start
                    + b[start..]
                        .iter()
                        .take_while(|c| !matches!(c, b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
                        .count()
            }
            _ => return None,
        };
        i = space(i);
        match b.get(i) {
            Some(b',') => i = space(i + 1),
            Some(b'}') => {
                let (raw, n) = embedding?;
                return (space(i + 1) == b.len()).then_some((raw, n, tokens));
            }
            _ => return None,
        }
    }
    None
}

/// Reads one Titan `modelOutput` that should hold a vector of `dimensions` numbers.
pub fn read(model_output: &str, dimensions: u32) -> Result<Vector<'_>, Unusable> {
    let malformed = |why: String| Unusable {
        code: MALFORMED_MODEL_OUTPUT,
        message: format!("Bedrock's answer is not a Titan embeddings response: {why}"),
    };
    let (raw, n, tokens) = match plain_output(model_output) {
        Some(plain) => plain,
        None => {
            let out: TitanOutput = serde_json::from_str(model_output).map_err(|e| malformed(e.to_string()))?;
            let Some(raw) = out.embedding else {
                return Err(malformed("it has no embedding".into()));
            };
            let n = match plain_count(raw.get()) {
                Some(n) => n,
                None => each_number(raw.get(), |_| {})
                    .map_err(|why| malformed(format!("its embedding does not read as numbers: {why}")))?,
            };
            (raw.get(), n, out.input_text_token_count)
        }
    };
    if n != dimensions as usize {
        return Err(malformed(format!(
            "its embedding has {n} numbers, but {dimensions} were asked for"
        )));
    }
    Ok(Vector {
        raw,
        tokens: tokens.unwrap_or(0),
    })
}

/// The vector as base64 of its little-endian float32 bytes, as OpenAI's `encoding_format: base64` gives it.
/// Each number is read as an f64, then rounded to f32.
pub fn to_base64(raw: &str) -> Result<String, Unusable> {
    let mut bytes = Vec::with_capacity(raw.len() / 2);
    // A number the grammar accepts always reads as an f64; should one not, the vector is refused all the same.
    let mut unread = None;
    let read = each_number(raw, |number| match number.parse::<f64>() {
        Ok(x) => bytes.extend_from_slice(&(x as f32).to_le_bytes()),
        Err(e) => {
            unread.get_or_insert_with(|| format!("{number}: {e}"));
        }
    });
    if let Some(why) = read.err().or(unread) {
        return Err(Unusable {
            code: MALFORMED_MODEL_OUTPUT,
            message: format!("Bedrock's embedding is not an array of numbers: {why}"),
        });
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A body written by hand around a text as written is the JSON serde_json would write for the text's
        /// value, and has the fingerprint of that JSON, however the text was escaped.
        #[test]
        fn a_body_is_its_text_and_has_its_fingerprint(
            s in "\\PC*|[\\x00-\\x20\"\\\\/\u{80}-\u{10ffff}]*",
            all_u in any::<bool>(),
            dimensions in 1u32..4096,
        ) {
            let token = if all_u {
                s.encode_utf16().map(|unit| format!("\\u{unit:04X}")).collect::<String>()
            } else {
                let escaped = serde_json::to_string(&s).expect("a string serializes");
                escaped[1..escaped.len() - 1].to_string()
            };
            let token = format!("\"{token}\"");
            let text = JsonText::of_token(&token).expect("a string token");
            let (hash, len) = text.value.expect("a valid text");
            prop_assert_eq!(len, s.len());
            let mut out = b"[".to_vec();
            let fp = write_body(text, hash, dimensions, &mut out);
            let body = &out[1..];
            let read: serde_json::Value = serde_json::from_slice(body).expect("JSON");
            prop_assert_eq!(read, serde_json::json!({"inputText": s, "dimensions": dimensions, "normalize": true}));
            prop_assert_eq!(Some(fp), Fingerprint::of_json(body));
        }
    }

    /// What serde_json says of the same text: an array of finite numbers, and how many.
    fn serde_count(array: &str) -> Option<usize> {
        let numbers: Vec<f64> = serde_json::from_str(array).ok()?;
        numbers.iter().all(|x| x.is_finite()).then_some(numbers.len())
    }

    #[test]
    fn numbers_are_read_as_serde_json_reads_them() {
        let long = "9".repeat(400);
        let cases = [
            "[]",
            " [ ] ",
            "[0]",
            "[-0]",
            "[1,2,3]",
            " [ 1 , -2.5 ,3e2, 4E-2,5e+1 ] ",
            "[0.000123, -0.9876543210123]",
            "[1e308]",
            "[1.7e308]",
            "[1e309]",
            "[1e400]",
            "[-1e400]",
            "[1e-400]",
            "[99e99]",
            "[01]",
            "[1.]",
            "[.5]",
            "[-]",
            "[+1]",
            "[1e]",
            "[1e+]",
            "[NaN]",
            "[Infinity]",
            "[\"1\"]",
            "[null]",
            "[true]",
            "[[1]]",
            "[{}]",
            "[1,]",
            "[,1]",
            "[1 2]",
            "[1]x",
            "[1] ",
            "1",
            "",
            "[",
            "[1",
            "[1,",
            "{\"a\":1}",
            "[0x10]",
            "[1_000]",
            "[-01]",
            "[00]",
            "[0.0e0]",
        ];
        let plain = [
            "[1e99]",
            "[1e-99]",
            "[-1.5E+12, 2e-7]",
            "[1e100]",
            "[123456789012345678901234]",
            "[1234567890123456789012345]",
        ];
        let big = [
            format!("[{long}]"),
            format!("[0.{long}]"),
            format!("[{}e99]", "9".repeat(250)),
            format!("[{}]", "9".repeat(299)),
        ];
        for case in cases.iter().chain(&plain).map(|c| c.to_string()).chain(big) {
            let mut seen = Vec::new();
            let ours = each_number(&case, |n| seen.push(n.to_string())).ok();
            // The shortcut answers only for values serde_json has read, and then as each_number does.
            if serde_json::from_str::<serde::de::IgnoredAny>(&case).is_ok() {
                if let Some(n) = plain_count(case.trim()) {
                    assert_eq!(Some(n), ours, "{case:.60}");
                }
            }
            assert_eq!(ours, serde_count(&case), "{case:.60}");
            if let Some(n) = ours {
                assert_eq!(seen.len(), n);
                // Compared as the f32 a base64 vector holds: serde_json (without its float_roundtrip
                // feature) can be an ulp off in f64 where std rounds correctly, as on a 24-digit integer.
                let theirs: Vec<f64> = serde_json::from_str(&case).expect("read above");
                let ours: Vec<f64> = seen.iter().map(|t| t.parse().expect("a number")).collect();
                let as_f32 = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
                assert_eq!(as_f32(&ours), as_f32(&theirs), "{case:.60}");
            }
        }
    }

    /// [`plain_count`] as it reads bytes it cannot take eight at a time.
    fn plain_count_bytewise(raw: &str) -> Option<usize> {
        let inner = raw.strip_prefix('[')?.strip_suffix(']')?;
        let mut count = PlainCount::default();
        inner.bytes().try_for_each(|b| count.byte(b))?;
        Some(if count.any { count.commas + 1 } else { 0 })
    }

    proptest::proptest! {
        /// Eight bytes at a time or one at a time, a vector is counted (or left to each_number) alike,
        /// wherever its commas, exponents, spaces, long numbers and odd bytes fall against the words.
        #[test]
        fn words_are_counted_as_bytes_are(inner in "([0-9]{1,9}|[0-9]{1,9}|,|,|,|[-+.]|[-+.]|[eE][-+]?[0-9]{0,3}| ){0,40}(/|x|é)?([0-9]{1,9}|,){0,10}") {
            let raw = format!("[{inner}]");
            proptest::prop_assert_eq!(plain_count(&raw), plain_count_bytewise(&raw), "{}", raw);
        }
    }

    #[test]
    fn a_vector_is_counted_across_word_boundaries() {
        // Numbers of 24 bytes are plain and of 25 are not, wherever they start.
        for offset in 0..16 {
            let pad = "1,".repeat(offset);
            let at_limit = format!("[{pad}{},1]", "1".repeat(24));
            let over = format!("[{pad}{},1]", "1".repeat(25));
            assert_eq!(plain_count(&at_limit), Some(offset + 2), "{at_limit}");
            assert_eq!(plain_count(&over), None, "{over}");
            let exponent = format!("[{pad}1e99,1e-5,2E+10]");
            assert_eq!(plain_count(&exponent), Some(offset + 3), "{exponent}");
            assert_eq!(plain_count(&format!("[{pad}1e100]")), None);
            assert_eq!(plain_count(&format!("[{pad}1/2]")), None);
        }
        let titan = format!("[{}]", vec!["-0.015966404"; 1024].join(","));
        assert_eq!(plain_count(&titan), Some(1024));
    }

    #[test]
    fn a_plain_answer_is_read_as_serde_json_reads_it() {
        let cases = [
            r#"{"embedding":[0.1,-0.2,3e-5],"inputTextTokenCount":7}"#,
            r#" { "inputTextTokenCount" : 12 , "embedding" : [ 1 , 2 ] } "#,
            r#"{"embedding":[],"inputTextTokenCount":0}"#,
            r#"{"embedding":[1,2]}"#,
            r#"{"note":"x]y","embedding":[1],"n":-1.5,"t":true,"z":null}"#,
            r#"{"embeddingsByType":{"float":[1]},"embedding":[1]}"#,
            r#"{"embedding":[1],"embedding":[2]}"#,
            r#"{"embedding":[1],"inputTextTokenCount":1,"inputTextTokenCount":2}"#,
            r#"{"embeddin\u0067":[1,2,3]}"#,
            r#"{"note":"a\"b","embedding":[1]}"#,
            r#"{"embedding":[[1],[2]]}"#,
            r#"{"embedding":["1"]}"#,
            r#"{"embedding":null}"#,
            r#"{"embedding":[1],"inputTextTokenCount":-3}"#,
            r#"{"embedding":[1],"inputTextTokenCount":3.0}"#,
            r#"{"embedding":[1],"inputTextTokenCount":99999999999999999999999}"#,
            r#"{"embedding":[1e400]}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#""text""#,
        ];
        for case in cases {
            let theirs = serde_json::from_str::<TitanOutput>(case);
            // Not plain: serde_json reads it (or refuses it) instead; nothing to compare.
            if let Some((raw, n, tokens)) = plain_output(case) {
                let theirs = theirs.unwrap_or_else(|e| panic!("{case}: read plainly, but serde_json says {e}"));
                let embedding = theirs.embedding.map(RawValue::get);
                assert_eq!(Some(raw), embedding, "{case}");
                assert_eq!(Some(n), each_number(raw, |_| {}).ok(), "{case}");
                assert_eq!(tokens, theirs.input_text_token_count, "{case}");
            }
        }
        // The usual answers are plain.
        assert!(
            plain_output(cases[0]).is_some() && plain_output(cases[1]).is_some() && plain_output(cases[4]).is_some()
        );
    }

    #[test]
    fn base64_holds_each_number_rounded_to_f32() {
        let raw = "[0.1, -2, 3.5e-3]";
        let expected: Vec<u8> = [0.1f64, -2.0, 3.5e-3]
            .iter()
            .flat_map(|x| (*x as f32).to_le_bytes())
            .collect();
        assert_eq!(
            to_base64(raw).ok(),
            Some(base64::engine::general_purpose::STANDARD.encode(expected))
        );
        assert!(to_base64("[1, \"2\"]").is_err());
    }
}
