//! Amazon Titan Text Embeddings V2 (`amazon.titan-embed-text-v2:0`), InvokeModel body: request rules and the
//! response shape. An embeddings model has no Converse form. The vector depends only on `inputText` and
//! `dimensions`, never on the record id, so the same text always embeds the same way.

use serde::Serialize;
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use super::check::{allowed_keys, array, boolean, object, required, schema, string, type_name, Checked};
use super::tokens;
use crate::ids::SplitMix64;

const KEYS: &[&str] = &["inputText", "dimensions", "normalize", "embeddingTypes"];
const DEFAULT_DIMENSIONS: usize = 1024;
/// The documented limit on `inputText`, in characters (the model also stops at 8,192 tokens).
const MAX_INPUT_CHARS: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub embedding: Vec<f32>,
    pub input_text_token_count: u64,
    pub embeddings_by_type: EmbeddingsByType,
}

/// Always present: `float` alone when the request names no `embeddingTypes`, otherwise the types it names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingsByType {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub float: Option<Vec<f32>>,
    /// 1 where the float value is positive, else 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<Vec<u8>>,
}

/// What the validator extracts from a body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request<'a> {
    text: &'a str,
    dimensions: usize,
    normalize: bool,
    float: bool,
    binary: bool,
}

pub fn respond(body: &Value) -> Checked<Response> {
    let req = validate(body)?;
    let embedding = embed(req.text, req.dimensions, req.normalize);
    let binary = req
        .binary
        .then(|| embedding.iter().map(|&x| u8::from(x > 0.0)).collect());
    Ok(Response {
        embeddings_by_type: EmbeddingsByType {
            float: req.float.then(|| embedding.clone()),
            binary,
        },
        embedding,
        input_text_token_count: tokens(req.text.chars().count()).max(1),
    })
}

/// Checks every rule of the V2 body: `inputText` 1–50,000 characters, `dimensions` 1024/512/256, `normalize` a
/// boolean, `embeddingTypes` a non-empty list of `float`/`binary`, no other keys.
fn validate(body: &Value) -> Checked<Request<'_>> {
    let m = object(body, "#")?;
    allowed_keys(m, KEYS, "#")?;

    let text = string(required(m, "inputText", "#")?, "#/inputText")?;
    let chars = text.chars().count();
    if chars == 0 {
        return Err(schema("#/inputText", "expected minLength: 1, actual: 0"));
    }
    if chars > MAX_INPUT_CHARS {
        return Err(schema(
            "#/inputText",
            format!("expected maxLength: {MAX_INPUT_CHARS}, actual: {chars}"),
        ));
    }

    let dimensions = match m.get("dimensions") {
        Some(v) => dimensions(v)?,
        None => DEFAULT_DIMENSIONS,
    };
    let normalize = match m.get("normalize") {
        Some(v) => boolean(v, "#/normalize")?,
        None => true,
    };
    let (float, binary) = match m.get("embeddingTypes") {
        Some(v) => embedding_types(v)?,
        None => (true, false),
    };
    Ok(Request {
        text,
        dimensions,
        normalize,
        float,
        binary,
    })
}

fn dimensions(v: &Value) -> Checked<usize> {
    let p = "#/dimensions";
    if !matches!(v, Value::Number(n) if n.is_i64() || n.is_u64()) {
        return Err(schema(p, format!("expected type: Integer, found: {}", type_name(v))));
    }
    match v.as_u64() {
        Some(1024) => Ok(1024),
        Some(512) => Ok(512),
        Some(256) => Ok(256),
        _ => Err(schema(p, format!("{v} is not a valid enum value (1024, 512, 256)"))),
    }
}

/// Returns (float wanted, binary wanted).
fn embedding_types(v: &Value) -> Checked<(bool, bool)> {
    let p = "#/embeddingTypes";
    let items = array(v, p)?;
    if items.is_empty() {
        return Err(schema(p, "expected minimum item count: 1, found: 0"));
    }
    let (mut float, mut binary) = (false, false);
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}/{i}");
        match string(item, &ip)? {
            "float" => float = true,
            "binary" => binary = true,
            other => {
                return Err(schema(
                    &ip,
                    format!("{other} is not a valid enum value (float, binary)"),
                ))
            }
        }
    }
    Ok((float, binary))
}

/// `dimensions` values in [-1, 1) from a generator seeded by the text and the size; scaled to unit L2 norm when
/// `normalize` is set.
fn embed(text: &str, dimensions: usize, normalize: bool) -> Vec<f32> {
    let mut rng = SplitMix64::derived(xxh3_64(text.as_bytes()), &dimensions.to_string());
    let raw: Vec<f64> = (0..dimensions)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    let scale = if normalize && norm > 0.0 { 1.0 / norm } else { 1.0 };
    raw.iter().map(|x| (x * scale) as f32).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use serde_json::value::RawValue;

    use super::super::{family, invoke, Family, ModelOutput};
    use super::*;
    use crate::job::InvocationType;

    const MODEL: &str = "amazon.titan-embed-text-v2:0";

    fn body() -> Value {
        json!({"inputText": "The quick brown fox jumps over the lazy dog."})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = body();
        v[key] = value;
        v
    }

    fn reject(v: Value) -> String {
        respond(&v).expect_err("should be rejected").0
    }

    fn norm(v: &[f32]) -> f64 {
        v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt()
    }

    /// Through `invoke`, as the batch runs a record: the `modelOutput` JSON.
    fn run(v: &Value, record_id: &str) -> Value {
        let raw = RawValue::from_string(v.to_string()).expect("raw");
        let out = invoke(Family::TitanEmbed, MODEL, record_id, &raw).expect("valid");
        serde_json::to_value(out).expect("json")
    }

    #[test]
    fn answers_in_the_titan_v2_shape() {
        let v = run(&body(), "r1");
        let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(v["embedding"].as_array().expect("embedding").len(), 1024);
        assert_eq!(v["inputTextTokenCount"], 11);
        assert_eq!(v["embeddingsByType"], json!({"float": v["embedding"]}));
    }

    #[test]
    fn requested_dimensions() {
        for d in [256, 512, 1024] {
            let r = respond(&with("dimensions", json!(d))).expect("valid");
            assert_eq!(r.embedding.len(), d);
        }
        assert_eq!(respond(&body()).expect("valid").embedding.len(), 1024);
        let small = respond(&with("dimensions", json!(256))).expect("valid").embedding;
        let large = respond(&body()).expect("valid").embedding;
        assert_ne!(small[..], large[..256]);
    }

    #[test]
    fn unit_norm_only_when_normalizing() {
        for d in [256, 512, 1024] {
            let r = respond(&with("dimensions", json!(d))).expect("valid");
            assert!((norm(&r.embedding) - 1.0).abs() < 1e-4, "{d}: {}", norm(&r.embedding));
        }
        let explicit = respond(&with("normalize", json!(true))).expect("valid");
        assert_eq!(explicit, respond(&body()).expect("valid"));
        let raw = respond(&with("normalize", json!(false))).expect("valid");
        assert!((norm(&raw.embedding) - 1.0).abs() > 0.1, "{}", norm(&raw.embedding));
        let signs = |v: &[f32]| v.iter().map(|&x| x > 0.0).collect::<Vec<_>>();
        assert_eq!(signs(&raw.embedding), signs(&explicit.embedding));
    }

    #[test]
    fn same_text_same_vector_whatever_the_record() {
        let a = run(&body(), "r1");
        assert_eq!(a, run(&body(), "another-record"));
        let mut keyed = with("normalize", json!(true));
        keyed["dimensions"] = json!(1024);
        assert_eq!(run(&keyed, "r3")["embedding"], a["embedding"]);
        let other = run(&json!({"inputText": "A different sentence."}), "r1");
        assert_ne!(other["embedding"], a["embedding"]);
    }

    #[test]
    fn embeddings_by_type() {
        let r = respond(&with("embeddingTypes", json!(["float", "binary"]))).expect("valid");
        let binary = r.embeddings_by_type.binary.clone().expect("binary");
        assert_eq!(r.embeddings_by_type.float.as_deref(), Some(&r.embedding[..]));
        assert_eq!(binary.len(), 1024);
        for (b, x) in binary.iter().zip(&r.embedding) {
            assert_eq!(*b, u8::from(*x > 0.0));
        }
        let v = run(&with("embeddingTypes", json!(["binary"])), "r1");
        let by_type = v["embeddingsByType"].as_object().expect("object");
        assert_eq!(by_type.keys().collect::<Vec<_>>(), ["binary"]);
        assert!(by_type["binary"]
            .as_array()
            .expect("binary")
            .iter()
            .all(|b| b == 0 || b == 1));
        assert_eq!(v["embedding"].as_array().expect("embedding").len(), 1024);
    }

    #[test]
    fn usage_is_input_tokens_only() {
        let out = ModelOutput::Titan(respond(&json!({"inputText": "abcdefghi"})).expect("valid"));
        assert_eq!(out.usage(), (3, 0));
        let one = ModelOutput::Titan(respond(&json!({"inputText": "a"})).expect("valid"));
        assert_eq!(one.usage(), (1, 0));
    }

    #[test]
    fn input_text_rules() {
        let mut missing = body();
        missing.as_object_mut().expect("object").remove("inputText");
        assert!(reject(missing).contains("#: required key [inputText] not found"));
        assert!(reject(with("inputText", json!(""))).contains("#/inputText: expected minLength: 1"));
        let long = "é".repeat(MAX_INPUT_CHARS + 1);
        assert!(
            reject(with("inputText", json!(long))).contains("#/inputText: expected maxLength: 50000, actual: 50001")
        );
        assert!(respond(&with("inputText", json!("é".repeat(MAX_INPUT_CHARS)))).is_ok());
        assert!(reject(with("inputText", json!(["a"]))).contains("#/inputText: expected type: String"));
        assert!(reject(json!(["inputText"])).contains("#: expected type: JSONObject"));
    }

    #[test]
    fn parameter_rules() {
        assert!(reject(with("dimensions", json!(768))).contains("#/dimensions: 768 is not a valid enum value"));
        assert!(reject(with("dimensions", json!(-256))).contains("#/dimensions"));
        assert!(reject(with("dimensions", json!("512"))).contains("#/dimensions: expected type: Integer"));
        assert!(reject(with("dimensions", json!(512.5))).contains("#/dimensions: expected type: Integer"));
        assert!(reject(with("normalize", json!("true"))).contains("#/normalize: expected type: Boolean"));
        assert!(reject(with("embeddingTypes", json!([]))).contains("#/embeddingTypes: expected minimum item count"));
        assert!(reject(with("embeddingTypes", json!("float"))).contains("#/embeddingTypes: expected type: JSONArray"));
        assert!(reject(with("embeddingTypes", json!(["int8"]))).contains("#/embeddingTypes/0: int8 is not a valid"));
        assert!(reject(with("embeddingTypes", json!(["float", 1]))).contains("#/embeddingTypes/1: expected type"));
        let e = reject(with("foo", json!(1)));
        assert_eq!(
            e,
            "Malformed input request: #: extraneous key [foo] is not permitted, please reformat your input and try again."
        );
        assert!(reject(with("model", json!("text-embedding-3-small"))).contains("extraneous key [model]"));
    }

    #[test]
    fn invalid_bodies_are_400_record_errors() {
        let raw = RawValue::from_string(json!({"inputText": ""}).to_string()).expect("raw");
        let e = invoke(Family::TitanEmbed, MODEL, "r1", &raw).expect_err("invalid");
        assert_eq!(e.error_code, 400);
        assert!(e.error_message.starts_with("Malformed input request: #/inputText:"));
    }

    #[test]
    fn family_by_model_id() {
        let invoke = InvocationType::InvokeModel;
        assert_eq!(family(MODEL, invoke), Some(Family::TitanEmbed));
        assert_eq!(
            family("us.amazon.titan-embed-text-v2:0", invoke),
            Some(Family::TitanEmbed)
        );
        assert_eq!(
            family(
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
                invoke
            ),
            Some(Family::TitanEmbed)
        );
        assert_eq!(family("amazon.titan-embed-text-v1", invoke), None);
        assert_eq!(family(MODEL, InvocationType::Converse), None);
        assert_eq!(
            family(
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
                InvocationType::Converse
            ),
            None
        );
    }
}
