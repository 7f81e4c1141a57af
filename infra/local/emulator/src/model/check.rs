//! Small JSON checks shared by the fake models. Structural problems read like Bedrock's schema errors
//! (`Malformed input request: #/path: detail, please reformat your input and try again.`); rule violations
//! (ordering, pairing) read like the model provider's messages.

use std::fmt::Display;

use base64::Engine;
use serde_json::{Map, Value};

/// Why a record's `modelInput` was rejected: the `errorMessage` of its 400 error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

pub type Checked<T> = Result<T, Invalid>;

pub fn schema(path: &str, detail: impl Display) -> Invalid {
    Invalid(format!(
        "Malformed input request: {path}: {detail}, please reformat your input and try again."
    ))
}

pub fn rule(message: impl Into<String>) -> Invalid {
    Invalid(message.into())
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "JSONArray",
        Value::Object(_) => "JSONObject",
    }
}

fn expected(v: &Value, path: &str, what: &str) -> Invalid {
    schema(path, format!("expected type: {what}, found: {}", type_name(v)))
}

pub fn object<'a>(v: &'a Value, path: &str) -> Checked<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| expected(v, path, "JSONObject"))
}

/// Bedrock rejects unknown keys in model bodies.
pub fn allowed_keys(m: &Map<String, Value>, allowed: &[&str], path: &str) -> Checked<()> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(schema(path, format!("extraneous key [{k}] is not permitted"))),
        None => Ok(()),
    }
}

pub fn required<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Checked<&'a Value> {
    m.get(key)
        .ok_or_else(|| schema(path, format!("required key [{key}] not found")))
}

pub fn string<'a>(v: &'a Value, path: &str) -> Checked<&'a str> {
    v.as_str().ok_or_else(|| expected(v, path, "String"))
}

pub fn array<'a>(v: &'a Value, path: &str) -> Checked<&'a [Value]> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| expected(v, path, "JSONArray"))
}

pub fn boolean(v: &Value, path: &str) -> Checked<bool> {
    v.as_bool().ok_or_else(|| expected(v, path, "Boolean"))
}

pub fn integer(v: &Value, path: &str, min: u64, max: u64) -> Checked<u64> {
    let Value::Number(n) = v else {
        return Err(expected(v, path, "Integer"));
    };
    match (n.as_u64(), n.as_i64()) {
        (Some(n), _) if n < min => Err(schema(path, format!("{n} is not greater or equal to {min}"))),
        (Some(n), _) if n > max => Err(schema(path, format!("{n} is not less or equal to {max}"))),
        (Some(n), _) => Ok(n),
        (None, Some(negative)) => Err(schema(path, format!("{negative} is not greater or equal to {min}"))),
        (None, None) => Err(expected(v, path, "Integer")),
    }
}

pub fn number(v: &Value, path: &str, min: f64, max: f64) -> Checked<f64> {
    let x = v.as_f64().ok_or_else(|| expected(v, path, "Number"))?;
    if x < min {
        Err(schema(path, format!("{x} is not greater or equal to {min}")))
    } else if x > max {
        Err(schema(path, format!("{x} is not less or equal to {max}")))
    } else {
        Ok(x)
    }
}

pub fn strings<'a>(v: &'a Value, path: &str, max_items: usize) -> Checked<Vec<&'a str>> {
    let items = array(v, path)?;
    if items.len() > max_items {
        return Err(schema(
            path,
            format!("expected maximum item count: {max_items}, found: {}", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, s)| string(s, &format!("{path}/{i}")))
        .collect()
}

/// Standard base64 with padding; returns the decoded length.
pub fn base64_len(s: &str, path: &str) -> Checked<usize> {
    if s.is_empty() {
        return Err(schema(path, "image data must not be empty"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(|b| b.len())
        .map_err(|e| schema(path, format!("invalid base64 data ({e})")))
}

/// Tool names: `[a-zA-Z0-9_-]{1,64}` for Anthropic and for Converse/Nova `ToolName`.
pub fn tool_name<'a>(v: &'a Value, path: &str) -> Checked<&'a str> {
    let s = string(v, path)?;
    let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(s)
    } else {
        Err(schema(
            path,
            format!("string [{s}] does not match pattern ^[a-zA-Z0-9_-]{{1,64}}$"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn integers_and_numbers() {
        assert_eq!(integer(&json!(5), "#/x", 1, 10), Ok(5));
        assert!(integer(&json!(0), "#/x", 1, 10).is_err());
        assert!(integer(&json!(-3), "#/x", 0, 10).is_err());
        assert!(integer(&json!(1.5), "#/x", 1, 10).is_err());
        assert!(integer(&json!("5"), "#/x", 1, 10).is_err());
        assert_eq!(number(&json!(0.5), "#/t", 0.0, 1.0), Ok(0.5));
        assert!(number(&json!(1.5), "#/t", 0.0, 1.0).is_err());
    }

    #[test]
    fn keys_and_base64() {
        let m = json!({"a": 1, "b": 2});
        let m = m.as_object().expect("object");
        assert!(allowed_keys(m, &["a", "b"], "#").is_ok());
        let e = allowed_keys(m, &["a"], "#").expect_err("extra key");
        assert!(e.0.contains("extraneous key [b]"), "{}", e.0);
        assert_eq!(base64_len("aGVsbG8=", "#"), Ok(5));
        assert!(base64_len("not base64!", "#").is_err());
        assert!(tool_name(&json!("get_weather-2"), "#").is_ok());
        assert!(tool_name(&json!("get weather"), "#").is_err());
    }
}
