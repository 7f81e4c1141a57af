//! The validated, model-neutral chat request: what an OpenAI body means once every rule of docs/formats.md#how-openai-requests-are-translated has
//! been applied. [`crate::format`] writes it out as a Claude, Nova or Converse body.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::catalogue::DEFAULT_MAX_TEMPERATURE;
use crate::error::{Reason, Rejection};
use crate::format::openai_input::{Body, Content, Message, Part, Stop, ToolChoice};
use crate::model::BedrockModel;
use crate::policy::{
    Policy, TemperaturePolicy, IMAGE_TYPES, JSON_OBJECT_TOOL, MAX_IMAGE_BYTES, MAX_TOOL_NAME_LEN,
    OPENAI_MAX_TEMPERATURE, STRUCTURED_TOOL_DESCRIPTION,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug)]
pub enum Block<'a> {
    Text(Cow<'a, str>),
    /// A base64 image; `format` is one of [`IMAGE_TYPES`].
    Image {
        format: &'static str,
        data: Cow<'a, str>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: Box<RawValue>,
    },
    ToolResult {
        id: Cow<'a, str>,
        text: Cow<'a, str>,
    },
}

#[derive(Debug)]
pub struct Turn<'a> {
    pub role: Role,
    pub blocks: Vec<Block<'a>>,
}

#[derive(Debug)]
pub struct ToolSpec<'a> {
    pub name: Cow<'a, str>,
    pub description: Option<Cow<'a, str>>,
    /// The JSON Schema of the arguments; `None` means "no arguments".
    pub schema: Option<&'a RawValue>,
}

#[derive(Debug, PartialEq)]
pub enum ToolMode<'a> {
    Auto,
    Any,
    Tool(Cow<'a, str>),
}

#[derive(Debug)]
pub struct Request<'a> {
    pub system: Vec<Cow<'a, str>>,
    pub turns: Vec<Turn<'a>>,
    pub max_tokens: u64,
    pub temperature: Option<f64>,
    /// Whether the temperature policy changed the line's temperature (counted in the report).
    pub temperature_changed: bool,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<Cow<'a, str>>,
    pub tools: Vec<ToolSpec<'a>>,
    pub tool_choice: Option<ToolMode<'a>>,
    /// For `response_format` json_object or json_schema: the name of the tool the model is made to call,
    /// whose input is the answer (docs/formats.md, "Structured output").
    pub structured: Option<Cow<'a, str>>,
}

fn reject(reason: Reason, field: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection::new(reason, field, message)
}

/// Applies docs/formats.md#how-openai-requests-are-translated to a parsed body. `model` is `None` when validating without a batch model: the checks
/// that depend on the model (images on Nova Micro, Claude 4.5 sampling) are then skipped.
pub fn build<'a>(body: Body<'a>, policy: &Policy, model: Option<&BedrockModel>) -> Result<Request<'a>, Rejection> {
    check_unsupported(&body)?;
    let (temperature, temperature_changed) = apply_temperature(body.temperature, policy.temperature, model)?;
    let top_p = body.top_p;
    check_unit_range("body.top_p", top_p)?;
    if let Some(m) = model {
        if m.temperature_or_top_p() && temperature.is_some() && top_p.is_some() {
            return Err(reject(
                Reason::Sampling,
                "body.top_p",
                format!("{} takes temperature or top_p, not both; remove one", m.id),
            ));
        }
    }
    let (max_tokens, field) = match (body.max_completion_tokens, body.max_tokens) {
        (Some(n), _) => (n, Some("body.max_completion_tokens")),
        (None, Some(n)) => (n, Some("body.max_tokens")),
        (None, None) => (policy.default_max_tokens, None),
    };
    check_max_tokens(max_tokens, model).map_err(|why| match field {
        Some(field) => reject(Reason::MaxTokens, field, why),
        None => reject(
            Reason::MaxTokens,
            "body.max_completion_tokens",
            format!("is not set, and the default max_tokens (DefaultMaxTokens, --default-max-tokens) {why}"),
        ),
    })?;
    let stop = match body.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if let Some(i) = stop.iter().position(|s| s.is_empty()) {
        return Err(reject(
            Reason::Stop,
            format!("body.stop[{i}]"),
            "an empty stop sequence can never match",
        ));
    }
    let structured = structured_output(body.response_format)?;

    let messages = match body.messages {
        None => return Err(reject(Reason::Messages, "body.messages", "is missing")),
        Some(m) if m.is_empty() => return Err(reject(Reason::Messages, "body.messages", "is empty")),
        Some(m) => m,
    };
    let mut conv = Conversation::default();
    for (i, message) in messages.into_iter().enumerate() {
        conv.push(i, message, model)?;
    }
    let Conversation {
        system,
        turns,
        has_tool_blocks,
        ..
    } = conv.finish()?;

    let mut tools = build_tools(body.tools)?;
    let mut tool_choice = match body.tool_choice {
        None => (!tools.is_empty()).then_some(ToolMode::Auto),
        Some(ToolChoice::Mode(mode)) => match mode.as_ref() {
            "auto" => (!tools.is_empty()).then_some(ToolMode::Auto),
            "required" if tools.is_empty() => {
                return Err(reject(
                    Reason::ToolChoice,
                    "body.tool_choice",
                    "'required' but body.tools is empty",
                ))
            }
            "required" => Some(ToolMode::Any),
            "none" => {
                if has_tool_blocks {
                    return Err(reject(
                        Reason::ToolChoice,
                        "body.tool_choice",
                        "'none' with tool calls in the history: Bedrock has no 'none', and Claude and Nova \
                         cannot read tool calls without the tools; drop tool_choice or the tool messages",
                    ));
                }
                tools.clear();
                None
            }
            other => {
                return Err(reject(
                    Reason::ToolChoice,
                    "body.tool_choice",
                    format!("unknown value '{other}' (expected auto, none, required or a named function)"),
                ))
            }
        },
        Some(ToolChoice::Named(named)) => {
            if named.kind.as_deref().is_some_and(|k| k != "function") {
                return Err(reject(
                    Reason::ToolChoice,
                    "body.tool_choice.type",
                    "must be 'function'",
                ));
            }
            let Some(name) = named.function.and_then(|f| f.name) else {
                return Err(reject(
                    Reason::ToolChoice,
                    "body.tool_choice.function.name",
                    "is missing",
                ));
            };
            if !tools.iter().any(|t| t.name == name) {
                return Err(reject(
                    Reason::ToolChoice,
                    "body.tool_choice.function.name",
                    format!("'{name}' is not one of body.tools"),
                ));
            }
            Some(ToolMode::Tool(name))
        }
    };
    if has_tool_blocks && tools.is_empty() {
        return Err(reject(
            Reason::Tool,
            "body.tools",
            "the messages hold tool calls but no tools are defined; Claude and Nova need the tool \
             definitions to read them",
        ));
    }

    let structured_name = match structured {
        None => None,
        Some(spec) => {
            if !tools.is_empty() || tool_choice.is_some() {
                return Err(reject(
                    Reason::ResponseFormat,
                    "body.response_format",
                    "structured output runs as a tool the model must call, so it cannot be combined with tools or \
                     tool_choice; drop one (docs/formats.md, \"Structured output\")",
                ));
            }
            let name = spec.name.clone();
            tool_choice = Some(ToolMode::Tool(name.clone()));
            tools = vec![spec];
            Some(name)
        }
    };
    let request = Request {
        system,
        turns,
        max_tokens,
        temperature,
        temperature_changed,
        top_p,
        top_k: body.top_k,
        stop,
        tools,
        tool_choice,
        structured: structured_name,
    };
    if let Some(m) = model {
        check_accepts(&request, m)?;
    }
    Ok(request)
}

/// What the model's catalogue entry says it does not accept (docs/models.md, "accepts"). Images are checked
/// where each part is read, so that the error names the part.
fn check_accepts(request: &Request<'_>, m: &BedrockModel) -> Result<(), Rejection> {
    let accepts = m.accepts();
    let refuse = |reason, field: &str, what: &str| {
        Err(reject(
            reason,
            field,
            format!("{} takes no {what} (its model catalogue entry, docs/models.md)", m.id),
        ))
    };
    if !accepts.system && !request.system.is_empty() {
        return refuse(Reason::Messages, "body.messages", "system or developer messages");
    }
    // The tool of structured output is ours: it is checked as structured output, below.
    if !accepts.tools && !request.tools.is_empty() && request.structured.is_none() {
        return refuse(Reason::Tool, "body.tools", "tools");
    }
    if !accepts.top_k && request.top_k.is_some() {
        return refuse(Reason::Sampling, "body.top_k", "top_k");
    }
    if !accepts.stop_sequences && !request.stop.is_empty() {
        return refuse(Reason::Stop, "body.stop", "stop sequences");
    }
    if !accepts.structured_output && request.structured.is_some() {
        return refuse(Reason::ResponseFormat, "body.response_format", "structured output");
    }
    Ok(())
}

/// The one rule for `max_tokens`, whether a line sets it or the batch's default applies: at least 1, and
/// at most what the model can write (docs/formats.md, "max_tokens"). `model` is `None` when it is not
/// known yet (checking the default itself, or validating without a model).
pub fn check_max_tokens(n: u64, model: Option<&BedrockModel>) -> Result<(), String> {
    if n == 0 {
        return Err("must be at least 1".into());
    }
    match model {
        Some(m) if n > m.max_output_tokens() => Err(format!(
            "{n} is above the {} output tokens {} can write",
            m.max_output_tokens(),
            m.id
        )),
        _ => Ok(()),
    }
}

fn check_unsupported(body: &Body<'_>) -> Result<(), Rejection> {
    if let Some(n) = body.n.filter(|n| *n != 1) {
        return Err(reject(
            Reason::N,
            "body.n",
            format!("asks for {n} choices; Bedrock batch gives one per request, so n must be 1"),
        ));
    }
    if body.stream == Some(true) {
        return Err(reject(Reason::Stream, "body.stream", "true is not possible in a batch"));
    }
    if body.logprobs == Some(true) {
        return Err(reject(
            Reason::Logprobs,
            "body.logprobs",
            "true: Bedrock returns no log probabilities",
        ));
    }
    if let Some(field) = body.legacy_functions {
        return Err(reject(
            Reason::LegacyFunctions,
            format!("body.{field}"),
            "deprecated function calling is not translated; use tools and tool_choice",
        ));
    }
    Ok(())
}

/// `response_format` as the tool the model must call, or `None` for text.
fn structured_output(
    format: Option<crate::format::openai_input::ResponseFormat<'_>>,
) -> Result<Option<ToolSpec<'_>>, Rejection> {
    let Some(format) = format else {
        return Ok(None);
    };
    match format.kind.as_deref() {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ToolSpec {
            name: Cow::Borrowed(JSON_OBJECT_TOOL),
            description: Some(Cow::Borrowed(STRUCTURED_TOOL_DESCRIPTION)),
            schema: None,
        })),
        Some("json_schema") => {
            let field = "body.response_format.json_schema";
            let Some(spec) = format.json_schema else {
                return Err(reject(Reason::ResponseFormat, field, "is missing"));
            };
            let Some(name) = spec.name else {
                return Err(reject(Reason::ResponseFormat, format!("{field}.name"), "is missing"));
            };
            check_tool_name(&name, || format!("{field}.name")).map_err(|r| Rejection {
                reason: Reason::ResponseFormat,
                ..r
            })?;
            if let Some(schema) = spec.schema {
                if !schema.get().trim_start().starts_with('{') {
                    return Err(reject(
                        Reason::ResponseFormat,
                        format!("{field}.schema"),
                        "must be a JSON Schema object",
                    ));
                }
            }
            Ok(Some(ToolSpec {
                name,
                description: Some(spec.description.unwrap_or(Cow::Borrowed(STRUCTURED_TOOL_DESCRIPTION))),
                schema: spec.schema,
            }))
        }
        Some(other) => Err(reject(
            Reason::ResponseFormat,
            "body.response_format.type",
            format!("unknown type '{other}' (expected text, json_object or json_schema)"),
        )),
    }
}

/// A line's temperature after the policy (docs/formats.md, "Temperature"), and whether it changed. Outside
/// OpenAI's own 0–2 a line is always rejected. `model`'s catalogue entry gives its highest temperature; without
/// a model, Bedrock's chat models' 1.
fn apply_temperature(
    value: Option<f64>,
    policy: TemperaturePolicy,
    model: Option<&BedrockModel>,
) -> Result<(Option<f64>, bool), Rejection> {
    let max = model.map_or(DEFAULT_MAX_TEMPERATURE, |m| m.entry.max_temperature.0);
    let Some(t) = value else {
        return Ok((None, false));
    };
    let field = "body.temperature";
    if t < 0.0 {
        return Err(reject(
            Reason::Sampling,
            field,
            format!("{t} is below 0, the lowest OpenAI and Bedrock accept"),
        ));
    }
    if t > OPENAI_MAX_TEMPERATURE {
        return Err(reject(
            Reason::Sampling,
            field,
            format!("{t} is above 2, the highest OpenAI accepts"),
        ));
    }
    match policy {
        // OpenAI's 0–2 onto the model's 0–max: halved for a model whose maximum is 1.
        TemperaturePolicy::Scale => {
            let scaled = t * max / OPENAI_MAX_TEMPERATURE;
            Ok((Some(scaled), scaled != t))
        }
        _ if t <= max => Ok((Some(t), false)),
        TemperaturePolicy::Clamp => Ok((Some(max), true)),
        TemperaturePolicy::Reject => Err(reject(
            Reason::Sampling,
            field,
            format!(
                "{t} is above {max}, the highest {} accepts; the temperature policy (TemperaturePolicy, \
                 --temperature) can clamp it to {max} or scale every temperature instead",
                model.map_or("Bedrock's chat models", |m| m.id.as_str())
            ),
        )),
    }
}

/// `top_p` in 0–1, which OpenAI and Bedrock's chat models share: never clamped.
fn check_unit_range(field: &str, value: Option<f64>) -> Result<(), Rejection> {
    match value {
        Some(v) if !(0.0..=1.0).contains(&v) => {
            let side = if v < 0.0 {
                "below 0, the lowest"
            } else {
                "above 1, the highest"
            };
            Err(reject(
                Reason::Sampling,
                field,
                format!("{v} is {side} Claude and Nova accept"),
            ))
        }
        _ => Ok(()),
    }
}

fn build_tools<'a>(tools: Option<Vec<crate::format::openai_input::Tool<'a>>>) -> Result<Vec<ToolSpec<'a>>, Rejection> {
    let tools = tools.unwrap_or_default();
    let mut specs: Vec<ToolSpec<'a>> = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        if tool.kind.as_deref().is_some_and(|k| k != "function") {
            return Err(reject(
                Reason::Tool,
                format!("body.tools[{i}].type"),
                "only 'function' tools are supported",
            ));
        }
        let Some(function) = tool.function else {
            return Err(reject(Reason::Tool, format!("body.tools[{i}].function"), "is missing"));
        };
        let Some(name) = function.name else {
            return Err(reject(
                Reason::Tool,
                format!("body.tools[{i}].function.name"),
                "is missing",
            ));
        };
        check_tool_name(&name, || format!("body.tools[{i}].function.name"))?;
        if specs.iter().any(|s| s.name == name) {
            return Err(reject(
                Reason::Tool,
                format!("body.tools[{i}].function.name"),
                format!("'{name}' is defined twice"),
            ));
        }
        if let Some(params) = function.parameters {
            if !params.get().trim_start().starts_with('{') {
                return Err(reject(
                    Reason::Tool,
                    format!("body.tools[{i}].function.parameters"),
                    "must be a JSON Schema object",
                ));
            }
        }
        specs.push(ToolSpec {
            name,
            description: function.description,
            schema: function.parameters,
        });
    }
    Ok(specs)
}

fn check_tool_name(name: &str, field: impl Fn() -> String) -> Result<(), Rejection> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TOOL_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(reject(
            Reason::Tool,
            field(),
            format!("'{name}' must be 1-{MAX_TOOL_NAME_LEN} characters of a-z, A-Z, 0-9, _ and -"),
        ))
    }
}

/// Builds turns from messages: system text set aside, same-role turns merged, tool results grouped into
/// user turns, and each tool result checked against the calls of the assistant turn just before it.
#[derive(Default)]
struct Conversation<'a> {
    system: Vec<Cow<'a, str>>,
    turns: Vec<Turn<'a>>,
    /// Tool calls of the latest assistant message still waiting for their tool message, with its index.
    pending: Vec<(Cow<'a, str>, usize)>,
    has_tool_blocks: bool,
}

impl<'a> Conversation<'a> {
    fn push(&mut self, i: usize, message: Message<'a>, model: Option<&BedrockModel>) -> Result<(), Rejection> {
        let field = |rest: &str| format!("body.messages[{i}]{rest}");
        let Some(role) = message.role else {
            return Err(reject(Reason::Role, field(".role"), "is missing"));
        };
        if role != "tool" && role != "assistant" && message.tool_calls.is_some() {
            return Err(reject(
                Reason::ToolCall,
                field(".tool_calls"),
                format!("a {role} message cannot carry tool calls"),
            ));
        }
        if role != "tool" {
            self.check_answered(i)?;
        }
        match role.as_ref() {
            "system" | "developer" => {
                let text = plain_text(message.content, &field)?;
                if !text.is_empty() {
                    self.system.push(text);
                }
            }
            "user" => {
                let blocks = user_blocks(message.content, &field, model)?;
                if blocks.is_empty() {
                    return Err(reject(
                        Reason::Content,
                        field(".content"),
                        "is empty; Claude and Nova reject empty turns",
                    ));
                }
                self.append(Role::User, blocks);
            }
            "assistant" => {
                let mut blocks = match message.content {
                    None => Vec::new(),
                    content => {
                        let text = plain_text(content, &field)?;
                        if text.is_empty() {
                            Vec::new()
                        } else {
                            vec![Block::Text(text)]
                        }
                    }
                };
                for (j, call) in message.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    let call_field = |rest: &str| format!("body.messages[{i}].tool_calls[{j}]{rest}");
                    let Some(id) = call.id.filter(|id| !id.is_empty()) else {
                        return Err(reject(Reason::ToolCall, call_field(".id"), "is missing"));
                    };
                    if call.kind.as_deref().is_some_and(|k| k != "function") {
                        return Err(reject(Reason::ToolCall, call_field(".type"), "must be 'function'"));
                    }
                    let Some(function) = call.function else {
                        return Err(reject(Reason::ToolCall, call_field(".function"), "is missing"));
                    };
                    let Some(name) = function.name else {
                        return Err(reject(Reason::ToolCall, call_field(".function.name"), "is missing"));
                    };
                    check_tool_name(&name, || call_field(".function.name"))?;
                    let input = parse_arguments(function.arguments.as_deref().unwrap_or(""))
                        .map_err(|why| reject(Reason::ToolCall, call_field(".function.arguments"), why))?;
                    if self.pending.iter().any(|(p, _)| *p == id) {
                        return Err(reject(
                            Reason::ToolCall,
                            call_field(".id"),
                            format!("'{id}' is used twice"),
                        ));
                    }
                    self.pending.push((id.clone(), i));
                    self.has_tool_blocks = true;
                    blocks.push(Block::ToolUse {
                        id: bedrock_tool_id(id),
                        name,
                        input,
                    });
                }
                if blocks.is_empty() {
                    return Err(reject(
                        Reason::Content,
                        field(""),
                        "an assistant message needs content or tool_calls",
                    ));
                }
                self.append(Role::Assistant, blocks);
            }
            "tool" => {
                let Some(id) = message.tool_call_id else {
                    return Err(reject(Reason::ToolCall, field(".tool_call_id"), "is missing"));
                };
                let Some(at) = self.pending.iter().position(|(p, _)| *p == id) else {
                    return Err(reject(
                        Reason::ToolCall,
                        field(".tool_call_id"),
                        format!("'{id}' answers no tool call of the assistant message just before it"),
                    ));
                };
                self.pending.swap_remove(at);
                let text = plain_text(message.content, &field)?;
                self.append(
                    Role::User,
                    vec![Block::ToolResult {
                        id: bedrock_tool_id(id),
                        text,
                    }],
                );
            }
            "function" => {
                return Err(reject(
                    Reason::Role,
                    field(".role"),
                    "'function' is deprecated; use 'tool' messages",
                ))
            }
            other => {
                return Err(reject(
                    Reason::Role,
                    field(".role"),
                    format!("unknown role '{other}' (expected system, developer, user, assistant or tool)"),
                ))
            }
        }
        Ok(())
    }

    /// Anthropic's rule: every tool call is answered in the turn right after it (docs/formats.md#claude-and-nova-bodies).
    fn check_answered(&mut self, i: usize) -> Result<(), Rejection> {
        match self.pending.first() {
            None => Ok(()),
            Some((id, at)) => Err(reject(
                Reason::ToolCall,
                format!("body.messages[{i}]"),
                format!("tool call '{id}' of body.messages[{at}] has no tool message answering it before this message"),
            )),
        }
    }

    fn append(&mut self, role: Role, blocks: Vec<Block<'a>>) {
        match self.turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => self.turns.push(Turn { role, blocks }),
        }
    }

    fn finish(mut self) -> Result<Self, Rejection> {
        let end = self.turns.len();
        self.check_answered(end).map_err(|r| Rejection {
            field: "body.messages".into(),
            ..r
        })?;
        match self.turns.first() {
            None => Err(reject(Reason::Messages, "body.messages", "holds no user message")),
            Some(t) if t.role != Role::User => Err(reject(
                Reason::Messages,
                "body.messages",
                "the first message after the system messages must be a user message (Claude and Nova require it)",
            )),
            Some(_) => {
                self.trim_prefill();
                Ok(self)
            }
        }
    }

    /// A conversation that ends with an assistant message asks the model to continue it (a prefill), and Claude
    /// refuses a prefill that ends with whitespace: its trailing whitespace is trimmed, and a prefill of
    /// whitespace alone is dropped (docs/formats.md, "Prefill").
    fn trim_prefill(&mut self) {
        let Some(last) = self.turns.last_mut().filter(|t| t.role == Role::Assistant) else {
            return;
        };
        // Merged assistant messages give several text blocks: trim until the last one ends in a character.
        while let Some(Block::Text(text)) = last.blocks.last_mut() {
            match text {
                Cow::Borrowed(s) => *s = s.trim_end(),
                Cow::Owned(s) => s.truncate(s.trim_end().len()),
            }
            if !text.is_empty() {
                break;
            }
            last.blocks.pop();
        }
        if last.blocks.is_empty() {
            self.turns.pop();
        }
    }
}

/// The longest part of an id kept when it is rewritten by [`bedrock_tool_id`].
const TOOL_ID_KEPT: usize = 40;

/// Claude and Nova take tool-use ids of `[a-zA-Z0-9_-]+` only, and other tools write ids such as
/// `functions.get_weather:0`. Such an id becomes its allowed characters (others as `_`, at most
/// [`TOOL_ID_KEPT`]) and a hash of the whole id: the same id always maps to the same one, so a tool result still
/// answers its call, and two ids that differ only in what was replaced stay apart (docs/formats.md, "Tool ids").
pub fn bedrock_tool_id(id: Cow<'_, str>) -> Cow<'_, str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if id.chars().all(allowed) {
        return id;
    }
    let mut out: String = id
        .chars()
        .take(TOOL_ID_KEPT)
        .map(|c| if allowed(c) { c } else { '_' })
        .collect();
    out.push_str(&format!("-{:016x}", xxhash_rust::xxh3::xxh3_64(id.as_bytes())));
    Cow::Owned(out)
}

/// Text of a system, assistant or tool message: a string, or text (and refusal) parts joined.
fn plain_text<'a>(content: Option<Content<'a>>, field: &dyn Fn(&str) -> String) -> Result<Cow<'a, str>, Rejection> {
    match content {
        None => Ok(Cow::Borrowed("")),
        Some(Content::Text(s)) => Ok(s),
        Some(Content::Parts(parts)) => {
            let mut texts: Vec<Cow<'a, str>> = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                match part.kind.as_deref() {
                    Some("text") => texts.push(part_text(part.text, || field(&format!(".content[{j}].text")))?),
                    Some("refusal") => {
                        texts.push(part_text(part.refusal, || field(&format!(".content[{j}].refusal")))?)
                    }
                    other => {
                        return Err(reject(
                            Reason::Content,
                            field(&format!(".content[{j}].type")),
                            format!("{} parts are not allowed here; only text", describe(other)),
                        ))
                    }
                }
            }
            Ok(join_texts(texts))
        }
    }
}

fn part_text<'a>(text: Option<Cow<'a, str>>, field: impl Fn() -> String) -> Result<Cow<'a, str>, Rejection> {
    text.ok_or_else(|| reject(Reason::Content, field(), "is missing"))
}

fn describe(kind: Option<&str>) -> String {
    match kind {
        Some(k) => format!("'{k}'"),
        None => "untyped".to_string(),
    }
}

/// Several text parts become one text, separated by blank lines; one part is passed through uncopied.
fn join_texts(mut texts: Vec<Cow<'_, str>>) -> Cow<'_, str> {
    texts.retain(|t| !t.is_empty());
    match texts.len() {
        0 => Cow::Borrowed(""),
        1 => texts.pop().unwrap_or(Cow::Borrowed("")),
        _ => Cow::Owned(texts.join("\n\n")),
    }
}

fn user_blocks<'a>(
    content: Option<Content<'a>>,
    field: &dyn Fn(&str) -> String,
    model: Option<&BedrockModel>,
) -> Result<Vec<Block<'a>>, Rejection> {
    match content {
        None => Err(reject(Reason::Content, field(".content"), "is missing")),
        Some(Content::Text(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Content::Text(s)) => Ok(vec![Block::Text(s)]),
        Some(Content::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                let block = user_part(part, &|rest: &str| field(&format!(".content[{j}]{rest}")), model)?;
                if let Some(b) = block {
                    blocks.push(b);
                }
            }
            Ok(blocks)
        }
    }
}

fn user_part<'a>(
    part: Part<'a>,
    field: &dyn Fn(&str) -> String,
    model: Option<&BedrockModel>,
) -> Result<Option<Block<'a>>, Rejection> {
    match part.kind.as_deref() {
        Some("text") => {
            let text = part_text(part.text, || field(".text"))?;
            Ok((!text.is_empty()).then_some(Block::Text(text)))
        }
        Some("image_url") => {
            let Some(image) = part.image_url else {
                return Err(reject(Reason::Image, field(".image_url"), "is missing"));
            };
            let (format, data) =
                data_url(image.url).map_err(|why| reject(Reason::Image, field(".image_url.url"), why))?;
            // After the image's own checks, so that a bad image is named as such whatever the model.
            if let Some(m) = model.filter(|m| !m.accepts().images) {
                return Err(reject(
                    Reason::Image,
                    field(""),
                    format!(
                        "{} takes text only, no images (its model catalogue entry, docs/models.md)",
                        m.id
                    ),
                ));
            }
            Ok(Some(Block::Image { format, data }))
        }
        Some(kind @ ("input_audio" | "file")) => Err(reject(
            Reason::Content,
            field(".type"),
            format!("'{kind}' parts have no Bedrock chat equivalent"),
        )),
        other => Err(reject(
            Reason::Content,
            field(".type"),
            format!(
                "{} is not a content part type (expected text or image_url)",
                describe(other)
            ),
        )),
    }
}

/// `data:image/png;base64,<payload>` into (`"png"`, payload). Bedrock takes base64 only (docs/formats.md#claude-and-nova-bodies).
fn data_url(url: Cow<'_, str>) -> Result<(&'static str, Cow<'_, str>), String> {
    let Some(rest) = url.strip_prefix("data:") else {
        let shown: String = url.chars().take(40).collect();
        return Err(format!(
            "'{shown}…' is not a base64 data URL; Bedrock takes inline images only, so batchdrop fetches nothing"
        ));
    };
    let Some((meta, payload)) = rest.split_once(',') else {
        return Err("data URL has no ',' before its payload".into());
    };
    let Some(mime) = meta.strip_suffix(";base64") else {
        return Err(format!("data URL '{meta}' is not base64-encoded"));
    };
    let subtype = mime.strip_prefix("image/").unwrap_or("");
    let subtype = if subtype == "jpg" { "jpeg" } else { subtype };
    let Some(format) = IMAGE_TYPES.iter().find(|t| **t == subtype) else {
        return Err(format!("image type '{mime}' is not supported (jpeg, png, gif or webp)"));
    };
    let Some(decoded) = base64_len(payload.as_bytes()) else {
        return Err("the image payload is not valid base64".into());
    };
    if decoded > MAX_IMAGE_BYTES {
        return Err(format!(
            "the image is {decoded} bytes; Bedrock takes at most {MAX_IMAGE_BYTES}"
        ));
    }
    let offset = url.len() - payload.len();
    let data = match url {
        Cow::Borrowed(s) => Cow::Borrowed(&s[offset..]),
        Cow::Owned(s) => Cow::Owned(s[offset..].to_owned()),
    };
    Ok((format, data))
}

/// The decoded length of padded standard base64 (RFC 4648 §4), or `None` when it is not that: a length
/// that is a multiple of 4, at most two `=`, and only at the end.
fn base64_len(b: &[u8]) -> Option<usize> {
    if b.is_empty() || b.len() % 4 != 0 {
        return None;
    }
    let pads = b.iter().rev().take_while(|c| **c == b'=').count();
    let body = &b[..b.len() - pads];
    let alphabet = body
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/'));
    (pads <= 2 && alphabet).then(|| b.len() / 4 * 3 - pads)
}

/// Tool-call `arguments` are a JSON string; Bedrock wants the object itself.
fn parse_arguments(arguments: &str) -> Result<Box<RawValue>, String> {
    let trimmed = arguments.trim();
    if trimmed.is_empty() {
        return RawValue::from_string("{}".to_string()).map_err(|e| e.to_string());
    }
    let raw: Box<RawValue> = serde_json::from_str(trimmed).map_err(|e| format!("is not valid JSON: {e}"))?;
    if !raw.get().starts_with('{') {
        return Err("must be a JSON object".into());
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_padding_only_at_the_end_and_at_most_two() {
        assert_eq!(base64_len(b"AAAA"), Some(3));
        assert_eq!(base64_len(b"AAA="), Some(2));
        assert_eq!(base64_len(b"AA=="), Some(1));
        for bad in [
            &b""[..],
            b"====",
            b"A===",
            b"=AAA",
            b"A=AA",
            b"AAA",
            b"AA*A",
            b"AAAA====",
        ] {
            assert_eq!(base64_len(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn tool_ids_are_kept_when_valid_and_mapped_apart_otherwise() {
        let map = |id: &str| bedrock_tool_id(Cow::Borrowed(id)).into_owned();
        assert_eq!(map("call_1-A"), "call_1-A");
        let (dot, colon) = (map("a.b"), map("a:b"));
        assert!(dot.starts_with("a_b-") && colon.starts_with("a_b-"), "{dot} {colon}");
        assert_ne!(dot, colon);
        assert_eq!(map("a.b"), dot, "the same id maps the same way");
        let long = map(&format!("{}é", "x".repeat(100)));
        assert_eq!(long.len(), TOOL_ID_KEPT + 17, "{long}");
        for id in [dot, colon, long, map("é"), map("functions.get_weather:0")] {
            assert!(
                id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{id}"
            );
        }
    }

    #[test]
    fn a_whitespace_prefill_is_dropped() {
        let body: Body<'_> = match serde_json::from_str(
            r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " \n "}]}"#,
        ) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        let request = match build(body, &Policy::default(), None) {
            Ok(r) => r,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(request.turns.len(), 1);
        assert_eq!(request.turns[0].role, Role::User);
    }

    #[test]
    fn merged_prefills_are_trimmed_to_their_last_character() {
        let body: Body<'_> = match serde_json::from_str(
            r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure, "},
                {"role": "assistant", "content": "  "}]}"#,
        ) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        let request = match build(body, &Policy::default(), None) {
            Ok(r) => r,
            Err(e) => panic!("{e:?}"),
        };
        let last = &request.turns[1].blocks;
        assert!(matches!(last.as_slice(), [Block::Text(t)] if t == "Sure,"), "{last:?}");
    }
}
