//! A JSON string kept as it was written: the text between its quotes, escapes and all.
//!
//! An embeddings text goes to Titan as the line wrote it, so translate neither decodes it into a `String`
//! nor escapes it again (docs/formats.md, "Embeddings"). What it still needs of the text (where it ends in a
//! list, its hash for the record map's fingerprint, its length, whether its escapes make Unicode) comes
//! from [`read`], one pass that finds its end and undoes its escapes, if it has any, into a scratch buffer.
//!
//! The text must be the inside of a string token that serde_json has read past (as a `&RawValue`, say),
//! which checked everything but one thing: that a `\u` escape of half a surrogate pair has its other half.

/// Why a text does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// A `\u` escape of half a surrogate pair (such as `\ud800`) without its other half.
    LoneSurrogate,
    /// Not the inside of a string token serde_json accepts: an unknown escape, a short `\u`, a bare quote.
    NotAString,
}

/// Reads the string token whose opening quote is at `open` in `text`, JSON that serde_json has read, in
/// one pass: returns the index just past its closing quote, and whether its escapes make text. Its
/// decoded text is appended to `out` when it has an escape; a text without one is the token's inside as
/// it is, and `out` is left alone. `None` if there is no string at `open`.
pub fn read(text: &[u8], open: usize, out: &mut Vec<u8>) -> Option<(usize, Result<(), Unfit>)> {
    if text.get(open) != Some(&b'"') {
        return None;
    }
    let (mut i, mut run) = (open + 1, open + 1);
    loop {
        i += memchr::memchr2(b'"', b'\\', text.get(i..)?)?;
        if text[i] == b'"' {
            if run > open + 1 {
                out.extend_from_slice(&text[run..i]);
            }
            return Some((i + 1, Ok(())));
        }
        if run == open + 1 {
            out.reserve(i - open + 64);
        }
        out.extend_from_slice(&text[run..i]);
        match escape(text, i + 1, out) {
            Ok(len) => {
                i += 1 + len;
                run = i;
            }
            Err(unfit) => return Some((string_end(text, i)?, Err(unfit))),
        }
    }
}

/// The index just past the closing quote of a string token, from `i` inside it.
fn string_end(text: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += memchr::memchr2(b'"', b'\\', text.get(i..)?)?;
        if text[i] == b'"' {
            return Some(i + 1);
        }
        // An escape: its next byte is never the end (a `\u`'s hex digits are no quote or backslash).
        i += 2;
    }
}

/// Appends the decoded text of `inner` to `out`, exactly as serde_json decodes a string: the runs between
/// escapes as they are, each escape as the UTF-8 it stands for.
pub fn decode(inner: &str, out: &mut Vec<u8>) -> Result<(), Unfit> {
    let bytes = inner.as_bytes();
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'\\', &bytes[i..]) {
        out.extend_from_slice(&bytes[i..i + k]);
        i += k + 1;
        i += escape(bytes, i, out)?;
    }
    out.extend_from_slice(&bytes[i..]);
    Ok(())
}

/// Appends what the escape whose backslash is just before `at` stands for to `out`, and returns how many
/// bytes it took after the backslash.
fn escape(text: &[u8], at: usize, out: &mut Vec<u8>) -> Result<usize, Unfit> {
    let short = match text.get(at) {
        Some(b'"') => b'"',
        Some(b'\\') => b'\\',
        Some(b'/') => b'/',
        Some(b'b') => 0x08,
        Some(b'f') => 0x0c,
        Some(b'n') => b'\n',
        Some(b'r') => b'\r',
        Some(b't') => b'\t',
        Some(b'u') => {
            let (c, len) = unicode_escape(&text[at + 1..])?;
            out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
            return Ok(1 + len);
        }
        _ => return Err(Unfit::NotAString),
    };
    out.push(short);
    Ok(1)
}

/// The character of the `\u` escape whose hex digits start `after`, and how many bytes it took after its
/// `u`: 4, or 10 for a surrogate pair (`\ud83d\ude00`).
fn unicode_escape(after: &[u8]) -> Result<(char, usize), Unfit> {
    let high = hex4(after)?;
    let code = match high {
        0xdc00..=0xdfff => return Err(Unfit::LoneSurrogate),
        0xd800..=0xdbff => {
            let low = match after.get(4..6) {
                Some(b"\\u") => hex4(&after[6..])?,
                _ => return Err(Unfit::LoneSurrogate),
            };
            if !(0xdc00..=0xdfff).contains(&low) {
                return Err(Unfit::LoneSurrogate);
            }
            let code = 0x10000 + ((u32::from(high) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
            return char::from_u32(code).map(|c| (c, 10)).ok_or(Unfit::NotAString);
        }
        other => u32::from(other),
    };
    char::from_u32(code).map(|c| (c, 4)).ok_or(Unfit::NotAString)
}

fn hex4(digits: &[u8]) -> Result<u16, Unfit> {
    let digits = digits.get(..4).ok_or(Unfit::NotAString)?;
    let mut code = 0u16;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(Unfit::NotAString),
        };
        code = code << 4 | u16::from(v);
    }
    Ok(code)
}

/// The number of characters `inner` decodes to.
pub fn chars(inner: &str) -> Result<usize, Unfit> {
    let mut text = Vec::with_capacity(inner.len());
    decode(inner, &mut text)?;
    Ok(text.iter().filter(|&&b| (b as i8) >= -0x40).count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decoded(inner: &str) -> Result<String, Unfit> {
        let mut out = Vec::new();
        decode(inner, &mut out)?;
        Ok(String::from_utf8(out).expect("decoding keeps UTF-8"))
    }

    /// What serde_json makes of the same inside of a string token, and whether it reads past it as raw.
    fn serde(inner: &str) -> (Option<String>, bool) {
        let token = format!("\"{inner}\"");
        let raw = serde_json::from_str::<&serde_json::value::RawValue>(&token).is_ok();
        (serde_json::from_str::<String>(&token).ok(), raw)
    }

    #[test]
    fn every_escape_decodes_as_serde_json_decodes_it() {
        for inner in [
            "",
            "plain",
            r#"\"\\\/\b\f\n\r\t"#,
            r"a\u00e9b\u0000c\u001F\u007f",
            r"\ud83d\ude00 and \uD83D\uDE00",
            r"\uffff\u0800\u07ff\u0080",
            "é 👍🏽 مرحبا",
            r"end\\",
        ] {
            assert_eq!(decoded(inner).ok(), serde(inner).0, "{inner:?}");
            assert_eq!(
                chars(inner).ok(),
                serde(inner).0.map(|s| s.chars().count()),
                "{inner:?}"
            );
        }
    }

    #[test]
    fn half_a_surrogate_pair_is_named() {
        for inner in [
            r"\ud800",
            r"a\ud800b",
            r"\udc00",
            r"\ud800\u0041",
            r"\ud800\ud800",
            r"\ud83d",
            r"x\ud83d\n",
        ] {
            assert_eq!(
                serde(inner),
                (None, true),
                "serde_json reads {inner:?} past, but not as a string"
            );
            assert_eq!(decoded(inner), Err(Unfit::LoneSurrogate), "{inner:?}");
        }
    }

    #[test]
    fn a_string_is_read_to_its_first_unescaped_quote() {
        let text = br#"["a", "b\"c\\", "\u0022", "", "x\ud800y", "z"]"#;
        let mut read_all = Vec::new();
        let mut i = 0;
        while let Some(open) = text[i..].iter().position(|&b| b == b'"').map(|p| p + i) {
            let mut out = Vec::new();
            let (end, fit) = read(text, open, &mut out).expect("a string");
            let token = std::str::from_utf8(&text[open..end]).expect("UTF-8").to_string();
            read_all.push((token, fit, String::from_utf8(out).expect("UTF-8")));
            i = end;
        }
        let expected = [
            (r#""a""#, Ok(()), ""),
            (r#""b\"c\\""#, Ok(()), r#"b"c\"#),
            (r#""\u0022""#, Ok(()), r#"""#),
            (r#""""#, Ok(()), ""),
            (r#""x\ud800y""#, Err(Unfit::LoneSurrogate), "x"),
            (r#""z""#, Ok(()), ""),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|&(t, f, o)| (t.to_string(), f, o.to_string()))
            .collect();
        assert_eq!(read_all, expected);
        assert_eq!(read(br#""unterminated\""#, 0, &mut Vec::new()), None);
        assert_eq!(read(b"[1]", 0, &mut Vec::new()), None);
    }

    proptest! {
        /// Any string serde_json writes (with its own escapes, or every character as `\u`) decodes back to
        /// itself, and the token it is ends where serde_json's does.
        #[test]
        fn decoding_undoes_any_escaping(s in "\\PC*|[\\x00-\\x20\"\\\\/\u{80}-\u{10ffff}]*", all_u in any::<bool>()) {
            let token = if all_u {
                let mut t = String::from("\"");
                for unit in s.encode_utf16() {
                    t.push_str(&format!("\\u{unit:04x}"));
                }
                t + "\""
            } else {
                serde_json::to_string(&s).expect("a string serializes")
            };
            let inner = &token[1..token.len() - 1];
            prop_assert_eq!(decoded(inner), Ok(s.clone()));
            prop_assert_eq!(chars(inner), Ok(s.chars().count()));
            let list = format!("[{token},1]");
            let mut out = Vec::new();
            prop_assert_eq!(read(list.as_bytes(), 1, &mut out), Some((1 + token.len(), Ok(()))));
            if inner.contains('\\') {
                prop_assert_eq!(out, s.as_bytes());
            } else {
                prop_assert!(out.is_empty());
            }
        }

        /// Arbitrary escapes and bytes: decoded exactly when serde_json decodes them, to the same text.
        #[test]
        fn decoding_agrees_with_serde_json(parts in prop::collection::vec(prop_oneof![
            Just("\\u".to_string()),
            "[0-9a-fA-FdD]{1,4}",
            Just("\\ud83d".to_string()),
            Just("\\ude00".to_string()),
            Just("\\\\".to_string()),
            Just("\\n".to_string()),
            "[a-z é]{0,3}",
        ], 0..8)) {
            let inner = parts.concat();
            let (read, raw) = serde(&inner);
            if raw {
                prop_assert_eq!(decoded(&inner).ok(), read);
            }
        }
    }
}
