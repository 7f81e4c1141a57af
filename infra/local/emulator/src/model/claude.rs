//! Anthropic Claude, Messages API on Bedrock (docs/formats.md#claude-and-nova-bodies): request rules and the response shape.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};

use super::check::{
    allowed_keys, array, base64_len, boolean, integer, number, object, required, rule, schema, string, strings,
    tool_name, Checked,
};
use super::{decide, random_id, Conversation, Stop, Tool, ToolChoice};
use crate::ids::SplitMix64;

const VERSION: &str = "bedrock-2023-05-31";
const TOP_LEVEL: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "system",
    "messages",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
];
const MEDIA_TYPES: &[&str] = &["image/jpeg", "image/png", "image/webp", "image/gif"];
/// 3.75 MB per image (docs/formats.md#claude-and-nova-bodies).
const MAX_IMAGE_BYTES: usize = 3_932_160;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: String,
    pub content: Vec<Block>,
    pub stop_reason: &'static str,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text { text: String },
    ToolUse { id: String, name: String, input: Value },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// `anthropic.claude-3-haiku-20240307-v1:0` (or a profile id / ARN around it) → `claude-3-haiku-20240307`.
fn model_name(model_id: &str) -> String {
    let tail = model_id.rsplit_once("anthropic.").map_or(model_id, |(_, t)| t);
    let tail = tail.split(':').next().unwrap_or(tail);
    match tail.rsplit_once("-v") {
        Some((name, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => tail.to_string(),
    }
}

pub fn respond(body: &Value, model_id: &str, rng: &mut SplitMix64) -> Checked<Response> {
    let conv = validate(body, model_id)?;
    let model = model_name(model_id);
    let reply = decide(&conv, &model, true);
    let mut content = Vec::new();
    if let Some(text) = reply.text {
        content.push(Block::Text { text });
    }
    if let Some((name, input)) = reply.tool_call {
        content.push(Block::ToolUse {
            id: random_id(rng, "toolu_bdrk_", 24),
            name,
            input,
        });
    }
    let (stop_reason, stop_sequence) = match reply.stop {
        Stop::EndTurn => ("end_turn", None),
        Stop::MaxTokens => ("max_tokens", None),
        Stop::ToolUse => ("tool_use", None),
        Stop::StopSequence(s) => ("stop_sequence", Some(s)),
    };
    Ok(Response {
        id: random_id(rng, "msg_bdrk_", 24),
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason,
        stop_sequence,
        usage: Usage {
            input_tokens: reply.input_tokens,
            output_tokens: reply.output_tokens,
        },
    })
}

/// Checks every rule of docs/formats.md#claude-and-nova-bodies and extracts the conversation.
pub fn validate(body: &Value, model_id: &str) -> Checked<Conversation> {
    let m = object(body, "#")?;
    allowed_keys(m, TOP_LEVEL, "#")?;

    let version = string(required(m, "anthropic_version", "#")?, "#/anthropic_version")?;
    if version != VERSION {
        return Err(rule(format!(
            "anthropic_version: \"{version}\" is not supported, use \"{VERSION}\""
        )));
    }
    if let Some(b) = m.get("anthropic_beta") {
        strings(b, "#/anthropic_beta", usize::MAX)?;
    }
    let max_tokens = integer(required(m, "max_tokens", "#")?, "#/max_tokens", 1, u64::MAX)?;
    let mut input_chars = 0;
    if let Some(system) = m.get("system") {
        input_chars += system_chars(system)?;
    }
    let temperature = m
        .get("temperature")
        .map(|t| number(t, "#/temperature", 0.0, 1.0))
        .transpose()?;
    let top_p = m.get("top_p").map(|t| number(t, "#/top_p", 0.0, 1.0)).transpose()?;
    if let Some(k) = m.get("top_k") {
        integer(k, "#/top_k", 0, u64::MAX)?;
    }
    // docs/formats.md#claude-and-nova-bodies: Sonnet 4.5 and Haiku 4.5 take temperature or top_p, not both.
    let one_sampler_only = ["claude-sonnet-4-5", "claude-haiku-4-5"]
        .iter()
        .any(|m| model_id.contains(m));
    if one_sampler_only && temperature.is_some() && top_p.is_some() {
        return Err(rule(
            "`temperature` and `top_p` cannot both be specified for this model. Please use only one.",
        ));
    }
    let stop_sequences = match m.get("stop_sequences") {
        Some(s) => strings(s, "#/stop_sequences", 8191)?
            .into_iter()
            .map(String::from)
            .collect(),
        None => Vec::new(),
    };

    let tools = match m.get("tools") {
        Some(t) => parse_tools(t)?,
        None => Vec::new(),
    };
    input_chars += m.get("tools").map_or(0, |t| t.to_string().len());
    let tool_choice = match m.get("tool_choice") {
        Some(c) => parse_tool_choice(c, &tools)?,
        None => ToolChoice::Auto,
    };

    let messages = array(required(m, "messages", "#")?, "#/messages")?;
    let summary = check_messages(messages)?;
    if summary.uses_tools && tools.is_empty() {
        return Err(rule(
            "Requests which include `tool_use` or `tool_result` blocks must define tools.",
        ));
    }
    Ok(Conversation {
        input_chars: input_chars + summary.chars,
        images: summary.images,
        last_user_text: summary.last_user_text,
        answered_tool: summary.answered_tool,
        max_tokens,
        stop_sequences,
        tools,
        tool_choice,
    })
}

fn system_chars(system: &Value) -> Checked<usize> {
    match system {
        Value::String(s) => Ok(s.len()),
        Value::Array(blocks) => {
            let mut n = 0;
            for (i, b) in blocks.iter().enumerate() {
                let p = format!("#/system/{i}");
                let bm = object(b, &p)?;
                allowed_keys(bm, &["type", "text", "cache_control"], &p)?;
                let t = string(required(bm, "type", &p)?, &format!("{p}/type"))?;
                if t != "text" {
                    return Err(schema(&format!("{p}/type"), format!("{t} is not a valid enum value")));
                }
                n += string(required(bm, "text", &p)?, &format!("{p}/text"))?.len();
            }
            Ok(n)
        }
        other => Err(schema(
            "#/system",
            format!(
                "expected type: String or JSONArray, found: {}",
                super::check::type_name(other)
            ),
        )),
    }
}

fn parse_tools(v: &Value) -> Checked<Vec<Tool>> {
    let mut tools = Vec::new();
    let mut names = HashSet::new();
    for (i, t) in array(v, "#/tools")?.iter().enumerate() {
        let p = format!("#/tools/{i}");
        let tm = object(t, &p)?;
        allowed_keys(
            tm,
            &["type", "name", "description", "input_schema", "cache_control"],
            &p,
        )?;
        if let Some(kind) = tm.get("type") {
            let kind = string(kind, &format!("{p}/type"))?;
            if kind != "custom" {
                return Err(rule(format!(
                    "tools.{i}.type: only custom tools are supported, got \"{kind}\""
                )));
            }
        }
        let name = tool_name(required(tm, "name", &p)?, &format!("{p}/name"))?;
        if let Some(d) = tm.get("description") {
            string(d, &format!("{p}/description"))?;
        }
        let input_schema = required(tm, "input_schema", &p)?;
        let sm = object(input_schema, &format!("{p}/input_schema"))?;
        if sm.get("type").and_then(Value::as_str) != Some("object") {
            return Err(rule(format!(
                "tools.{i}.custom.input_schema.type: Input should be 'object'"
            )));
        }
        if !names.insert(name) {
            return Err(rule(format!(
                "tools: Tool names must be unique, \"{name}\" is used twice"
            )));
        }
        tools.push(Tool {
            name: name.to_string(),
            input_schema: input_schema.clone(),
        });
    }
    Ok(tools)
}

fn parse_tool_choice(v: &Value, tools: &[Tool]) -> Checked<ToolChoice> {
    let p = "#/tool_choice";
    let cm = object(v, p)?;
    allowed_keys(cm, &["type", "name", "disable_parallel_tool_use"], p)?;
    if tools.is_empty() {
        return Err(rule("tool_choice may only be specified while providing tools."));
    }
    if let Some(d) = cm.get("disable_parallel_tool_use") {
        boolean(d, &format!("{p}/disable_parallel_tool_use"))?;
    }
    let kind = string(required(cm, "type", p)?, &format!("{p}/type"))?;
    match kind {
        "auto" | "any" if cm.contains_key("name") => Err(schema(p, "extraneous key [name] is not permitted")),
        "auto" => Ok(ToolChoice::Auto),
        "any" => Ok(ToolChoice::Any),
        "tool" => {
            let name = string(required(cm, "name", p)?, &format!("{p}/name"))?;
            if tools.iter().any(|t| t.name == name) {
                Ok(ToolChoice::Tool(name.to_string()))
            } else {
                Err(rule(format!(
                    "tool_choice.name: tool \"{name}\" is not among the provided tools"
                )))
            }
        }
        other => Err(schema(
            &format!("{p}/type"),
            format!("{other} is not a valid enum value (auto, any, tool)"),
        )),
    }
}

#[derive(Default)]
struct MessagesSummary {
    chars: usize,
    images: usize,
    last_user_text: String,
    answered_tool: bool,
    uses_tools: bool,
}

fn check_messages(messages: &[Value]) -> Checked<MessagesSummary> {
    if messages.is_empty() {
        return Err(rule("messages: at least one message is required"));
    }
    let mut s = MessagesSummary::default();
    let mut prev_role: Option<&str> = None;
    // tool_use ids of the previous assistant turn, still waiting for their tool_result.
    let mut pending: Vec<String> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let p = format!("#/messages/{i}");
        let mm = object(msg, &p)?;
        allowed_keys(mm, &["role", "content"], &p)?;
        let role = string(required(mm, "role", &p)?, &format!("{p}/role"))?;
        if role != "user" && role != "assistant" {
            return Err(rule(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            )));
        }
        if i == 0 && role != "user" {
            return Err(rule("messages: first message must use the \"user\" role"));
        }
        if prev_role == Some(role) {
            return Err(rule(format!(
                "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{role}\" \
                 roles in a row"
            )));
        }
        let is_last = i + 1 == messages.len();
        let content = required(mm, "content", &p)?;
        let turn = check_content(content, role, i, is_last)?;
        // Anthropic refuses a prefill that ends with whitespace.
        if is_last && role == "assistant" && turn.text.ends_with(char::is_whitespace) {
            return Err(rule(
                "messages: final assistant content cannot end with trailing whitespace",
            ));
        }
        s.chars += turn.chars;
        s.images += turn.images;
        s.uses_tools |= !turn.tool_uses.is_empty() || !turn.tool_results.is_empty();

        if role == "user" {
            for id in &turn.tool_results {
                if !pending.contains(id) {
                    return Err(rule(format!(
                        "messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each \
                         `tool_result` block must have a corresponding `tool_use` block in the previous message."
                    )));
                }
            }
            let missing: Vec<&String> = pending.iter().filter(|id| !turn.tool_results.contains(id)).collect();
            if !missing.is_empty() {
                let ids: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                return Err(rule(format!(
                    "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. \
                     Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    ids.join(", ")
                )));
            }
            s.last_user_text = turn.text;
            s.answered_tool = !turn.tool_results.is_empty();
            pending.clear();
        } else {
            pending = turn.tool_uses;
        }
        prev_role = Some(role);
    }
    Ok(s)
}

#[derive(Default)]
struct Turn {
    chars: usize,
    images: usize,
    text: String,
    tool_uses: Vec<String>,
    tool_results: Vec<String>,
}

fn check_content(content: &Value, role: &str, i: usize, is_last: bool) -> Checked<Turn> {
    let p = format!("#/messages/{i}/content");
    let may_be_empty = is_last && role == "assistant";
    let mut turn = Turn::default();
    let blocks = match content {
        Value::String(text) => {
            if text.is_empty() && !may_be_empty {
                return Err(rule(format!("messages.{i}: text content blocks must be non-empty")));
            }
            turn.chars = text.len();
            turn.text = text.clone();
            return Ok(turn);
        }
        Value::Array(blocks) => blocks,
        other => {
            return Err(schema(
                &p,
                format!(
                    "expected type: String or JSONArray, found: {}",
                    super::check::type_name(other)
                ),
            ))
        }
    };
    if blocks.is_empty() && !may_be_empty {
        return Err(rule(format!(
            "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
        )));
    }
    let mut seen_other = false;
    let mut ids = HashSet::new();
    for (j, b) in blocks.iter().enumerate() {
        let bp = format!("{p}/{j}");
        let bm = object(b, &bp)?;
        let kind = string(required(bm, "type", &bp)?, &format!("{bp}/type"))?;
        match kind {
            "text" => {
                let text = text_block(bm, &bp, i, j)?;
                turn.chars += text.len();
                if !turn.text.is_empty() {
                    turn.text.push('\n');
                }
                turn.text.push_str(text);
                seen_other = true;
            }
            "image" => {
                image_block(bm, &bp)?;
                turn.images += 1;
                seen_other = true;
            }
            "tool_use" => {
                if role != "assistant" {
                    return Err(rule(format!(
                        "messages.{i}.content.{j}: tool_use blocks may only appear in assistant messages"
                    )));
                }
                allowed_keys(bm, &["type", "id", "name", "input", "cache_control"], &bp)?;
                let id = string(required(bm, "id", &bp)?, &format!("{bp}/id"))?;
                let id_ok = !id.is_empty() && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
                if !id_ok {
                    return Err(schema(
                        &format!("{bp}/id"),
                        format!("string [{id}] does not match pattern ^[a-zA-Z0-9_-]+$"),
                    ));
                }
                if !ids.insert(id.to_string()) {
                    return Err(rule(format!(
                        "messages.{i}.content.{j}: tool_use ids must be unique, found {id} twice"
                    )));
                }
                string(required(bm, "name", &bp)?, &format!("{bp}/name"))?;
                let input = required(bm, "input", &bp)?;
                object(input, &format!("{bp}/input"))?;
                turn.chars += input.to_string().len();
                turn.tool_uses.push(id.to_string());
                seen_other = true;
            }
            "tool_result" => {
                if role != "user" {
                    return Err(rule(format!(
                        "messages.{i}.content.{j}: tool_result blocks may only appear in user messages"
                    )));
                }
                if seen_other {
                    return Err(rule(format!(
                        "messages.{i}.content.{j}: tool_result blocks must come first in the content of a user \
                         message, before any text or image"
                    )));
                }
                allowed_keys(
                    bm,
                    &["type", "tool_use_id", "content", "is_error", "cache_control"],
                    &bp,
                )?;
                let id = string(required(bm, "tool_use_id", &bp)?, &format!("{bp}/tool_use_id"))?;
                if let Some(e) = bm.get("is_error") {
                    boolean(e, &format!("{bp}/is_error"))?;
                }
                let (chars, text) = tool_result_content(bm.get("content"), &format!("{bp}/content"), i, j)?;
                turn.chars += chars;
                if turn.text.is_empty() {
                    turn.text = text;
                }
                turn.tool_results.push(id.to_string());
            }
            other => {
                return Err(schema(
                    &format!("{bp}/type"),
                    format!("{other} is not a valid enum value (text, image, tool_use, tool_result)"),
                ))
            }
        }
    }
    Ok(turn)
}

fn text_block<'a>(bm: &'a Map<String, Value>, bp: &str, i: usize, j: usize) -> Checked<&'a str> {
    allowed_keys(bm, &["type", "text", "cache_control", "citations"], bp)?;
    let text = string(required(bm, "text", bp)?, &format!("{bp}/text"))?;
    if text.is_empty() {
        return Err(rule(format!(
            "messages.{i}.content.{j}: text content blocks must be non-empty"
        )));
    }
    Ok(text)
}

fn image_block(bm: &Map<String, Value>, bp: &str) -> Checked<()> {
    allowed_keys(bm, &["type", "source", "cache_control"], bp)?;
    let sp = format!("{bp}/source");
    let src = object(required(bm, "source", bp)?, &sp)?;
    let kind = string(required(src, "type", &sp)?, &format!("{sp}/type"))?;
    if kind != "base64" {
        return Err(rule(format!(
            "{}: source.type \"{kind}\" is not supported on Bedrock, images must be base64",
            bp.trim_start_matches("#/")
        )));
    }
    allowed_keys(src, &["type", "media_type", "data"], &sp)?;
    let media = string(required(src, "media_type", &sp)?, &format!("{sp}/media_type"))?;
    if !MEDIA_TYPES.contains(&media) {
        return Err(schema(
            &format!("{sp}/media_type"),
            format!("{media} is not a valid enum value ({})", MEDIA_TYPES.join(", ")),
        ));
    }
    let data = string(required(src, "data", &sp)?, &format!("{sp}/data"))?;
    if base64_len(data, &format!("{sp}/data"))? > MAX_IMAGE_BYTES {
        return Err(rule("image exceeds 3.75 MB maximum"));
    }
    Ok(())
}

/// `tool_result.content`: absent, a string, or text/image blocks. Returns (chars, text).
fn tool_result_content(content: Option<&Value>, p: &str, i: usize, j: usize) -> Checked<(usize, String)> {
    match content {
        None => Ok((0, String::new())),
        Some(Value::String(s)) => Ok((s.len(), s.clone())),
        Some(Value::Array(blocks)) => {
            let mut chars = 0;
            let mut text = String::new();
            for (k, b) in blocks.iter().enumerate() {
                let bp = format!("{p}/{k}");
                let bm = object(b, &bp)?;
                match string(required(bm, "type", &bp)?, &format!("{bp}/type"))? {
                    "text" => {
                        let t = text_block(bm, &bp, i, j)?;
                        chars += t.len();
                        text.push_str(t);
                    }
                    "image" => image_block(bm, &bp)?,
                    other => {
                        return Err(schema(
                            &format!("{bp}/type"),
                            format!("{other} is not a valid enum value (text, image)"),
                        ))
                    }
                }
            }
            Ok((chars, text))
        }
        Some(other) => Err(schema(
            p,
            format!(
                "expected type: String or JSONArray, found: {}",
                super::check::type_name(other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    fn body() -> Value {
        json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 256,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}]
        })
    }

    fn tools_body() -> Value {
        json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 256,
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {
                "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]}
            ]
        })
    }

    fn reject(v: Value) -> String {
        validate(&v, MODEL).expect_err("should be rejected").0
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut v = body();
        let mut at = &mut v;
        for (n, key) in path.iter().enumerate() {
            if n + 1 == path.len() {
                at[*key] = value.clone();
            } else {
                at = &mut at[*key];
            }
        }
        v
    }

    #[test]
    fn answers_in_the_messages_shape() {
        let r = respond(&body(), MODEL, &mut SplitMix64::new(1)).expect("valid");
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["model"], "claude-3-haiku-20240307");
        assert_eq!(v["content"][0]["type"], "text");
        assert_eq!(v["stop_reason"], "end_turn");
        assert!(v["stop_sequence"].is_null());
        assert!(v["id"].as_str().expect("id").starts_with("msg_bdrk_"));
        assert!(v["usage"]["input_tokens"].as_u64().expect("n") > 0);
        assert!(v["usage"]["output_tokens"].as_u64().expect("n") > 0);
    }

    #[test]
    fn tool_offers_get_a_tool_use_with_required_properties() {
        let mut b = tools_body();
        b["messages"] = json!([{"role": "user", "content": "Weather in Paris?"}]);
        let v = serde_json::to_value(respond(&b, MODEL, &mut SplitMix64::new(1)).expect("valid")).expect("json");
        assert_eq!(v["stop_reason"], "tool_use");
        let call = &v["content"][1];
        assert_eq!(call["type"], "tool_use");
        assert_eq!(call["name"], "get_weather");
        assert!(call["id"].as_str().expect("id").starts_with("toolu_bdrk_"));
        assert!(call["input"]["city"].is_string());
        // After a tool result, plain text.
        let v =
            serde_json::to_value(respond(&tools_body(), MODEL, &mut SplitMix64::new(1)).expect("valid")).expect("json");
        assert_eq!(v["stop_reason"], "end_turn");
    }

    #[test]
    fn tiny_max_tokens() {
        let v = serde_json::to_value(
            respond(&with(&["max_tokens"], json!(1)), MODEL, &mut SplitMix64::new(1)).expect("valid"),
        )
        .expect("json");
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(v["usage"]["output_tokens"], 1);
    }

    #[test]
    fn model_names() {
        assert_eq!(model_name(MODEL), "claude-3-haiku-20240307");
        assert_eq!(
            model_name("us.anthropic.claude-3-5-haiku-20241022-v1:0"),
            "claude-3-5-haiku-20241022"
        );
        assert_eq!(
            model_name("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2:1"),
            "claude"
        );
    }

    #[test]
    fn top_level_rules() {
        reject(with(&["anthropic_version"], json!("2023-06-01")));
        reject(with(&["max_tokens"], json!(0)));
        reject(with(&["max_tokens"], json!("100")));
        reject(with(&["temperature"], json!(1.5)));
        reject(with(&["top_p"], json!(-0.1)));
        reject(with(&["top_k"], json!(-1)));
        reject(with(&["stop_sequences"], json!("END")));
        assert!(reject(with(&["model"], json!("gpt-4o"))).contains("extraneous key [model]"));
        let mut no_version = body();
        no_version.as_object_mut().expect("object").remove("anthropic_version");
        reject(no_version);
        reject(with(&["system"], json!([{"type": "image"}])));
        reject(with(&["messages"], json!([])));
        let both = with(&["temperature"], json!(0.5));
        let mut both = both;
        both["top_p"] = json!(0.9);
        assert!(validate(&both, MODEL).is_ok());
        assert!(validate(&both, "us.anthropic.claude-sonnet-4-5-20250929-v1:0").is_err());
    }

    #[test]
    fn message_rules() {
        reject(with(&["messages"], json!([{"role": "assistant", "content": "hi"}])));
        reject(with(&["messages"], json!([{"role": "system", "content": "hi"}])));
        reject(with(
            &["messages"],
            json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
        ));
        reject(with(&["messages"], json!([{"role": "user", "content": ""}])));
        reject(with(&["messages"], json!([{"role": "user", "content": []}])));
        reject(with(
            &["messages"],
            json!([{"role": "user", "content": "a", "name": "x"}]),
        ));
        reject(with(
            &["messages"],
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
        ));
        reject(with(
            &["messages"],
            json!([{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]),
        ));
        reject(with(
            &["messages"],
            json!([{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "aGVsbG8="}}]}]),
        ));
        reject(with(
            &["messages"],
            json!([{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%"}}]}]),
        ));
        assert!(validate(
            &with(
                &["messages"],
                json!([{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGVsbG8="}}, {"type": "text", "text": "What is it?"}]},
                       {"role": "assistant", "content": []}])
            ),
            MODEL
        )
        .is_ok());
        let prefill = |text: &str| {
            with(
                &["messages"],
                json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": text}]),
            )
        };
        assert!(reject(prefill("{\"a\": ")).contains("cannot end with trailing whitespace"));
        assert!(validate(&prefill(" {\"a\":"), MODEL).is_ok());
    }

    #[test]
    fn tool_rules() {
        assert!(validate(&tools_body(), MODEL).is_ok());
        let mut b = tools_body();
        b["messages"][2]["content"][0]["tool_use_id"] = json!("toolu_other");
        assert!(reject(b).contains("unexpected `tool_use_id`"));
        let mut b = tools_body();
        b["messages"][2]["content"] = json!("no result");
        assert!(reject(b).contains("without `tool_result`"));
        let mut b = tools_body();
        b.as_object_mut().expect("object").remove("tools");
        assert!(reject(b).contains("must define tools"));
        let mut b = tools_body();
        b["messages"][2]["content"] = json!([{"type": "text", "text": "here"}, {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]);
        assert!(reject(b).contains("must come first"));
        let mut b = tools_body();
        b["messages"][0]["content"] = json!([{"type": "tool_use", "id": "t", "name": "get_weather", "input": {}}]);
        reject(b);
        let mut b = tools_body();
        b["tool_choice"] = json!({"type": "none"});
        reject(b);
        let mut b = tools_body();
        b["tool_choice"] = json!({"type": "tool", "name": "missing"});
        reject(b);
        let mut b = tools_body();
        b["tool_choice"] = json!({"type": "tool", "name": "get_weather"});
        assert!(validate(&b, MODEL).is_ok());
        let mut b = tools_body();
        b["tools"][0]["input_schema"] = json!({"type": "string"});
        reject(b);
        let mut b = tools_body();
        b["tools"] = json!([{"type": "function", "function": {"name": "get_weather"}}]);
        reject(b);
        reject(with(&["tool_choice"], json!({"type": "auto"})));
    }
}
