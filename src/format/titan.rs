//! Amazon Titan Text Embeddings, both ways (docs/formats.md, "Embeddings"): the `modelInput` of one text, and
//! the vector its `modelOutput` holds. Titan embeds one text per request.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::completion::{Unusable, MALFORMED_MODEL_OUTPUT};
use crate::error::serde_message;

/// The Titan Text Embeddings V2 request body of one text (docs/formats.md, "Embeddings"). `normalize` is
/// always sent as true: OpenAI's vectors have unit length, and so do Titan's by default.
#[derive(Serialize)]
pub struct Body<'r> {
    #[serde(rename = "inputText")]
    pub input_text: &'r str,
    pub dimensions: u32,
    pub normalize: bool,
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
    pub raw: &'a RawValue,
    pub tokens: u64,
}

/// Counts the numbers of a JSON array without keeping them, refusing anything that is not a finite number.
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of numbers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while let Some(x) = seq.next_element::<f64>()? {
                    if !x.is_finite() {
                        return Err(de::Error::custom("a number out of range"));
                    }
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Reads one Titan `modelOutput` that should hold a vector of `dimensions` numbers.
pub fn read(model_output: &str, dimensions: u32) -> Result<Vector<'_>, Unusable> {
    let malformed = |why: String| Unusable {
        code: MALFORMED_MODEL_OUTPUT,
        message: format!("Bedrock's answer is not a Titan embeddings response: {why}"),
    };
    let out: TitanOutput = serde_json::from_str(model_output).map_err(|e| malformed(e.to_string()))?;
    let Some(raw) = out.embedding else {
        return Err(malformed("it has no embedding".into()));
    };
    let Count(n) = serde_json::from_str(raw.get())
        .map_err(|e| malformed(format!("its embedding does not read as numbers: {}", serde_message(&e))))?;
    if n != dimensions as usize {
        return Err(malformed(format!(
            "its embedding has {n} numbers, but {dimensions} were asked for"
        )));
    }
    Ok(Vector {
        raw,
        tokens: out.input_text_token_count.unwrap_or(0),
    })
}

/// The vector as base64 of its little-endian float32 bytes, as OpenAI's `encoding_format: base64` gives it.
pub fn to_base64(raw: &RawValue) -> Result<String, Unusable> {
    let numbers: Vec<f64> = serde_json::from_str(raw.get()).map_err(|e| Unusable {
        code: MALFORMED_MODEL_OUTPUT,
        message: format!("Bedrock's embedding is not an array of numbers: {e}"),
    })?;
    let mut bytes = Vec::with_capacity(numbers.len() * 4);
    for x in numbers {
        bytes.extend_from_slice(&(x as f32).to_le_bytes());
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}
