//! Amazon Nova understanding models, InvokeModel `messages-v1` body (docs/formats.md#claude-and-nova-bodies), and the Converse body of
//! `modelInvocationType: Converse` jobs (docs/bedrock.md#input-records; docs/formats.md#converse), which shares Nova's content-block shapes.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};

use super::check::{
    allowed_keys, array, base64_len, integer, number, object, required, rule, schema, string, strings, tool_name,
    Checked,
};
use super::{decide, random_id, Conversation, Stop, Tool, ToolChoice};
use crate::ids::SplitMix64;

const IMAGE_FORMATS: &[&str] = &["jpeg", "png", "gif", "webp"];
/// [UNK] Nova leaves `maxTokens` "dynamic" when omitted; the fake model uses this budget.
const DEFAULT_MAX_TOKENS: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Nova,
    Converse,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub output: Output,
    pub stop_reason: &'static str,
    pub usage: NovaUsage,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    pub output: Output,
    pub stop_reason: &'static str,
    pub usage: ConverseUsage,
    pub metrics: Metrics,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    pub message: Message,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Block {
    #[serde(rename = "text")]
    Text(String),
    #[serde(rename = "toolUse")]
    ToolUse(ToolUse),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse {
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NovaUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cache_read_input_token_count: u64,
    pub cache_write_input_token_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub latency_ms: u64,
}

fn model_label(model_id: &str) -> &str {
    let tail = model_id.rsplit('/').next().unwrap_or(model_id);
    tail.split(':').next().unwrap_or(tail)
}

fn answer(conv: &Conversation, model_id: &str, rng: &mut SplitMix64) -> (Message, &'static str, u64, u64) {
    let reply = decide(conv, model_label(model_id), false);
    let mut content = Vec::new();
    if let Some(text) = reply.text {
        content.push(Block::Text(text));
    }
    if let Some((name, input)) = reply.tool_call {
        content.push(Block::ToolUse(ToolUse {
            tool_use_id: random_id(rng, "tooluse_", 22),
            name,
            input,
        }));
    }
    let stop = match reply.stop {
        Stop::EndTurn => "end_turn",
        Stop::MaxTokens => "max_tokens",
        Stop::ToolUse => "tool_use",
        Stop::StopSequence(_) => "stop_sequence",
    };
    let message = Message {
        role: "assistant",
        content,
    };
    (message, stop, reply.input_tokens, reply.output_tokens)
}

pub fn respond(body: &Value, model_id: &str, rng: &mut SplitMix64) -> Checked<Response> {
    let conv = validate(body, model_id, Dialect::Nova)?;
    let (message, stop_reason, input_tokens, output_tokens) = answer(&conv, model_id, rng);
    Ok(Response {
        output: Output { message },
        stop_reason,
        usage: NovaUsage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            cache_read_input_token_count: 0,
            cache_write_input_token_count: 0,
        },
    })
}

pub fn respond_converse(body: &Value, model_id: &str, rng: &mut SplitMix64) -> Checked<ConverseResponse> {
    let conv = validate(body, model_id, Dialect::Converse)?;
    let (message, stop_reason, input_tokens, output_tokens) = answer(&conv, model_id, rng);
    Ok(ConverseResponse {
        output: Output { message },
        stop_reason,
        usage: ConverseUsage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
        },
        metrics: Metrics {
            latency_ms: 100 + output_tokens * 10,
        },
    })
}

fn validate(body: &Value, model_id: &str, dialect: Dialect) -> Checked<Conversation> {
    let m = object(body, "#")?;
    match dialect {
        Dialect::Nova => {
            allowed_keys(
                m,
                &["schemaVersion", "system", "messages", "inferenceConfig", "toolConfig"],
                "#",
            )?;
            if let Some(v) = m.get("schemaVersion") {
                let v = string(v, "#/schemaVersion")?;
                if v != "messages-v1" {
                    return Err(schema(
                        "#/schemaVersion",
                        format!("{v} is not a valid enum value (messages-v1)"),
                    ));
                }
            }
        }
        Dialect::Converse => {
            allowed_keys(
                m,
                &[
                    "messages",
                    "system",
                    "inferenceConfig",
                    "toolConfig",
                    "additionalModelRequestFields",
                    "additionalModelResponseFieldPaths",
                ],
                "#",
            )?;
            if m.contains_key("toolConfig") {
                // docs/bedrock.md#quotas, docs version (b).
                return Err(rule(
                    "Batch inference doesn't support tool calling for jobs that use the Converse invocation type.",
                ));
            }
            if let Some(f) = m.get("additionalModelRequestFields") {
                object(f, "#/additionalModelRequestFields")?;
            }
            if let Some(p) = m.get("additionalModelResponseFieldPaths") {
                strings(p, "#/additionalModelResponseFieldPaths", 10)?;
            }
        }
    }

    let mut input_chars = 0;
    if let Some(system) = m.get("system") {
        for (i, block) in array(system, "#/system")?.iter().enumerate() {
            let p = format!("#/system/{i}");
            let bm = object(block, &p)?;
            allowed_keys(bm, &["text"], &p)?;
            input_chars += string(required(bm, "text", &p)?, &format!("{p}/text"))?.len();
        }
    }

    let (max_tokens, stop_sequences) = match m.get("inferenceConfig") {
        Some(c) => inference_config(c, model_id, dialect)?,
        None => (DEFAULT_MAX_TOKENS, Vec::new()),
    };

    let (tools, tool_choice) = match m.get("toolConfig") {
        Some(c) => tool_config(c)?,
        None => (Vec::new(), ToolChoice::Auto),
    };
    input_chars += m.get("toolConfig").map_or(0, |t| t.to_string().len());

    let messages = array(required(m, "messages", "#")?, "#/messages")?;
    let s = check_messages(messages, model_id)?;
    if s.uses_tools && tools.is_empty() {
        return Err(rule(
            "toolConfig field must be defined when using toolUse and toolResult content blocks.",
        ));
    }
    Ok(Conversation {
        input_chars: input_chars + s.chars,
        images: s.images,
        last_user_text: s.last_user_text,
        answered_tool: s.answered_tool,
        max_tokens,
        stop_sequences,
        tools,
        tool_choice,
    })
}

fn inference_config(c: &Value, model_id: &str, dialect: Dialect) -> Checked<(u64, Vec<String>)> {
    let p = "#/inferenceConfig";
    let cm = object(c, p)?;
    let (allowed, max_stop): (&[&str], usize) = match dialect {
        Dialect::Nova => (
            &["maxTokens", "temperature", "topP", "topK", "stopSequences"],
            usize::MAX,
        ),
        Dialect::Converse => (&["maxTokens", "temperature", "topP", "stopSequences"], 2500),
    };
    allowed_keys(cm, allowed, p)?;
    // docs/formats.md#claude-and-nova-bodies: at most 5k output tokens for Nova v1 models.
    let limit = if dialect == Dialect::Nova && !model_id.contains("nova-2") {
        5000
    } else {
        u64::MAX
    };
    let max_tokens = match cm.get("maxTokens") {
        Some(v) => integer(v, &format!("{p}/maxTokens"), 1, limit)?,
        None => DEFAULT_MAX_TOKENS,
    };
    if let Some(t) = cm.get("temperature") {
        number(t, &format!("{p}/temperature"), 0.0, 1.0)?;
    }
    if let Some(t) = cm.get("topP") {
        number(t, &format!("{p}/topP"), 0.0, 1.0)?;
    }
    if let Some(k) = cm.get("topK") {
        integer(k, &format!("{p}/topK"), 0, u64::MAX)?;
    }
    let stops = match cm.get("stopSequences") {
        Some(s) => strings(s, &format!("{p}/stopSequences"), max_stop)?
            .into_iter()
            .map(String::from)
            .collect(),
        None => Vec::new(),
    };
    Ok((max_tokens, stops))
}

/// The one key of a `{"<kind>": {...}}` union object.
fn single_key<'a>(m: &'a Map<String, Value>, p: &str, allowed: &[&str]) -> Checked<(&'a str, &'a Value)> {
    allowed_keys(m, allowed, p)?;
    let mut it = m.iter();
    match (it.next(), it.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        _ => Err(schema(p, format!("expected exactly one of [{}]", allowed.join(", ")))),
    }
}

fn tool_config(c: &Value) -> Checked<(Vec<Tool>, ToolChoice)> {
    let p = "#/toolConfig";
    let cm = object(c, p)?;
    allowed_keys(cm, &["tools", "toolChoice"], p)?;
    let list = array(required(cm, "tools", p)?, &format!("{p}/tools"))?;
    if list.is_empty() {
        return Err(schema(
            &format!("{p}/tools"),
            "expected minimum item count: 1, found: 0",
        ));
    }
    let mut tools = Vec::new();
    let mut names = HashSet::new();
    for (i, t) in list.iter().enumerate() {
        let tp = format!("{p}/tools/{i}");
        let tm = object(t, &tp)?;
        allowed_keys(tm, &["toolSpec"], &tp)?;
        let sp = format!("{tp}/toolSpec");
        let spec = object(required(tm, "toolSpec", &tp)?, &sp)?;
        allowed_keys(spec, &["name", "description", "inputSchema"], &sp)?;
        let name = tool_name(required(spec, "name", &sp)?, &format!("{sp}/name"))?;
        if let Some(d) = spec.get("description") {
            string(d, &format!("{sp}/description"))?;
        }
        let ip = format!("{sp}/inputSchema");
        let input = object(required(spec, "inputSchema", &sp)?, &ip)?;
        allowed_keys(input, &["json"], &ip)?;
        let json = required(input, "json", &ip)?;
        object(json, &format!("{ip}/json"))?;
        if !names.insert(name) {
            return Err(rule(format!(
                "The toolConfig contains the tool name {name} more than once."
            )));
        }
        tools.push(Tool {
            name: name.to_string(),
            input_schema: json.clone(),
        });
    }
    let choice = match cm.get("toolChoice") {
        None => ToolChoice::Auto,
        Some(c) => {
            let cp = format!("{p}/toolChoice");
            let (kind, v) = single_key(object(c, &cp)?, &cp, &["auto", "any", "tool"])?;
            let vp = format!("{cp}/{kind}");
            let vm = object(v, &vp)?;
            match kind {
                "auto" | "any" => {
                    allowed_keys(vm, &[], &vp)?;
                    if kind == "auto" {
                        ToolChoice::Auto
                    } else {
                        ToolChoice::Any
                    }
                }
                _ => {
                    allowed_keys(vm, &["name"], &vp)?;
                    let name = string(required(vm, "name", &vp)?, &format!("{vp}/name"))?;
                    if !tools.iter().any(|t| t.name == name) {
                        return Err(rule(format!(
                            "The toolChoice names the tool {name}, which is not in toolConfig.tools."
                        )));
                    }
                    ToolChoice::Tool(name.to_string())
                }
            }
        }
    };
    Ok((tools, choice))
}

#[derive(Default)]
struct Summary {
    chars: usize,
    images: usize,
    last_user_text: String,
    answered_tool: bool,
    uses_tools: bool,
}

fn check_messages(messages: &[Value], model_id: &str) -> Checked<Summary> {
    if messages.is_empty() {
        return Err(schema("#/messages", "expected minimum item count: 1, found: 0"));
    }
    let text_only = model_id.contains("nova-micro");
    let mut s = Summary::default();
    let mut prev_role: Option<&str> = None;
    let mut pending: Vec<String> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let p = format!("#/messages/{i}");
        let mm = object(msg, &p)?;
        allowed_keys(mm, &["role", "content"], &p)?;
        let role = string(required(mm, "role", &p)?, &format!("{p}/role"))?;
        if role != "user" && role != "assistant" {
            return Err(schema(
                &format!("{p}/role"),
                format!("{role} is not a valid enum value (user, assistant)"),
            ));
        }
        if i == 0 && role != "user" {
            return Err(rule("A conversation must start with a user message. Try again with a conversation that starts with a user message."));
        }
        if prev_role == Some(role) {
            return Err(rule("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again."));
        }
        let blocks = array(required(mm, "content", &p)?, &format!("{p}/content"))?;
        if blocks.is_empty() {
            return Err(schema(
                &format!("{p}/content"),
                "expected minimum item count: 1, found: 0",
            ));
        }
        let mut text = String::new();
        let mut uses = Vec::new();
        let mut results = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let bp = format!("{p}/content/{j}");
            let (kind, v) = single_key(object(b, &bp)?, &bp, &["text", "image", "toolUse", "toolResult"])?;
            let vp = format!("{bp}/{kind}");
            match kind {
                "text" => {
                    let t = string(v, &vp)?;
                    if t.trim().is_empty() {
                        return Err(rule(format!("The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the text field, and try again.")));
                    }
                    s.chars += t.len();
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(t);
                }
                "image" => {
                    if text_only {
                        return Err(rule("This model doesn't support the image content block that you provided. Try again with a supported content block."));
                    }
                    image(v, &vp)?;
                    s.images += 1;
                }
                "toolUse" => {
                    if role != "assistant" {
                        return Err(rule(format!(
                            "messages.{i}.content.{j}: toolUse blocks may only appear in assistant messages."
                        )));
                    }
                    let um = object(v, &vp)?;
                    allowed_keys(um, &["toolUseId", "name", "input"], &vp)?;
                    let id = string(required(um, "toolUseId", &vp)?, &format!("{vp}/toolUseId"))?;
                    string(required(um, "name", &vp)?, &format!("{vp}/name"))?;
                    let input = required(um, "input", &vp)?;
                    object(input, &format!("{vp}/input"))?;
                    s.chars += input.to_string().len();
                    uses.push(id.to_string());
                }
                _ => {
                    if role != "user" {
                        return Err(rule(format!(
                            "messages.{i}.content.{j}: toolResult blocks may only appear in user messages."
                        )));
                    }
                    let rm = object(v, &vp)?;
                    allowed_keys(rm, &["toolUseId", "content", "status"], &vp)?;
                    let id = string(required(rm, "toolUseId", &vp)?, &format!("{vp}/toolUseId"))?;
                    if let Some(st) = rm.get("status") {
                        let st = string(st, &format!("{vp}/status"))?;
                        if st != "success" && st != "error" {
                            return Err(schema(
                                &format!("{vp}/status"),
                                format!("{st} is not a valid enum value (success, error)"),
                            ));
                        }
                    }
                    let (chars, t) = tool_result_content(required(rm, "content", &vp)?, &format!("{vp}/content"))?;
                    s.chars += chars;
                    if text.is_empty() {
                        text = t;
                    }
                    results.push(id.to_string());
                }
            }
        }
        s.uses_tools |= !uses.is_empty() || !results.is_empty();
        if role == "user" {
            if let Some(id) = results.iter().find(|id| !pending.contains(id)) {
                return Err(rule(format!("messages.{i}: the toolResult with toolUseId {id} does not answer a toolUse of the previous assistant turn.")));
            }
            if let Some(id) = pending.iter().find(|id| !results.contains(id)) {
                return Err(rule(format!("messages.{i}: the toolUse with toolUseId {id} of the previous assistant turn has no toolResult in this turn.")));
            }
            s.last_user_text = text;
            s.answered_tool = !results.is_empty();
            pending.clear();
        } else {
            pending = uses;
        }
        prev_role = Some(role);
    }
    Ok(s)
}

fn image(v: &Value, p: &str) -> Checked<()> {
    let im = object(v, p)?;
    allowed_keys(im, &["format", "source"], p)?;
    let format = string(required(im, "format", p)?, &format!("{p}/format"))?;
    if !IMAGE_FORMATS.contains(&format) {
        return Err(schema(
            &format!("{p}/format"),
            format!("{format} is not a valid enum value ({})", IMAGE_FORMATS.join(", ")),
        ));
    }
    let sp = format!("{p}/source");
    let (kind, src) = single_key(object(required(im, "source", p)?, &sp)?, &sp, &["bytes", "s3Location"])?;
    if kind == "bytes" {
        base64_len(string(src, &format!("{sp}/bytes"))?, &format!("{sp}/bytes"))?;
    } else {
        let lp = format!("{sp}/s3Location");
        let loc = object(src, &lp)?;
        allowed_keys(loc, &["uri", "bucketOwner"], &lp)?;
        let uri = string(required(loc, "uri", &lp)?, &format!("{lp}/uri"))?;
        if !uri.starts_with("s3://") {
            return Err(schema(
                &format!("{lp}/uri"),
                format!("string [{uri}] is not an s3:// URI"),
            ));
        }
    }
    Ok(())
}

/// `toolResult.content`: a non-empty list of `{text}`, `{json}` or `{image}`. Returns (chars, text).
fn tool_result_content(v: &Value, p: &str) -> Checked<(usize, String)> {
    let items = array(v, p)?;
    if items.is_empty() {
        return Err(schema(p, "expected minimum item count: 1, found: 0"));
    }
    let mut chars = 0;
    let mut text = String::new();
    for (k, item) in items.iter().enumerate() {
        let ip = format!("{p}/{k}");
        let (kind, inner) = single_key(object(item, &ip)?, &ip, &["text", "json", "image"])?;
        match kind {
            "text" => {
                let t = string(inner, &format!("{ip}/text"))?;
                chars += t.len();
                text.push_str(t);
            }
            "json" => {
                let j = inner.to_string();
                chars += j.len();
                text.push_str(&j);
            }
            _ => image(inner, &format!("{ip}/image"))?,
        }
    }
    Ok((chars, text))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MODEL: &str = "amazon.nova-lite-v1:0";

    fn body() -> Value {
        json!({
            "schemaVersion": "messages-v1",
            "system": [{"text": "Be brief."}],
            "messages": [{"role": "user", "content": [{"text": "Describe Paris"}]}],
            "inferenceConfig": {"maxTokens": 300, "temperature": 0.7, "topP": 0.9, "topK": 50, "stopSequences": ["END"]}
        })
    }

    fn tools_body() -> Value {
        json!({
            "messages": [
                {"role": "user", "content": [{"text": "What is 10*5?"}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "calc", "input": {"eq": "10*5"}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"result": 50}}], "status": "success"}}]}
            ],
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "calc", "description": "Calculator",
                    "inputSchema": {"json": {"type": "object", "properties": {"eq": {"type": "string"}}, "required": ["eq"]}}}}],
                "toolChoice": {"auto": {}}
            }
        })
    }

    fn reject(v: Value) -> String {
        validate(&v, MODEL, Dialect::Nova).expect_err("should be rejected").0
    }

    #[test]
    fn answers_in_the_nova_shape() {
        let v = serde_json::to_value(respond(&body(), MODEL, &mut SplitMix64::new(3)).expect("valid")).expect("json");
        assert_eq!(v["output"]["message"]["role"], "assistant");
        assert!(v["output"]["message"]["content"][0]["text"].is_string());
        assert_eq!(v["stopReason"], "end_turn");
        let u = &v["usage"];
        assert_eq!(
            u["totalTokens"].as_u64(),
            Some(u["inputTokens"].as_u64().expect("n") + u["outputTokens"].as_u64().expect("n"))
        );
    }

    #[test]
    fn tool_use_when_offered() {
        let mut b = tools_body();
        b["messages"] = json!([{"role": "user", "content": [{"text": "What is 10*5?"}]}]);
        let v = serde_json::to_value(respond(&b, MODEL, &mut SplitMix64::new(3)).expect("valid")).expect("json");
        assert_eq!(v["stopReason"], "tool_use");
        let call = &v["output"]["message"]["content"][0]["toolUse"];
        assert_eq!(call["name"], "calc");
        assert!(call["toolUseId"].as_str().expect("id").starts_with("tooluse_"));
        assert!(call["input"]["eq"].is_string());
        assert!(validate(&tools_body(), MODEL, Dialect::Nova).is_ok());
    }

    #[test]
    fn converse_shape_and_rules() {
        let b =
            json!({"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "inferenceConfig": {"maxTokens": 2}});
        let v = serde_json::to_value(
            respond_converse(&b, "anthropic.claude-3-haiku-20240307-v1:0", &mut SplitMix64::new(3)).expect("valid"),
        )
        .expect("json");
        assert_eq!(v["stopReason"], "max_tokens");
        assert!(v["metrics"]["latencyMs"].is_u64());
        assert!(v["usage"].get("cacheReadInputTokenCount").is_none());
        assert!(validate(&tools_body(), MODEL, Dialect::Converse).is_err());
        let mut with_topk = b.clone();
        with_topk["inferenceConfig"]["topK"] = json!(5);
        assert!(validate(&with_topk, MODEL, Dialect::Converse).is_err());
        let mut with_model = b;
        with_model["modelId"] = json!("x");
        assert!(validate(&with_model, MODEL, Dialect::Converse).is_err());
    }

    #[test]
    fn body_rules() {
        let mut b = body();
        b["inferenceConfig"] = json!({"max_new_tokens": 300});
        assert!(reject(b).contains("extraneous key [max_new_tokens]"));
        let mut b = body();
        b["inferenceConfig"]["maxTokens"] = json!(6000);
        reject(b);
        let mut b = body();
        b["inferenceConfig"]["temperature"] = json!(2);
        reject(b);
        let mut b = body();
        b["schemaVersion"] = json!("messages-v2");
        reject(b);
        let mut b = body();
        b["system"] = json!("Be brief.");
        reject(b);
        let mut b = body();
        b["messages"] = json!([{"role": "assistant", "content": [{"text": "hi"}]}]);
        reject(b);
        let mut b = body();
        b["messages"] = json!([{"role": "user", "content": "plain string"}]);
        reject(b);
        let mut b = body();
        b["messages"] = json!([{"role": "user", "content": [{"type": "text", "text": "claude style"}]}]);
        reject(b);
        let mut b = body();
        b["messages"] =
            json!([{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]);
        reject(b);
        let mut b = body();
        b["messages"][0]["content"] = json!([{"image": {"format": "bmp", "source": {"bytes": "aGVsbG8="}}}]);
        reject(b);
        let mut b = body();
        b["messages"][0]["content"] =
            json!([{"image": {"format": "png", "source": {"bytes": "aGVsbG8="}}}, {"text": "What?"}]);
        assert!(validate(&b, MODEL, Dialect::Nova).is_ok());
        assert!(validate(&b, "amazon.nova-micro-v1:0", Dialect::Nova).is_err());
    }

    #[test]
    fn tool_rules() {
        let mut b = tools_body();
        b["messages"][2]["content"][0]["toolResult"]["toolUseId"] = json!("t2");
        reject(b);
        let mut b = tools_body();
        b.as_object_mut().expect("object").remove("toolConfig");
        assert!(reject(b).contains("toolConfig field must be defined"));
        let mut b = tools_body();
        b["toolConfig"]["toolChoice"] = json!({"tool": {"name": "nope"}});
        reject(b);
        let mut b = tools_body();
        b["toolConfig"]["toolChoice"] = json!({"auto": {}, "any": {}});
        reject(b);
        let mut b = tools_body();
        b["toolConfig"]["tools"][0] = json!({"type": "function", "function": {"name": "calc"}});
        reject(b);
        let mut b = tools_body();
        b["messages"][2]["content"][0]["toolResult"]["status"] = json!("ok");
        reject(b);
    }
}
