//! Plausible tool arguments from a JSON Schema: every required property gets a value of its type, so a tool call
//! from the fake model parses like a real one.

use serde_json::{Map, Value};

const MAX_DEPTH: usize = 8;

/// An example value for `schema`; `name` is the property name, used to pick a plausible string.
pub fn example(schema: &Value, name: &str) -> Value {
    example_at(schema, name, 0)
}

fn example_at(schema: &Value, name: &str, depth: usize) -> Value {
    let Some(s) = schema.as_object() else {
        return Value::String(sample_string(name, None));
    };
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    if let Some(first) = s.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
            return example_at(first, name, depth + 1);
        }
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if s.contains_key("properties") => "object",
        _ if s.contains_key("items") => "array",
        _ => "string",
    };
    match ty {
        "object" => {
            let props = s.get("properties").and_then(Value::as_object);
            let mut out = Map::new();
            for req in s.get("required").and_then(Value::as_array).into_iter().flatten() {
                if let Some(key) = req.as_str() {
                    let prop = props.and_then(|p| p.get(key)).unwrap_or(&Value::Null);
                    out.insert(key.to_string(), example_at(prop, key, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let item = example_at(s.get("items").unwrap_or(&Value::Null), name, depth + 1);
            let n = s.get("minItems").and_then(Value::as_u64).unwrap_or(1).clamp(1, 3);
            Value::Array((0..n).map(|_| item.clone()).collect())
        }
        "integer" => {
            let lo = s.get("minimum").and_then(Value::as_i64);
            let hi = s.get("maximum").and_then(Value::as_i64);
            Value::from(lo.unwrap_or_else(|| hi.map_or(1, |h| h.min(1))))
        }
        "number" => {
            let lo = s.get("minimum").and_then(Value::as_f64);
            let hi = s.get("maximum").and_then(Value::as_f64);
            Value::from(lo.unwrap_or_else(|| hi.map_or(1.5, |h| h.min(1.5))))
        }
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => {
            let mut v = sample_string(name, s.get("format").and_then(Value::as_str));
            let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0);
            while (v.chars().count() as u64) < min {
                v.push('x');
            }
            Value::String(v)
        }
    }
}

fn sample_string(name: &str, format: Option<&str>) -> String {
    let lower = name.to_ascii_lowercase();
    match format {
        Some("date") => return "2024-01-15".into(),
        Some("date-time") => return "2024-01-15T09:30:00Z".into(),
        Some("email") => return "jane.doe@example.com".into(),
        Some("uri") | Some("url") => return "https://example.com/".into(),
        Some("uuid") => return "123e4567-e89b-42d3-a456-426614174000".into(),
        _ => {}
    }
    let plausible = [
        ("city", "Paris"),
        ("location", "Paris, France"),
        ("country", "France"),
        ("email", "jane.doe@example.com"),
        ("date", "2024-01-15"),
        ("time", "09:30"),
        ("url", "https://example.com/"),
        ("unit", "celsius"),
        ("lang", "en"),
        ("currency", "EUR"),
        ("name", "Jane Doe"),
        ("query", "example search"),
    ];
    plausible.iter().find(|(k, _)| lower.contains(k)).map_or_else(
        || format!("example {name}").trim().to_string(),
        |(_, v)| (*v).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fills_required_properties_with_typed_values() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["fahrenheit", "celsius"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "ratio": {"type": "number"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "opts": {"type": "object", "properties": {"deep": {"type": "boolean"}}, "required": ["deep"]},
                "optional": {"type": "string"}
            },
            "required": ["city", "unit", "days", "ratio", "tags", "opts"]
        });
        assert_eq!(
            example(&schema, ""),
            json!({"city": "Paris", "unit": "fahrenheit", "days": 1, "ratio": 1.5, "tags": ["example tags"],
                   "opts": {"deep": true}})
        );
    }

    #[test]
    fn no_required_means_empty_object_and_junk_is_tolerated() {
        assert_eq!(example(&json!({"type": "object"}), ""), json!({}));
        assert_eq!(example(&json!({"type": ["null", "integer"]}), "n"), json!(1));
        assert_eq!(example(&json!(true), "query"), json!("example search"));
    }
}
